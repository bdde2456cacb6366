"""``@tune_case`` and ``TuneCase``: the marker's arguments, validated, and the case's inputs.

Errors name the test; nothing here tunes or touches files.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest

from .accuracy import Tolerance, default_tolerance
from .errors import CaseDefinitionError

MARKER = "tune_case"
INPUT_SEED = 0  # inputs are data, not search draws: the same tensors every run

F = TypeVar("F", bound=Callable[..., Any])


def tune_case(
    *,
    kernel: Any = None,
    inputs: Callable[..., Any] | None = None,
    reference: Callable[..., Any] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    perf_tolerance: float | None = None,
) -> pytest.MarkDecorator:
    """Marks a test as a tuning case of ``kernel``.

    ``inputs`` receives the test's parametrize arguments by name and returns the kernel's
    positional arguments; ``reference`` is the eager PyTorch version the kernel must match.
    """
    return pytest.mark.tune_case(
        kernel=kernel,
        inputs=inputs,
        reference=reference,
        atol=atol,
        rtol=rtol,
        perf_tolerance=perf_tolerance,
    )


def _is_helion_kernel(obj: Any) -> bool:
    return callable(getattr(obj, "bind", None)) and hasattr(obj, "fn") and hasattr(obj, "settings")


@dataclasses.dataclass(frozen=True)
class TuneCase:
    """One test's tuning case, validated."""

    nodeid: str
    kernel: Any
    inputs: Callable[..., Any]
    reference: Callable[..., Any]
    params: Mapping[str, Any]
    atol: float | None = None
    rtol: float | None = None
    perf_tolerance: float | None = None

    @classmethod
    def from_item(cls, item: pytest.Item) -> TuneCase:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            raise CaseDefinitionError(f"{item.nodeid}: not a @tune_case test")
        if marker.args:
            raise CaseDefinitionError(
                f"{item.nodeid}: @tune_case takes keyword arguments only (kernel=, inputs=, reference=)"
            )
        kw = dict(marker.kwargs)
        unknown = set(kw) - {"kernel", "inputs", "reference", "atol", "rtol", "perf_tolerance"}
        if unknown:
            raise CaseDefinitionError(
                f"{item.nodeid}: @tune_case got unknown argument(s) {', '.join(sorted(unknown))}"
            )
        kernel = kw.get("kernel")
        if kernel is None:
            raise CaseDefinitionError(
                f"{item.nodeid}: @tune_case needs kernel=<a @helion.kernel function>"
            )
        if not _is_helion_kernel(kernel):
            raise CaseDefinitionError(
                f"{item.nodeid}: @tune_case kernel= must be a @helion.kernel function, got {type(kernel).__name__}"
            )
        for name in ("inputs", "reference"):
            value = kw.get(name)
            if value is None:
                raise CaseDefinitionError(f"{item.nodeid}: @tune_case needs {name}=<a callable>")
            if not callable(value):
                raise CaseDefinitionError(f"{item.nodeid}: @tune_case {name}= must be callable")
        for name in ("atol", "rtol", "perf_tolerance"):
            value = kw.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise CaseDefinitionError(
                    f"{item.nodeid}: @tune_case {name}={value!r} must be a non-negative number"
                )
        callspec = getattr(item, "callspec", None)
        params = dict(callspec.params) if callspec is not None else {}
        return cls(
            nodeid=item.nodeid,
            kernel=kernel,
            inputs=kw["inputs"],
            reference=kw["reference"],
            params=params,
            atol=kw.get("atol"),
            rtol=kw.get("rtol"),
            perf_tolerance=kw.get("perf_tolerance"),
        )

    def _factory_kwargs(self) -> dict[str, Any]:
        try:
            sig = inspect.signature(self.inputs)
        except (TypeError, ValueError):
            return dict(self.params)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            return dict(self.params)
        kwargs = {}
        for name, param in sig.parameters.items():
            if name in self.params:
                kwargs[name] = self.params[name]
            elif (
                param.default is inspect.Parameter.empty
                and param.kind is not inspect.Parameter.VAR_POSITIONAL
            ):
                raise CaseDefinitionError(
                    f"{self.nodeid}: inputs= wants argument '{name}', which the test's parametrize "
                    f"does not provide (it has: {', '.join(sorted(self.params)) or 'none'})"
                )
        return kwargs

    def make_inputs(self) -> tuple[Any, ...]:
        """Calls the factory with a fixed seed and checks the result fits the kernel."""
        import torch

        kwargs = self._factory_kwargs()
        torch.manual_seed(INPUT_SEED)
        try:
            produced = self.inputs(**kwargs)
        except Exception as exc:
            raise CaseDefinitionError(
                f"{self.nodeid}: inputs= raised {type(exc).__name__}: {exc}"
            ) from exc
        args = tuple(produced) if isinstance(produced, tuple | list) else (produced,)
        params = list(inspect.signature(self.kernel.fn).parameters.values())
        required = sum(1 for p in params if p.default is inspect.Parameter.empty)
        if not required <= len(args) <= len(params):
            want = str(required) if required == len(params) else f"{required} to {len(params)}"
            raise CaseDefinitionError(
                f"{self.nodeid}: inputs= returned {len(args)} argument(s); "
                f"kernel {self.kernel.fn.__name__} takes {want}"
            )
        return args

    def expected(self, args: tuple[Any, ...]) -> Any:
        try:
            return self.reference(*args)
        except Exception as exc:
            raise CaseDefinitionError(
                f"{self.nodeid}: reference= raised {type(exc).__name__}: {exc}"
            ) from exc

    def tolerance(self, expected: Any) -> Tolerance:
        default = default_tolerance(expected)
        return Tolerance(
            default.atol if self.atol is None else float(self.atol),
            default.rtol if self.rtol is None else float(self.rtol),
        )
