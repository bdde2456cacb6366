"""Glue between Helion's LLM prompt builders and parser and this plugin's seeds and counts.

Owns the proposal prompt (Helion's, plus a section of cached configs) and ``parse_proposals``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pytest_helion_tune.llm.client import Message

DEFAULT_CONFIGS_PER_ROUND = 12
_REASON_CHARS = 160

# Helion's initial prompt ends with its search strategy and the task; cached configs are
# context, so they go just before those, where its own "Author Seed Configs" would be.
_INSERT_BEFORE = ("\n\n## Search Strategy", "\n\n## Task")


def cached_configs_section(seeds: Sequence[tuple[str, Any]]) -> str:
    """The prompt section listing ``(source, config)`` pairs; empty when there are none."""
    if not seeds:
        return ""
    from helion.autotuner.llm.feedback import format_config_for_prompt

    lines = "\n".join(
        f"  - {format_config_for_prompt(config)}  (from {source})" for source, config in seeds
    )
    return (
        "## Cached Configs\n"
        "Configs this kernel was tuned to earlier: at other input shapes, on other devices, "
        "or for an older version of its source (where each came from is in parentheses). "
        "Each is legal in this configuration space. Treat them as a strong prior:\n"
        f"{lines}\n"
        "Include a candidate matching each exactly, plus small mutations of them, "
        "before venturing to unrelated families."
    )


def initial_prompt(
    bound: Any,
    args: Sequence[object],
    *,
    seeds: Sequence[tuple[str, Any]] = (),
    configs_per_round: int = DEFAULT_CONFIGS_PER_ROUND,
    compile_timeout_s: int | None = None,
) -> str:
    """Helion's initial prompt for ``bound`` (source, tensors, device, space, default config,
    workload analysis, compiler seeds) with the cached configs added."""
    from helion.autotuner.llm.prompting import build_initial_prompt

    text: str = build_initial_prompt(
        kernel=bound,
        args=args,
        config_spec=bound.config_spec,
        configs_per_round=configs_per_round,
        compile_timeout_s=compile_timeout_s,
    )
    section = cached_configs_section(seeds)
    if not section:
        return text
    for marker in _INSERT_BEFORE:
        at = text.find(marker)
        if at >= 0:
            return f"{text[:at]}\n\n{section}{text[at:]}"
    return f"{text}\n\n{section}"


def initial_messages(
    bound: Any,
    args: Sequence[object],
    *,
    seeds: Sequence[tuple[str, Any]] = (),
    configs_per_round: int = DEFAULT_CONFIGS_PER_ROUND,
) -> list[Message]:
    """System and user messages for one proposal round, as Helion's LLMGuidedSearch builds them."""
    from helion.autotuner.llm.prompting import build_system_prompt

    return [
        {"role": "system", "content": build_system_prompt(backend=bound.config_spec.backend_name)},
        {
            "role": "user",
            "content": initial_prompt(
                bound,
                args,
                seeds=seeds,
                configs_per_round=configs_per_round,
                compile_timeout_s=bound.settings.autotune_compile_timeout,
            ),
        },
    ]


@dataclasses.dataclass
class Proposals:
    """What one LLM reply yielded: legal configs, and what was offered, dropped or repeated."""

    configs: list[Any]  # normalized helion.Config objects, in the reply's order
    offered: int = 0  # entries of the reply's config list
    dropped: int = 0  # entries Helion's parser rejected as illegal
    duplicates: int = 0  # legal entries equal (after normalization) to an earlier one
    reasons: list[str] = dataclasses.field(default_factory=list)  # one line per dropped entry
    found_list: bool = True  # False: no JSON config list anywhere in the reply
    replies_without_list: int = 0  # summed over rounds by ``add``

    def add(self, other: Proposals) -> None:
        self.replies_without_list += 0 if other.found_list else 1
        self.offered += other.offered
        self.dropped += other.dropped
        self.duplicates += other.duplicates
        self.reasons.extend(other.reasons)


class _ReasonLog:
    """Stands in for Helion's AutotuningLogger to catch why its parser skipped an entry."""

    def __init__(self) -> None:
        self.reason = ""

    def __call__(self, *args: object, **kwargs: object) -> None:
        pass

    def debug(self, message: object, *args: object, **kwargs: object) -> None:
        text = str(message)
        # Helion writes "Skipping invalid config <i>: <why>"; the index is always 0 here.
        self.reason = text.split(": ", 1)[-1] if text.startswith("Skipping") else text

    warning = debug


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 3] + "..."


def parse_proposals(
    reply: str, config_spec: Any, default_config: dict[str, Any] | None = None
) -> Proposals:
    """Configs in an untrusted LLM reply, each validated and normalized by Helion's parser.

    Helion's ``parse_response_configs`` drops illegal entries without counting them, so
    each entry goes through it alone: the same checks, and a count and reason per drop.
    """
    from helion.autotuner.llm.configs import parse_response_configs
    from helion.autotuner.llm.parsing import parse_jsonish

    parsed = parse_jsonish(reply)
    raw = parsed.get("configs") if isinstance(parsed, dict) else parsed
    if not isinstance(raw, list):
        return Proposals(configs=[], found_list=False)
    if default_config is None:
        default_config = dict(config_spec.autotune_reference_config())
    out = Proposals(configs=[], offered=len(raw))
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            out.dropped += 1
            out.reasons.append(f"proposal {index}: not a JSON object")
            continue
        log = _ReasonLog()
        try:
            configs = parse_response_configs(
                json.dumps({"configs": [entry]}),
                config_spec=config_spec,
                default_config_dict=default_config,
                log=log,
            )
        except Exception as exc:  # a parser bug must cost one proposal, not the round
            configs, log.reason = [], f"{type(exc).__name__}: {exc}"
        if not configs:
            out.dropped += 1
            out.reasons.append(_one_line(f"proposal {index}: {log.reason or 'rejected'}"))
            continue
        key = repr(configs[0])
        if key in seen:
            out.duplicates += 1
            continue
        seen.add(key)
        out.configs.append(configs[0])
    return out


def summary(rounds: int, proposals: Proposals, used: int | None = None) -> str:
    """One line for the report, e.g. ``llm: 2 rounds, 30 proposals, 4 dropped as illegal``."""
    text = (
        f"llm: {rounds} round{'s' if rounds != 1 else ''}, {proposals.offered} proposals, "
        f"{proposals.dropped} dropped as illegal"
    )
    if proposals.duplicates:
        text += f", {proposals.duplicates} duplicate{'s' if proposals.duplicates != 1 else ''}"
    if proposals.replies_without_list:
        n = proposals.replies_without_list
        text += f", {n} repl{'ies' if n != 1 else 'y'} without a config list"
    if used is not None:
        text += f", {used} used as seeds"
    if proposals.reasons:
        text += f" (first: {proposals.reasons[0]})"
    return text
