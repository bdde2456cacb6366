"""Command-line options and their ini mirrors, parsed once into a frozen ``Options``.

Bad values raise ``OptionError`` naming the option; nothing here imports torch or Helion.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import pytest

from .errors import OptionError

DEFAULT_STRATEGY = "llm-seeded"
DEFAULT_BUDGET_S = 300.0
DEFAULT_PERF_TOLERANCE = 0.05
EFFORTS = ("quick", "full")

# option name (without the leading dashes) -> (ini name, help, kind)
_OPTIONS: dict[str, tuple[str, str, str]] = {
    "helion-tune": (
        "helion_tune",
        "Tune @tune_case kernels with STRATEGY (bare flag: llm-seeded). Without it the "
        "plugin only reads the committed cache and never tunes.",
        "strategy",
    ),
    "helion-retune": (
        "helion_retune",
        "Tune every case again, even those with a valid cache entry.",
        "bool",
    ),
    "helion-budget": (
        "helion_budget",
        "Cap on tuning time per case in seconds (default 300, 0 for none).",
        "float",
    ),
    "helion-effort": (
        "helion_effort",
        "Search effort: quick (default) or full, as in Helion's effort profiles.",
        "choice",
    ),
    "helion-seed": (
        "helion_seed",
        "Random seed for the searches (default 0: the same draws every run).",
        "int",
    ),
    "helion-cache-dir": (
        "helion_cache_dir",
        "Directory of the committed configs and baselines (default .helion-tune under rootdir).",
        "path",
    ),
    "helion-update-baselines": (
        "helion_update_baselines",
        "Record the measured latencies as the new performance baselines.",
        "bool",
    ),
    "helion-perf-tolerance": (
        "helion_perf_tolerance",
        "Allowed slowdown against the baseline as a fraction (default 0.05 = 5%).",
        "fraction",
    ),
    "helion-strict": (
        "helion_strict",
        "Fail cases whose cache entry or baseline is missing or stale.",
        "bool",
    ),
    "helion-report": (
        "helion_report",
        "Write a JSON report of every case to PATH.",
        "path",
    ),
    "helion-llm-record": (
        "helion_llm_record",
        "Record every LLM exchange (redacted, no key) as JSON files in DIR.",
        "path",
    ),
    "helion-llm-replay": (
        "helion_llm_replay",
        "Answer LLM requests from the exchanges recorded in DIR; no network.",
        "path",
    ),
    "helion-report-html": (
        "helion_report_html",
        "Write a self-contained HTML report (summary, convergence plots, configs) to PATH.",
        "path",
    ),
}


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything the session needs from the command line, validated."""

    strategy: str | None  # None: read the cache, never tune
    retune: bool = False
    budget_s: float | None = DEFAULT_BUDGET_S  # None: no cap
    effort: str = "quick"
    seed: int = 0
    cache_dir: Path = Path(".helion-tune")
    update_baselines: bool = False
    perf_tolerance: float = DEFAULT_PERF_TOLERANCE
    strict: bool = False
    report: Path | None = None
    report_html: Path | None = None
    llm_record: Path | None = None
    llm_replay: Path | None = None
    llm_ini: tuple[tuple[str, str | None], ...] = ()  # helion_llm_* ini values; env wins

    @property
    def tuning(self) -> bool:
        return self.strategy is not None


LLM_INI = {
    "helion_llm_provider": "LLM provider: anthropic, openai or openai-chat (env HELION_LLM_PROVIDER wins)",
    "helion_llm_model": "LLM model name (env HELION_LLM_MODEL wins)",
    "helion_llm_api_base": "LLM API base URL (env HELION_LLM_API_BASE wins); the key is read from env only",
    "helion_llm_timeout": "Seconds per LLM request (default 60)",
}


def _ini_text(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    return str(value) if value not in (None, "", []) else None


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("helion-tune", "autotuning of Helion kernels (pytest-helion-tune)")
    for name, (ini, help_text, kind) in _OPTIONS.items():
        dest = ini
        ini_help, help_text = help_text, help_text.replace("%", "%%")  # argparse %-formats help
        if kind == "bool":
            group.addoption(
                f"--{name}", action="store_true", default=None, dest=dest, help=help_text
            )
            parser.addini(ini, help=ini_help, type="bool", default=False)
        elif kind == "strategy":
            group.addoption(
                f"--{name}",
                nargs="?",
                const=DEFAULT_STRATEGY,
                default=None,
                dest=dest,
                metavar="STRATEGY",
                help=help_text,
            )
            parser.addini(ini, help=ini_help + " (ini: strategy name)", default=None)
        else:
            metavar = {
                "float": "SECONDS",
                "fraction": "FRACTION",
                "int": "N",
                "path": "DIR" if "llm" in name else "PATH",
            }.get(kind, "quick|full")
            group.addoption(f"--{name}", default=None, dest=dest, metavar=metavar, help=help_text)
            parser.addini(ini, help=ini_help, default=None)
    for ini, help_text in LLM_INI.items():
        parser.addini(ini, help=help_text, default=None)


def _raw(config: pytest.Config, ini: str) -> Any:
    value = config.getoption(ini)
    if value is None:
        value = config.getini(ini)
        if value in ("", []):
            value = None
    return value


def _flag(config: pytest.Config, ini: str) -> bool:
    value = config.getoption(ini)
    if value is None:
        value = config.getini(ini)
    return bool(value)


def _number(name: str, value: Any, cast: type[float] | type[int]) -> float | int:
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise OptionError(f"--{name}={value!r}: expected a number") from None


def parse_strategy(value: str | None, known: set[str]) -> str | None:
    """Checks a ``--helion-tune`` value against the registry (names from ``known``)."""
    if value is None:
        return None
    value = str(value).strip()
    if value in known:
        return value
    hint = ""
    if os.path.exists(value):
        hint = (
            f" '{value}' is a path: pytest took it as the strategy. Write the strategy "
            f"with '=' (--helion-tune={DEFAULT_STRATEGY} {value}) or put the path first."
        )
    raise OptionError(
        f"--helion-tune={value}: unknown strategy; choose one of {', '.join(sorted(known))}.{hint}"
    )


def parse_options(config: pytest.Config, known_strategies: set[str]) -> Options:
    strategy = parse_strategy(_raw(config, "helion_tune"), known_strategies)
    retune = _flag(config, "helion_retune")
    if retune and strategy is None:
        strategy = DEFAULT_STRATEGY  # retuning means tuning: the flag alone picks the default

    budget_raw = _raw(config, "helion_budget")
    budget: float | None = DEFAULT_BUDGET_S
    if budget_raw is not None:
        budget = float(_number("helion-budget", budget_raw, float))
        if not math.isfinite(budget) or budget < 0:
            raise OptionError(
                f"--helion-budget={budget_raw}: must be 0 (no cap) or a positive number of seconds"
            )
        budget = budget or None

    effort = str(_raw(config, "helion_effort") or "quick")
    if effort not in EFFORTS:
        raise OptionError(f"--helion-effort={effort}: choose one of {', '.join(EFFORTS)}")

    seed_raw = _raw(config, "helion_seed")
    seed = 0 if seed_raw is None else int(_number("helion-seed", seed_raw, int))
    if seed < 0:
        raise OptionError(f"--helion-seed={seed_raw}: must be 0 or a positive integer")

    tol_raw = _raw(config, "helion_perf_tolerance")
    tolerance = DEFAULT_PERF_TOLERANCE
    if tol_raw is not None:
        tolerance = float(_number("helion-perf-tolerance", tol_raw, float))
        if not 0 <= tolerance < 10:
            raise OptionError(
                f"--helion-perf-tolerance={tol_raw}: a fraction such as 0.05 for 5%, not negative"
            )

    cache_raw = _raw(config, "helion_cache_dir")
    cache_dir = Path(cache_raw) if cache_raw else Path(".helion-tune")
    if not cache_dir.is_absolute():
        cache_dir = Path(config.rootpath) / cache_dir
    if cache_dir.exists() and not cache_dir.is_dir():
        raise OptionError(f"--helion-cache-dir={cache_dir}: exists and is not a directory")

    def output_path(ini: str) -> Path | None:
        raw = _raw(config, ini)
        if not raw:
            return None
        path = Path(raw)
        return path if path.is_absolute() else Path(config.invocation_params.dir) / path

    return Options(
        strategy=strategy,
        retune=retune,
        budget_s=budget,
        effort=effort,
        seed=seed,
        cache_dir=cache_dir,
        update_baselines=_flag(config, "helion_update_baselines"),
        perf_tolerance=tolerance,
        strict=_flag(config, "helion_strict"),
        report=output_path("helion_report"),
        report_html=output_path("helion_report_html"),
        llm_record=output_path("helion_llm_record"),
        llm_replay=output_path("helion_llm_replay"),
        llm_ini=tuple((name, _ini_text(config, name)) for name in LLM_INI),
    )
