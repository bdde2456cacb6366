"""``TunedKernel``: the ``tuned`` fixture's value, the kernel running its chosen config.

Each config runs through its own ``compile_config`` callable, never by mutating the shared BoundKernel.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigNotApplicable, first_line


class TunedKernel:
    """Calls ``kernel`` with ``config``; at other shapes compiles the same config if valid there."""

    def __init__(
        self,
        *,
        nodeid: str,
        kernel: Any,
        config: dict[str, Any] | None,
        latency_ms: float | None = None,
        origin: str = "default",
        stale: bool = False,
        problem: str = "",
    ) -> None:
        self.nodeid = nodeid
        self.kernel = kernel
        self.config = config
        self.latency_ms = latency_ms
        self.origin = origin
        self.stale = stale
        self._problem = problem
        self._compiled: dict[int, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        name = getattr(getattr(self.kernel, "fn", None), "__name__", "kernel")
        return f"<TunedKernel {name} origin={self.origin} latency_ms={self.latency_ms}>"

    def compiled_for(self, args: tuple[Any, ...]) -> Any:
        if self.config is None:
            raise ConfigNotApplicable(f"{self.nodeid}: no config could be chosen ({self._problem})")
        import helion

        bound = self.kernel.bind(args)
        hit = self._compiled.get(id(bound))
        if hit is not None and hit[0] is bound:
            return hit[1]
        try:
            fn = bound.compile_config(helion.Config(**self.config), allow_print=False)
        except Exception as exc:
            first = first_line(exc)
            raise ConfigNotApplicable(
                f"{self.nodeid}: the tuned config does not compile for these arguments "
                f"({type(exc).__name__}: {first}); add a @tune_case for this shape"
            ) from exc
        self._compiled[id(bound)] = (bound, fn)
        return fn

    def __call__(self, *args: Any) -> Any:
        return self.compiled_for(args)(*args)
