"""Helion configs as plain JSON: validation against a kernel's config spec, stable ids.

Configs from files and LLM replies are untrusted: only plain JSON, checked by Helion itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .errors import first_line

JSONScalar = str | int | float | bool | None


def _plain(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: keys must be strings")
            _plain(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]")
    elif not isinstance(value, str | int | float | bool) and value is not None:
        raise ValueError(f"{path}: {type(value).__name__} is not plain JSON")


def as_dict(config: Any) -> dict[str, Any]:
    """A Helion ``Config`` (or mapping) as a plain, JSON-round-trippable dict."""
    raw = getattr(config, "config", config)
    plain: dict[str, Any] = json.loads(json.dumps(dict(raw), sort_keys=True))
    return plain


def config_id(config: Any) -> str:
    text = json.dumps(as_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate(bound: Any, config: Any) -> Any:
    """Returns a normalized ``helion.Config`` for ``bound``, or raises ``ValueError`` saying why."""
    import helion

    if not isinstance(config, dict) or not config:
        raise ValueError("a config must be a non-empty JSON object")
    _plain(config, "config")
    try:
        candidate = helion.Config(**copy.deepcopy(config))
        bound.config_spec.normalize(candidate)
    except Exception as exc:  # InvalidConfig, AssertionError, KeyError; TypeError for odd keys
        text = first_line(exc)
        raise ValueError(text[:300]) from None
    return candidate


def describe(config: Any, limit: int = 6) -> str:
    """A short readable summary (block sizes, warps, stages) for terminal lines."""
    d = as_dict(config)
    keys = [
        k
        for k in ("block_sizes", "reduction_loops", "num_warps", "num_stages", "pid_type")
        if k in d
    ]
    parts = [f"{k}={d[k]}" for k in keys[:limit]]
    return " ".join(parts)
