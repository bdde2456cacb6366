"""The ``llm`` and ``llm-seeded`` strategies on real kernels under the Triton interpreter,
talking openai-chat to a real HTTP server on 127.0.0.1 (tests/llm_server.py).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "1")  # before helion/triton are imported

import helion
import helion.language as hl
import pytest
import torch
from llm_server import Reply, ScriptedServer, closed_port_url

from pytest_helion_tune import interpreter, monitor
from pytest_helion_tune.accuracy import Tolerance
from pytest_helion_tune.configs import validate
from pytest_helion_tune.errors import LLMError, StrategyError
from pytest_helion_tune.llm import (
    HttpLLMClient,
    LLMSettings,
    RecordingClient,
    ReplayClient,
    prompts,
)
from pytest_helion_tune.strategies import seeded
from pytest_helion_tune.strategies.base import SearchOutcome, SearchProblem, Seed
from pytest_helion_tune.strategies.helion_env import usable_seeds
from pytest_helion_tune.strategies.llm import LLMBudget, LLMGuided, LLMSeeded
from pytest_helion_tune.timing import Timer, WallClockTimer

# The header of the per-candidate CSV log Helion 1.5 writes (autotune_log).
HELION_CSV_HEADER = "run_id,timestamp_s,config_id,generation,status,perf_ms,compile_time_s,config\n"

interpreter.patch_libdevice()


@helion.kernel(static_shapes=True)
def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] + y[tile]
    return out


@helion.kernel(static_shapes=True)
def softmax(x: torch.Tensor) -> torch.Tensor:
    n, _m = x.size()
    out = torch.empty_like(x)
    for tile_n in hl.tile(n):
        out[tile_n, :] = torch.softmax(x[tile_n, :], dim=1)
    return out


CACHED = Seed({"block_sizes": [64]}, "cache: other shape")
# Prose around the JSON, two illegal entries and a duplicate: what real models send.
MESSY_REPLY = (
    "Sure! Here are some configs for your add kernel.\n"
    '{"configs": [{"block_sizes": [16], "num_warps": 2}, {"num_warps": 3}, '
    '{"block_sizes": [8], "warp_magic": 1}, {"block_sizes": [128]}, '
    '{"num_warps": 2, "block_sizes": [16]}]}\n'
    "These should cover small and large tiles."
)
GOOD_REPLY = '{"configs":[{"block_sizes":[16],"num_warps":2},{"block_sizes":[8]},{"num_warps":8}]}'


class TimedClient:
    """Wraps a client and records how long each ``complete`` took, failures included."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.settings = getattr(inner, "settings", None)
        self.durations: list[float] = []

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        start = time.monotonic()
        try:
            reply: str = self.inner.complete(messages)
            return reply
        finally:
            self.durations.append(time.monotonic() - start)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.stop()


def chat_client(url: str, **kw: Any) -> HttpLLMClient:
    values: dict[str, Any] = {"timeout_s": 5.0, "max_retries": 0, "total_timeout_s": 10.0}
    values.update(kw)
    return HttpLLMClient(
        LLMSettings(provider="openai-chat", model="test-model", api_base=url, **values)
    )


def add_problem(llm: Any, seeds: Sequence[Seed] = (CACHED,), **kw: Any) -> SearchProblem:
    x, y = torch.randn(256), torch.randn(256)
    return SearchProblem(
        kernel=add,
        bound=add.bind((x, y)),
        args=(x, y),
        reference=lambda a, b: a + b,
        tolerance=Tolerance(atol=1e-5, rtol=1e-5),
        seeds=tuple(seeds),
        interpreter=True,
        llm=llm,
        **{"timer": WallClockTimer(calls=1), **kw},
    )


def user_prompt(received: Any) -> str:
    messages = received.json()["messages"]
    content: str = next(m["content"] for m in messages if m["role"] == "user")
    return content


def assert_runs(problem: SearchProblem, outcome: SearchOutcome) -> None:
    """The tuned config is legal for the kernel and computes the right thing."""
    config = validate(problem.bound, outcome.config)
    compiled = problem.bound.compile_config(config, allow_print=False)
    torch.testing.assert_close(compiled(*problem.args), problem.args[0] + problem.args[1])


# -- parsing and the time cap, without a search ----------------------------------------


def test_parse_proposals_counts_dropped_and_duplicates() -> None:
    bound = add.bind((torch.randn(256), torch.randn(256)))
    found = prompts.parse_proposals(MESSY_REPLY, bound.config_spec)
    assert (found.offered, found.dropped, found.duplicates) == (5, 2, 1)
    assert [c.config["block_sizes"] for c in found.configs] == [[16], [128]]
    assert "num_warps must be a positive power-of-two" in found.reasons[0]
    assert "warp_magic" in found.reasons[1]
    assert prompts.summary(1, found).startswith("llm: 1 round, 5 proposals, 2 dropped as illegal")

    nothing = prompts.parse_proposals("I am sorry, I cannot help with that.", bound.config_spec)
    assert not nothing.found_list and nothing.configs == []
    odd = prompts.parse_proposals('[1, "x", {"block_sizes": [32]}]', bound.config_spec)
    assert (odd.offered, odd.dropped, len(odd.configs)) == (3, 2, 1)


def test_budget_never_waits_past_its_cap() -> None:
    class Slow:
        def complete(self, messages: Sequence[dict[str, str]]) -> str:
            time.sleep(3)
            return "{}"

    budget = LLMBudget(Slow(), cap_s=0.3)
    start = time.monotonic()
    with pytest.raises(LLMError, match="time budget"):
        budget.call([{"role": "user", "content": "hi"}])
    assert time.monotonic() - start < 1.0
    with pytest.raises(LLMError, match="spent"):
        budget.call([{"role": "user", "content": "hi"}])


# -- the prompt -------------------------------------------------------------------------


def test_prompt_carries_source_shapes_space_and_cached_seed(server: ScriptedServer) -> None:
    server.script(server.ok("openai-chat", GOOD_REPLY))
    x = torch.randn(4, 32)
    bound = softmax.bind((x,))
    cached = Seed({"block_sizes": [2], "num_warps": 2}, "cache: other device")
    problem = SearchProblem(
        kernel=softmax,
        bound=bound,
        args=(x,),
        reference=lambda t: torch.softmax(t, dim=-1),
        tolerance=Tolerance(atol=1e-5, rtol=1e-5),
        seeds=(cached,),
        interpreter=True,
        llm=chat_client(server.url),
    )
    notes: list[str] = []
    seeds = LLMSeeded().propose(problem, usable_seeds(bound, [cached], []), notes)
    assert seeds and all(s.source == "llm" for s in seeds)
    (request,) = server.received
    assert request.path == "/v1/chat/completions"
    body = request.json()
    assert body["model"] == "test-model"
    system = body["messages"][0]
    assert system["role"] == "system" and "Output contract" in system["content"]
    prompt = user_prompt(request)
    assert "out[tile_n, :] = torch.softmax(x[tile_n, :], dim=1)" in prompt  # kernel source
    assert "shape=[4, 32], dtype=torch.float32" in prompt
    assert "## GPU Hardware" in prompt and "Device: cpu" in prompt
    assert "## Configuration Space" in prompt and "num_warps: power_of_2(" in prompt
    assert "## Default Configuration" in prompt
    assert "## Cached Configs" in prompt and "(from cache: other device)" in prompt
    full = validate(bound, cached.config)
    assert json.dumps(dict(full), sort_keys=True, separators=(",", ":")) in prompt
    assert prompt.index("## Cached Configs") < prompt.index("## Search Strategy")
    assert "Generate up to 12 UNIQUE candidate configs" in prompt


# -- llm ------------------------------------------------------------------------------


def test_llm_needs_an_llm() -> None:
    with pytest.raises(StrategyError, match="needs an LLM: set HELION_LLM_PROVIDER"):
        LLMGuided().search(add_problem(None))


def test_llm_rounds_with_messy_replies(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Helion would reject this provider if it read it; the strategy must not let it.
    monkeypatch.setenv("HELION_LLM_PROVIDER", "openai-chat")
    monkeypatch.setenv("HELION_LLM_MODEL", "not-this-one")
    server.script(
        server.ok("openai-chat", MESSY_REPLY),
        server.ok(
            "openai-chat", 'Next: ```json\n{"configs":[{"block_sizes":[64]},{"num_warps":5}]}\n```'
        ),
    )
    problem = add_problem(chat_client(server.url))
    outcome = LLMGuided().search(problem)

    assert_runs(problem, outcome)
    assert len(server.received) == 2
    assert outcome.notes[0].startswith(
        "llm: 2 rounds, 7 proposals, 3 dropped as illegal, 1 duplicate (first: proposal 1: "
        "num_warps must be a positive power-of-two integer, got 3)"
    ), outcome.notes
    assert outcome.seed_source == "llm, cache: other shape"
    assert outcome.configs_tested >= 4
    assert "## Cached Configs" in user_prompt(server.received[0])
    assert all(r.json()["model"] == "test-model" for r in server.received)
    # The refinement round carried the measured results back.
    last = server.received[1].json()["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user"]
    assert last[2]["content"] == MESSY_REPLY
    assert "## Results (best first)" in last[3]["content"]


def test_llm_unreachable_ends_cleanly() -> None:
    problem = add_problem(chat_client(closed_port_url()))
    outcome = LLMGuided().search(problem)
    assert_runs(problem, outcome)
    assert outcome.notes[0].startswith("llm: 0 rounds, 0 proposals")
    assert outcome.notes[1].startswith("LLM failed in round 0 (")
    assert "could not connect" in outcome.notes[1]
    assert outcome.seed_source == "default and random configs (the LLM gave none)"


def test_llm_failing_in_a_later_round_keeps_what_was_measured(server: ScriptedServer) -> None:
    server.script(
        server.ok("openai-chat", GOOD_REPLY),
        *[Reply(status=500, body={"error": "overloaded"}) for _ in range(2)],
    )
    problem = add_problem(chat_client(server.url, max_retries=1))
    outcome = LLMGuided().search(problem)
    assert_runs(problem, outcome)
    assert len(server.received) == 3
    assert outcome.notes[0].startswith("llm: 1 round, 3 proposals, 0 dropped as illegal")
    assert outcome.notes[1].startswith("LLM failed in round 1 (")
    assert "HTTP 500" in outcome.notes[1]
    assert outcome.seed_source == "llm, cache: other shape"


def test_llm_counts_a_reply_without_configs(server: ScriptedServer) -> None:
    server.script(server.ok("openai-chat", "Let me think about it."))
    outcome = LLMGuided().search(add_problem(chat_client(server.url)))
    assert outcome.notes[0].startswith(
        "llm: 1 round, 0 proposals, 0 dropped as illegal, 1 reply without a config list"
    ), outcome.notes


# -- llm-seeded -------------------------------------------------------------------------


def test_llm_seeded_puts_llm_seeds_first(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script(server.ok("openai-chat", GOOD_REPLY))
    seen: list[SearchProblem] = []
    original = seeded.SeededSearch.search

    def spy(self: seeded.SeededSearch, problem: SearchProblem) -> SearchOutcome:
        seen.append(problem)
        return original(self, problem)

    monkeypatch.setattr(seeded.SeededSearch, "search", spy)
    problem = add_problem(chat_client(server.url))
    outcome = LLMSeeded().search(problem)

    assert_runs(problem, outcome)
    assert [s.source for s in seen[0].seeds] == ["llm", "llm", "llm", "cache: other shape"]
    assert [s.config["block_sizes"] for s in seen[0].seeds[:2]] == [[16], [8]]
    assert outcome.seed_source == "llm, cache: other shape"
    assert outcome.notes[0].startswith(
        "llm: 1 round, 3 proposals, 0 dropped as illegal, 3 used as seeds"
    )
    assert outcome.notes[1].startswith("probe:")


def refusing(_server: ScriptedServer) -> Any:
    return TimedClient(chat_client(closed_port_url(), max_retries=2, total_timeout_s=3.0))


def erroring(server: ScriptedServer) -> Any:
    server.script(*[Reply(status=500, body={"error": "overloaded"}) for _ in range(5)])
    return TimedClient(chat_client(server.url, max_retries=2, total_timeout_s=3.0))


def hanging(server: ScriptedServer) -> Any:
    server.script(*[Reply(body={}, delay=30) for _ in range(3)])
    return TimedClient(chat_client(server.url, timeout_s=0.4, max_retries=1, total_timeout_s=3.0))


@pytest.mark.parametrize(
    ("make", "says"),
    [(refusing, "could not connect"), (erroring, "HTTP 500"), (hanging, "timed out")],
    ids=["refused", "500", "timeout"],
)
def test_llm_seeded_goes_on_without_a_failing_llm(
    server: ScriptedServer, make: Any, says: str
) -> None:
    client = make(server)
    problem = add_problem(client)
    start = time.monotonic()
    outcome = LLMSeeded().search(problem)
    elapsed = time.monotonic() - start

    assert_runs(problem, outcome)
    note = outcome.notes[0]
    assert note.startswith("LLM unreachable (") and says in note, note
    assert note.endswith("): seeded from cache: other shape and heuristics")
    assert "llm" not in outcome.seed_source and "cache: other shape" in outcome.seed_source
    # The client's caps bound the LLM's share: 3 s total, here well under it.
    assert len(client.durations) == 1 and client.durations[0] <= 3.0 + 0.5
    assert elapsed < client.durations[0] + 30


def test_llm_seeded_case_cap_cuts_a_slow_llm(server: ScriptedServer) -> None:
    server.script(Reply(body={}, delay=30))
    client = TimedClient(chat_client(server.url, timeout_s=30.0, total_timeout_s=60.0))
    problem = add_problem(client, llm_budget_s=0.5)
    notes: list[str] = []
    start = time.monotonic()
    seeds = LLMSeeded().propose(problem, [], notes)
    assert time.monotonic() - start < 1.5
    assert seeds == []
    assert notes[0].startswith("LLM unreachable (no reply within the LLM time budget")


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ("I would rather not.", "no JSON config list in 19 characters"),
        ('{"configs":[{"num_warps":3},{"nope":1}]}', "all 2 proposals illegal, first: proposal 0"),
    ],
    ids=["prose", "all-illegal"],
)
def test_llm_seeded_unusable_reply(server: ScriptedServer, reply: str, says: str) -> None:
    server.script(server.ok("openai-chat", reply))
    problem = add_problem(chat_client(server.url), seeds=())
    outcome = LLMSeeded().search(problem)
    assert_runs(problem, outcome)
    assert outcome.notes[0].startswith(f"LLM reply unusable ({says}")
    assert outcome.notes[0].endswith("): seeded from heuristics")
    assert outcome.seed_source == "none (default config)"


def test_llm_seeded_offline() -> None:
    problem = add_problem(None)
    outcome = LLMSeeded().search(problem)
    assert_runs(problem, outcome)
    assert (
        outcome.notes[0]
        == "offline: no LLM configured; seeded from cache: other shape and heuristics"
    )
    assert outcome.seed_source == "cache: other shape"


def test_llm_seeded_failure_note_never_shows_the_key(server: ScriptedServer) -> None:
    key = "sk-local-SECRET-0123456789"
    server.script(Reply(status=401, body={"error": f"bad key {key}"}))
    client = HttpLLMClient(
        LLMSettings(provider="openai-chat", model="test-model", api_base=server.url, api_key=key)
    )
    notes: list[str] = []
    assert LLMSeeded().propose(add_problem(client), [], notes) == []
    assert notes[0].startswith("LLM unreachable (") and "HTTP 401" in notes[0]
    assert key not in notes[0] and "***" in notes[0]
    assert server.received[0].headers["authorization"] == f"Bearer {key}"


# -- recorded replies -------------------------------------------------------------------


def test_record_then_replay_gives_the_same_proposals(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """The recorded-replies mechanism: a cassette captured from the local test server."""
    server.script(server.ok("openai-chat", MESSY_REPLY))
    live = chat_client(server.url)
    recorder = RecordingClient(live, tmp_path / "cassettes", live.settings)

    def propose(client: Any) -> tuple[list[Seed], list[str]]:
        problem = add_problem(client)
        cached = usable_seeds(problem.bound, list(problem.seeds), [])
        notes: list[str] = []
        return LLMSeeded().propose(problem, cached, notes), notes

    recorded, recorded_notes = propose(recorder)
    server.stop()
    replayed, replayed_notes = propose(ReplayClient(tmp_path / "cassettes"))

    assert recorded and recorded == replayed
    strip = [n.rsplit(", ", 1)[0] for n in recorded_notes]  # drop the wait time
    assert strip == [n.rsplit(", ", 1)[0] for n in replayed_notes]
    (cassette,) = (tmp_path / "cassettes").glob("*.json")
    record = json.loads(cassette.read_text())
    assert record["reply"] == MESSY_REPLY and record["provider"] == "openai-chat"


# -- seeded: the probe under a budget ------------------------------------------------------


def test_seeded_probe_is_benchmarked_in_full_under_any_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Helion compiles a batch before benchmarking it and checks its budget between benchmarks:
    a budget spent while the probe compiles (15 s on an H100 for 26 configs) once left the probe
    benchmarking only the default. The probe now runs with Helion's budget off."""
    from helion.autotuner import search_algorithms

    finite = search_algorithms["FiniteSearch"]
    seen: list[tuple[Any, int]] = []

    class Spy(finite):  # type: ignore[misc,valid-type]
        def __init__(self, bound: Any, args: Any, configs: Any = None, **kw: Any) -> None:
            # The interpreter's config filter drops persistent pid types before benchmarking.
            usable = sum(interpreter.usable_config(c) for c in configs)
            seen.append((bound.settings.autotune_budget_seconds, usable))
            super().__init__(bound, args, configs, **kw)

    monkeypatch.setitem(search_algorithms, "FiniteSearch", Spy)
    problem = add_problem(None, budget_s=0.5)
    outcome = seeded.SeededSearch().search(problem)
    assert_runs(problem, outcome)
    # Two batches: the default with the seed (rule 0), then the probe around the faster.
    assert len(seen) == 2 and all(budget is None for budget, _ in seen), seen
    assert outcome.configs_tested == sum(n for _, n in seen), (outcome.configs_tested, seen)
    assert "stopped after the probe" in outcome.notes[-1]
    assert problem.bound.settings.autotune_budget_seconds != 0.5  # restored afterwards


@pytest.mark.parametrize(
    ("budget_s", "warm", "expected"),
    [
        (None, False, seeded.PROBE_NEIGHBOURS),
        (None, True, seeded.PROBE_NEIGHBOURS_WARM),
        (15.0, False, 15),
        (15.0, True, 15),
        (3.0, False, seeded.PROBE_NEIGHBOURS_MIN),
        (600.0, False, seeded.PROBE_NEIGHBOURS),
    ],
)
def test_seeded_probe_size_follows_the_budget(
    budget_s: float | None, warm: bool, expected: int
) -> None:
    x = torch.randn(256)
    problem = SearchProblem(
        kernel=add,
        bound=add.bind((x, x)),
        args=(x, x),
        reference=lambda a, b: a + b,
        tolerance=Tolerance(atol=1e-5, rtol=1e-5),
        budget_s=budget_s,
    )
    assert seeded.probe_size(problem, warm) == expected


# -- Helion's searches under a short budget ------------------------------------------------


def test_budget_note_rule() -> None:
    from pytest_helion_tune.strategies.base import FEW_CONFIGS, budget_note

    assert budget_note(2, 41.0, 40.0) is not None
    assert "2 configs benchmarked (41 s of a 40 s budget)" in (budget_note(2, 41.0, 40.0) or "")
    assert budget_note(FEW_CONFIGS, 41.0, 40.0) is None  # enough was measured
    assert budget_note(2, 30.0, 40.0) is None  # the search ended on its own
    assert budget_note(2, 41.0, None) is None  # no budget


def test_a_helion_search_cut_by_its_budget_says_so() -> None:
    """On an H100, LFBO with a 40 s budget benchmarked 2 configs of softmax 4096x8192: its first
    generation's compilation used the budget. The outcome now says so, and the summary shows it."""
    from pytest_helion_tune.report import summary_lines
    from pytest_helion_tune.results import CaseResult
    from pytest_helion_tune.strategies import get

    x = torch.randn(4, 64)
    problem = SearchProblem(
        kernel=softmax,
        bound=softmax.bind((x,)),
        args=(x,),
        reference=lambda a: torch.softmax(a, dim=1),
        tolerance=Tolerance(atol=1e-4, rtol=1e-4),
        budget_s=0.01,  # Helion's budget is whole seconds: 1 s, less than its first generation
        timer=WallClockTimer(calls=1),
        interpreter=True,
    )
    outcome = get("random").search(problem)
    spent = [n for n in outcome.notes if n.startswith("budget spent after")]
    assert spent, outcome.notes
    assert f"{outcome.configs_tested} configs benchmarked" in spent[0]
    result = CaseResult(nodeid="tests/test_k.py::test_softmax", notes=list(outcome.notes))
    assert any(
        line.startswith("test_k.py::test_softmax: budget spent after")
        for line in summary_lines([result])
    ), summary_lines([result])


# -- seeded: the warm start ------------------------------------------------------------------


def _generated(fn: Any, depth: int = 0) -> str:
    """The source Helion generated for the kernel that ``fn`` ends up calling ("" if none)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is not None and "torchinductor" in code.co_filename:
        return Path(code.co_filename).read_text()
    inner = [*(getattr(fn, "__defaults__", None) or ())]
    inner += [c.cell_contents for c in getattr(fn, "__closure__", None) or ()]
    for value in inner if depth < 3 else []:
        if callable(value):
            found = _generated(value, depth + 1)
            if found:
                return found
    return ""


class BlockTimer(Timer):
    """A deterministic stand-in for a GPU clock for ``add`` on 256 elements: the latency grows
    with the distance of the kernel's block size from ``fastest`` (read off the generated
    launch grid), and nothing else matters."""

    name = "block"

    def __init__(self, fastest: int) -> None:
        self.fastest = fastest

    def sample(self, fn: Any, label: str) -> float:
        fn()
        launch = re.search(r"_launcher\(_helion_add, \((\d+),\)", _generated(fn))
        assert launch, "no add kernel launch in the timed callable"
        block = 256 // int(launch.group(1))
        return 1.0 + abs(math.log2(block) - math.log2(self.fastest))


@pytest.fixture
def whole_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every neighbour in the probe, not the interpreter's random four: the tests then do not
    depend on which neighbours the search seed samples."""
    monkeypatch.setitem(seeded._INTERPRETER, "neighbours", 1000)


def warm_problem(fastest: int, tmp_path: Path) -> SearchProblem:
    seeds = (Seed({"block_sizes": [16]}, "llm"), Seed({"block_sizes": [64]}, "cache: other shape"))
    return add_problem(
        None, seeds, timer=BlockTimer(fastest), log_path=str(tmp_path / "logs" / "add")
    )


@pytest.mark.parametrize(("fastest", "warm"), [(64, True), (32, False)])
def test_the_warm_probe_size_is_for_a_seed_that_beat_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fastest: int, warm: bool
) -> None:
    """The probe takes the warm size only around a seed that beat the default; where every seed
    was slower (block 32, the default's, fastest here) it is the cold probe around the default."""
    sized: list[bool] = []
    real = seeded.probe_size

    def spy(problem: SearchProblem, is_warm: bool) -> int:
        sized.append(is_warm)
        return real(problem, is_warm)

    monkeypatch.setattr(seeded, "probe_size", spy)
    outcome = seeded.SeededSearch().search(warm_problem(fastest, tmp_path))

    assert sized and set(sized) == {warm}, (sized, outcome.notes)


def test_seeded_warm_starts_from_the_fastest_seed_and_stops_at_its_local_optimum(
    tmp_path: Path,
    whole_probe: None,
) -> None:
    """Rule 0 and rule 2 of ``seeded``: the seeds are benchmarked first and the fastest (here
    the second seed given) is where the probe looks; when no neighbour beats it, no LFBO runs."""
    problem = warm_problem(64, tmp_path)
    outcome = seeded.SeededSearch().search(problem)

    assert_runs(problem, outcome)
    assert outcome.config["block_sizes"] == [64]
    start = next(n for n in outcome.notes if n.startswith("start:"))
    assert "of the default and 2 seeds was cache: other shape" in start, outcome.notes
    assert outcome.notes[-1] == "stopped after the probe: no neighbour beats the start beyond noise"
    logs = sorted(p.name for p in (tmp_path / "logs").glob("*.csv"))
    assert logs == ["add-probe.csv", "add-seeds.csv"], logs  # no refinement ran
    probed = [r["config"] for r in read_rows(tmp_path / "logs" / "add-probe.csv")]
    assert probed and all(
        "block_sizes=[32]" in c or "block_sizes=[64]" in c or "block_sizes=[128]" in c
        for c in probed
    ), probed  # around 64, not 16


class NearTimer(Timer):
    """Block 64 is 0.5% faster than the default's block 32, every other block far slower: a lead
    below ``GAIN_TO_CONTINUE``, as re-timing noise would give."""

    name = "near"

    def sample(self, fn: Any, label: str) -> float:
        fn()
        launch = re.search(r"_launcher\(_helion_add, \((\d+),\)", _generated(fn))
        assert launch, "no add kernel launch in the timed callable"
        return {32: 1.0, 64: 0.995}.get(256 // int(launch.group(1)), 2.0)


def test_seeded_keeps_the_default_when_nothing_beats_it_beyond_noise(
    tmp_path: Path, whole_probe: None
) -> None:
    """Rule 2: a neighbour ahead of the default by less than ``GAIN_TO_CONTINUE`` stops the search
    and the default stays; the fastest re-timed is not taken on a lead inside the noise."""
    problem = add_problem(None, (), timer=NearTimer(), log_path=str(tmp_path / "logs" / "add"))
    assert problem.bound.config_spec.default_config().config["block_sizes"] == [32]
    outcome = seeded.SeededSearch(marginal=False).search(problem)

    assert_runs(problem, outcome)
    assert any("not beaten beyond noise" in n for n in outcome.notes), outcome.notes
    assert any(
        "block_sizes=[64]" in r["config"] for r in read_rows(tmp_path / "logs" / "add-probe.csv")
    )
    assert outcome.config["block_sizes"] == [32]
    assert not (tmp_path / "logs" / "add-lfbo.csv").exists()
    (retiming,) = outcome.retimings  # what the choice rested on, kept for review
    assert retiming.stage == "early-stop"
    roles = [label.split(":")[0] for label in retiming.labels]
    by_role = dict(zip(roles, retiming.samples_ms, strict=True))
    assert by_role["default"] == [1.0] * seeded._INTERPRETER["rounds"]
    assert [0.995] * seeded._INTERPRETER["rounds"] in retiming.samples_ms


class TwoClocksTimer(NearTimer):
    """The common timer as ``NearTimer`` (block 64 0.5% ahead of the default's 32, inside the
    noise); Helion's timer (``bench``, what its benchmark calls) has block 64 ``helion_lead``
    ahead. The H100 showed the two disagree so (rms_norm 256x65536's default)."""

    def __init__(self, helion_lead: float) -> None:
        self.helion_lead = helion_lead

    def bench(self, fn: Any, label: str = "candidate") -> float:
        ms = self.sample(fn, label)
        return ms / (1 + self.helion_lead) if ms == 0.995 else ms


@pytest.mark.parametrize("lead", [0.25, 0.05])
def test_a_lead_on_helions_timer_keeps_the_search_going(
    tmp_path: Path, whole_probe: None, lead: float
) -> None:
    """Rule 2's second witness: a probe lead of ``HELION_GAIN_TO_CONTINUE`` or more on Helion's
    timer goes on to the climb, from Helion's fastest, though the re-timing saw none; a smaller
    one stops as before."""
    problem = add_problem(
        None, (), timer=TwoClocksTimer(lead), log_path=str(tmp_path / "logs" / "add")
    )
    outcome = seeded.SeededSearch(marginal=False).search(problem)

    assert_runs(problem, outcome)
    going_on = lead >= seeded.HELION_GAIN_TO_CONTINUE
    assert any(n.startswith("going on: the probe's best is +") for n in outcome.notes) == going_on
    assert any("not beaten beyond noise" in n for n in outcome.notes) != going_on
    assert (tmp_path / "logs" / "add-climb1.csv").exists() == going_on, outcome.notes
    if going_on:  # the climb's first step is around block 64, Helion's fastest
        climbed = [r["config"] for r in read_rows(tmp_path / "logs" / "add-climb1.csv")]
        assert "block_sizes=[64]" in climbed[0], climbed


def test_witness_refine_lfbo_refines_what_the_second_witness_sent_on(
    tmp_path: Path, whole_probe: None
) -> None:
    """``witness_refine="lfbo"`` (``seeded-witness``): the search that rule 2's second witness
    sends on (a 25% lead on Helion's timer, none on the common timer) refines with LFBO seeded
    from Helion's fastest, not with the climb, and says why; the default climbs, as above."""
    problem = add_problem(
        None, (), timer=TwoClocksTimer(0.25), log_path=str(tmp_path / "logs" / "add")
    )
    outcome = seeded.SeededSearch(marginal=False, witness_refine="lfbo").search(problem)

    assert_runs(problem, outcome)
    chosen = next(n for n in outcome.notes if n.startswith("refinement:"))
    assert chosen.startswith("refinement: lfbo (") and "witness_refine='lfbo'" in chosen, chosen
    logs = tmp_path / "logs"
    assert (logs / "add-lfbo.csv").exists() and not (logs / "add-climb1.csv").exists()
    assert seeded.refinement("auto", 0.0, "lfbo") == "lfbo"
    assert seeded.refinement("auto", 0.0) == "climb"
    assert seeded.refinement("climb", 0.5, "lfbo") == "climb"  # a forced refinement wins
    with pytest.raises(ValueError, match="witness_refine must be one of climb, lfbo"):
        seeded.SeededSearch(witness_refine="pattern")


def test_stop_reason() -> None:
    gain, short = seeded.GAIN_TO_CONTINUE, seeded.BUDGET_LEFT_TO_GO_ON_S - 1
    assert seeded.stop_reason(gain, False, None, True) is None
    assert seeded.stop_reason(0.0, True, 100.0, True) is None  # Helion's timer's witness
    assert seeded.stop_reason(0.0, True, short, True) == "budget spent"
    assert seeded.stop_reason(gain, False, short, False) == "budget spent"
    assert seeded.stop_reason(0.0, False, None, True) == "the default is not beaten beyond noise"
    assert seeded.stop_reason(0.01, False, None, False) == (
        "no neighbour beats the start beyond noise"
    )


def test_helion_lead() -> None:
    a, b = ({"block_sizes": [32]}, {"block_sizes": [64]})
    timed = [(0.8, helion.Config(**b)), (1.0, helion.Config(**a))]
    assert seeded.helion_lead(timed, seeded._canonical_id(helion.Config(**a))) == pytest.approx(
        0.25
    )
    assert seeded.helion_lead(timed, seeded._canonical_id(helion.Config(**b))) == 0.0
    assert seeded.helion_lead(timed, "not-there") == 0.0


def test_seeded_with_a_seed_equal_to_the_default_has_no_seeds_batch(tmp_path: Path) -> None:
    """A seed that is the default config (a cached entry tuned where nothing beat the default)
    leaves one config for rule 0: no batch runs for it (Helion's FiniteSearch refuses fewer than
    two configs; the example project once failed here), and the probe starts at the default."""
    bound = add.bind((torch.randn(256), torch.randn(256)))
    default = dict(bound.config_spec.default_config().config)
    problem = add_problem(
        None, (Seed(default, "cache: other shape"),), log_path=str(tmp_path / "logs" / "add")
    )
    outcome = seeded.SeededSearch().search(problem)

    assert_runs(problem, outcome)
    assert [p.name for p in (tmp_path / "logs").glob("*-seeds.csv")] == []
    assert any("of the default and 1 seeds was the default config" in n for n in outcome.notes)


def test_seeded_warm_refines_when_the_neighbourhood_beats_the_start(
    tmp_path: Path, whole_probe: None
) -> None:
    problem = warm_problem(128, tmp_path)  # a neighbour of the fastest seed (64) is faster still
    outcome = seeded.SeededSearch().search(problem)

    assert_runs(problem, outcome)
    assert outcome.config["block_sizes"] == [128]
    assert any(n.startswith("refined:") for n in outcome.notes), outcome.notes
    assert (tmp_path / "logs" / "add-lfbo.csv").exists()
    assert [r.stage for r in outcome.retimings] == ["early-stop", "final"]
    final = outcome.retimings[-1]
    assert {label.split(":")[0] for label in final.labels} >= {"default", "probe-best"}
    assert all(len(s) == seeded._INTERPRETER["rounds"] for s in final.samples_ms)


@pytest.mark.parametrize(("very_steep_paths", "copies"), [(3, 3), (seeded.LFBO_PATHS, 2)])
def test_a_very_steep_probe_gain_gives_lfbo_more_search_paths(
    tmp_path: Path,
    whole_probe: None,
    monkeypatch: pytest.MonkeyPatch,
    very_steep_paths: int,
    copies: int,
) -> None:
    """Rule 3's paths: the probe's best (block 128) is 100% faster than the start (the seed's 64)
    on ``BlockTimer``, over ``VERY_STEEP_GAIN``: Helion's LFBOTreeSearch is built with
    ``very_steep_paths`` search paths (its ``copies``); the interpreter's trim to one path is
    lifted here so that the rule's own number reaches Helion."""
    monkeypatch.delitem(seeded._INTERPRETER, "copies")
    built: list[int] = []
    caps: list[Any] = []

    def recording(search: Any, *args: Any) -> Any:
        caps.append(args)
        if type(search).__name__ == "LFBOTreeSearch":
            built.append(search.copies)
        return attach(search, *args)

    attach = seeded.attach
    monkeypatch.setattr(seeded, "attach", recording)
    problem = warm_problem(128, tmp_path)
    outcome = seeded.SeededSearch(very_steep_paths=very_steep_paths).search(problem)

    assert_runs(problem, outcome)
    assert built == [copies], built
    assert caps and all(c == (seeded.SEARCH_REP_MS,) for c in caps), caps  # rule 5, every stage
    assert any(n.startswith("LFBO: 3 search paths") for n in outcome.notes) == (copies == 3)


@pytest.mark.parametrize("recheck", [seeded.RECHECK, None])
def test_recheck_sets_helions_rebenchmark_threshold_for_the_lfbo_only(
    tmp_path: Path, whole_probe: None, monkeypatch: pytest.MonkeyPatch, recheck: float | None
) -> None:
    """``recheck`` (``RECHECK`` by default): rule 3's LFBO re-benchmarks every member timed under
    that multiple of the best so far (Helion's ``autotune_rebenchmark_threshold``, which its
    ``quick`` effort leaves at 0.9: a member that claims a new best by under 10% is never
    re-timed); ``None`` leaves Helion's value. The probe's batches keep Helion's own value, and
    the kernel's settings are restored after."""
    built: list[tuple[str, Any]] = []

    def recording(search: Any, *args: Any) -> Any:
        threshold = search.settings.autotune_rebenchmark_threshold
        built.append((type(search).__name__, threshold))
        return attach(search, *args)

    attach = seeded.attach
    monkeypatch.setattr(seeded, "attach", recording)
    problem = warm_problem(128, tmp_path)
    before = problem.bound.settings.autotune_rebenchmark_threshold
    seeded.SeededSearch(recheck=recheck).search(problem)

    assert seeded.SeededSearch().recheck == seeded.RECHECK == 1.0
    assert ("LFBOTreeSearch", before if recheck is None else recheck) in built, built
    assert all(t == before for name, t in built if name == "FiniteSearch"), built
    assert problem.bound.settings.autotune_rebenchmark_threshold == before


def test_lfbo_paths_rule() -> None:
    assert seeded.lfbo_paths(seeded.VERY_STEEP_GAIN, 3) == 3
    assert seeded.lfbo_paths(seeded.VERY_STEEP_GAIN - 0.001, 3) == seeded.LFBO_PATHS == 2
    assert seeded.lfbo_paths(0.9, seeded.LFBO_PATHS) == 2


def test_seeded_refinement_cuts_compiles_at_five_times_the_earlier_q90(
    tmp_path: Path, whole_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 3: the refinement's LFBOTreeSearch gets a compile-timeout floor from the compile times
    of the batches before it, and every batch after the first its compile timeout; the first
    batch gets 5 s, not Helion's 60 s default. The interpreter compiles nothing ahead,
    so its CSV logs carry no compile times: a GPU probe's times (0.2 s, one at 1.5 s) stand in
    for them here. The search objects are Helion's own, built with whatever they accept; a
    misspelt keyword would be dropped. The kernel's settings are restored after."""
    read: list[list[str]] = []

    def gpu_probe_times(paths: Any) -> list[float]:
        read.append(sorted(Path(p).name for p in paths))
        return [0.2] * 9 + [1.5] if read[-1] else []

    built: list[tuple[str, Any, int]] = []

    def recording(search: Any, *args: Any) -> Any:
        built.append(
            (
                type(search).__name__,
                getattr(search, "compile_timeout_lower_bound", None),
                search.settings.autotune_compile_timeout,
            )
        )
        return attach(search, *args)

    monkeypatch.setattr(seeded.monitor, "compile_times", gpu_probe_times)
    attach = seeded.attach
    monkeypatch.setattr(seeded, "attach", recording)
    problem = warm_problem(128, tmp_path)
    before = problem.bound.settings.autotune_compile_timeout
    # No rule 3b climb after LFBO: the last cut read is then LFBO's.
    outcome = seeded.SeededSearch(polish_steps=0).search(problem)

    assert any(n.startswith("refined:") for n in outcome.notes), outcome.notes
    assert read[0] == [] and read[1] == ["add-seeds.csv"], read  # the seeds' cut, the probe's
    assert {"add-seeds.csv", "add-probe.csv"} <= set(read[-1]), read  # what LFBO's cut read
    assert "add-lfbo.csv" not in read[-1], read
    assert built[0] == ("FiniteSearch", None, 5), built  # the seeds: nothing known yet
    assert built[1] == ("FiniteSearch", None, 8), built  # the probe: 5x the seeds' q90, 7.5 s
    assert ("LFBOTreeSearch", 7.5, 8) in built, built
    assert problem.bound.settings.autotune_compile_timeout == before


def test_a_climb_step_s_compile_cut_comes_from_every_batch_before_it(
    tmp_path: Path, whole_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold, the probe is the first batch (5 s); every later batch, each climb step included,
    gets 5x the earlier batches' q90 (GPU-like times stand in: the interpreter logs none)."""
    read: list[list[str]] = []

    def gpu_times(paths: Any) -> list[float]:
        read.append(sorted(Path(p).name for p in paths))
        return [0.2] * 9 + [3.0] if read[-1] else []

    built: list[tuple[str, int]] = []

    def recording(search: Any, *args: Any) -> Any:
        built.append((type(search).__name__, search.settings.autotune_compile_timeout))
        return attach(search, *args)

    monkeypatch.setattr(seeded.monitor, "compile_times", gpu_times)
    attach = seeded.attach
    monkeypatch.setattr(seeded, "attach", recording)
    problem = add_problem(None, (), timer=GentleTimer(), log_path=str(tmp_path / "logs" / "add"))
    seeded.SeededSearch(extend=False).search(problem)

    assert (tmp_path / "logs" / "add-climb1.csv").exists()
    assert built[0] == ("FiniteSearch", 5), built
    assert len(built) >= 3 and all(b == ("FiniteSearch", 15) for b in built[1:]), built
    assert all("add-probe.csv" in r for r in read[1:]), read


def test_compile_timeout_restores_and_leaves_a_raised_one_alone() -> None:
    from pytest_helion_tune.strategies.helion_env import prepared

    problem = add_problem(None, ())
    settings = problem.bound.settings
    users = settings.autotune_compile_timeout
    try:
        settings.autotune_compile_timeout = 60
        with pytest.raises(RuntimeError), prepared(problem, [], 12.5):
            assert settings.autotune_compile_timeout == 13
            raise RuntimeError("a search failed")
        assert settings.autotune_compile_timeout == 60
        settings.autotune_compile_timeout = 120  # the user's, for slow compiles
        with prepared(problem, [], 12.5):
            assert settings.autotune_compile_timeout == 120
        settings.autotune_compile_timeout = 5  # lowered by the user: never raised
        with prepared(problem, [], 12.5):
            assert settings.autotune_compile_timeout == 5
    finally:
        settings.autotune_compile_timeout = users


def test_refine_compile_timeout_rule() -> None:
    assert seeded.refine_compile_timeout([]) is None  # Helion's own floor
    assert seeded.refine_compile_timeout([0.3] * 20) == seeded.REFINE_COMPILE_TIMEOUT_MIN_S == 5
    assert seeded.refine_compile_timeout([1.0] * 17 + [2.0, 2.0, 30.0]) == 10.0  # 90th percentile


def test_compile_times_read_from_a_helion_csv(tmp_path: Path) -> None:
    """A CSV in the layout Helion 1.5.0 writes (written by hand): started rows carry no time, a
    failed compile still took its time, a compile timeout's time is the timeout's (left out), a
    benchmark timeout's is the compile's, and a last row cut short by a kill is left out."""
    log = tmp_path / "search.csv"
    log.write_text(
        HELION_CSV_HEADER + 'r,0.1,a,0,started,,0.40,"Config(num_warps=4)"\n'
        'r,0.2,a,0,ok,0.0123,0.40,"Config(num_warps=4)"\n'
        'r,0.3,b,0,error,,1.25,"Config(num_warps=8)"\n'
        'r,0.4,c,0,ok,0.0456,,"Config(num_warps=2)"\n'
        'r,0.5,d,0,timeout,,30.02,"Config(num_warps=32)"\n'
        'r,0.55,f,0,timeout,,0.85,"Config(num_warps=16)"\n'
        'r,0.57,g,0,timeout,,5.01,"Config(num_warps=1)"\n'
        "r,0.6,e,0,ok,0.01,7.5",
        encoding="utf-8",
    )
    # The 30.02 s and 5.01 s timeouts are compiles cut off (seeded's least cut is 5 s); the
    # 0.85 s one a benchmark that timed out.
    assert monitor.compile_times([log, tmp_path / "missing.csv"]) == [0.40, 1.25, 0.85]
    assert monitor.compile_outcomes([log]) == [
        ("Config(num_warps=4)", None),
        ("Config(num_warps=8)", None),  # a failed compile ended: not cut off
        ("Config(num_warps=2)", None),
        ("Config(num_warps=32)", 30.02),
        ("Config(num_warps=16)", None),  # the benchmark timed out, after its compile
        ("Config(num_warps=1)", 5.01),
    ]
    assert monitor.compile_timeouts([log]) == ["Config(num_warps=32)", "Config(num_warps=1)"]


def test_dead_ends_are_values_only_ever_cut_off_at_the_coming_cut_or_longer() -> None:
    """Rule 6 on the shape of the H100's warm row_sum 128x262144 search (hand-written configs): a
    131072-wide reduction loop was cut off with blocks of 2 and 4 and with 4 and 8 warps, and
    compiled with block 1 and 16 warps. Dead: the loop with a block of 2 and with 8 warps (two
    cuts each, never compiled); not the loop alone, nor the loop with 32 warps (never tried).
    One cut is not enough, and a cut shorter than the coming batch's says nothing."""
    loop = {"block_sizes": [2], "reduction_loops": [131072], "num_warps": 4}
    outcomes: list[tuple[dict[str, Any], float | None]] = [
        ({"block_sizes": [1], "reduction_loops": [None], "num_warps": 4}, None),
        ({"block_sizes": [1], "reduction_loops": [None], "num_warps": 8}, None),
        ({**loop, "block_sizes": [1], "num_warps": 16}, None),
        ({**loop, "num_warps": 8}, 12.0),
        ({**loop, "num_warps": 16}, 12.0),
        ({**loop, "block_sizes": [4], "num_warps": 8}, 12.0),
    ]
    dead = seeded.dead_ends(outcomes, 9.4)
    assert seeded.shown_dead_ends(dead) == [
        "block_sizes[0]=2",
        "num_warps=8 & reduction_loops[0]=131072",
    ]
    assert seeded.doomed({**loop, "num_warps": 16}, dead)  # block 2
    assert seeded.doomed({**loop, "block_sizes": [1], "num_warps": 8}, dead)
    assert not seeded.doomed({**loop, "block_sizes": [1], "num_warps": 32}, dead)
    assert not seeded.doomed({**loop, "block_sizes": [1], "reduction_loops": [None]}, dead)
    assert seeded.dead_ends(outcomes, 12.0) == dead
    assert seeded.dead_ends(outcomes, 12.5) == set()  # Helion would wait 13 s, not 12
    assert seeded.dead_ends(outcomes[:4], 9.4) == set()  # one cut only
    assert not seeded.doomed(loop, set())


def rule6_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if seeded.DEAD_END_NOTE in n]


def rule6_note(stage: str, *shown: str) -> str:
    """The note rule 6 writes for a batch that leaves out these values."""
    values = ", ".join(f"`{v}`" for v in shown)
    return (
        f"{stage}: leaves out neighbours with {values} (compiles cut off 2+ times, never "
        "compiled; rule 6)"
    )


def test_the_climb_leaves_out_a_value_whose_compiles_were_all_cut_off(
    tmp_path: Path, whole_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 6 in a search: the probe's log is made to say that two configs with block 128 were
    cut off at 30 s (the interpreter compiles nothing ahead, so none is cut off here), and the
    climb from block 64 proposes no block 128, which it otherwise finds and ends on (checked
    with the rule off). The note names the value."""
    outcomes = seeded.monitor.compile_outcomes
    slow = [
        ("Config(block_sizes=[128], num_warps=4)", 30.0),
        ("Config(block_sizes=[128], num_warps=8)", 30.0),
    ]

    def cut_in_the_probe(paths: Any) -> list[tuple[str, float | None]]:
        paths = list(paths)
        real = outcomes(paths)
        return real + slow if any(Path(p).name == "add-probe.csv" for p in paths) else real

    monkeypatch.setattr(seeded.monitor, "compile_outcomes", cut_in_the_probe)
    results = {}
    for skip in (True, False):
        logs = tmp_path / str(skip)
        problem = add_problem(None, (), timer=GentleTimer(), log_path=str(logs / "add"))
        outcome = seeded.SeededSearch(extend=False, skip_dead_ends=skip).search(problem)
        climbed = {r["config"] for r in read_rows(logs / "add-climb1.csv")}
        results[skip] = (outcome, any("block_sizes=[128]" in c for c in climbed))
    (kept, proposed), (plain, proposed_without) = results[True], results[False]
    assert proposed_without and plain.config["block_sizes"] == [128]
    assert not proposed and kept.config["block_sizes"] == [64]
    assert_runs(problem, kept)
    assert rule6_notes(kept.notes) == [rule6_note("climb1", "block_sizes[0]=128")], kept.notes
    assert not any("leaves out" in n for n in plain.notes)


def test_seeded_climb_probes_again_from_each_better_config(
    tmp_path: Path, whole_probe: None
) -> None:
    """Rule 3's climb variant: from the default (block 32) the probe finds 64; a probe around 64
    finds 128, the optimum; a probe around 128 finds nothing better and the climb ends. No LFBO."""
    problem = add_problem(None, (), timer=BlockTimer(128), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch("seeded-climb", refine="climb", extend=False).search(problem)

    assert_runs(problem, outcome)
    assert outcome.config["block_sizes"] == [128]
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.glob("*-climb*.csv")) == ["add-climb1.csv", "add-climb2.csv"]
    assert not (logs / "add-lfbo.csv").exists()
    first = {r["config"] for r in read_rows(logs / "add-climb1.csv")}
    assert any("block_sizes=[64]" in c for c in first) and any(
        "block_sizes=[128]" in c for c in first
    )
    final = outcome.retimings[-1]
    assert final.stage == "final"
    assert any(label.startswith("climb-best:") for label in final.labels), final.labels


class GentleTimer(Timer):
    """``add`` on 256 elements where each doubling of the block from the default's 32 gains 5%
    up to 128, every other block far slower: a probe gain above ``GAIN_TO_CONTINUE`` and below
    ``STEEP_GAIN``."""

    name = "gentle"

    def sample(self, fn: Any, label: str) -> float:
        fn()
        launch = re.search(r"_launcher\(_helion_add, \((\d+),\)", _generated(fn))
        assert launch, "no add kernel launch in the timed callable"
        return {32: 1.0, 64: 0.95, 128: 0.9025}.get(256 // int(launch.group(1)), 2.0)


def test_seeded_climbs_where_the_probe_gained_under_ten_percent(
    tmp_path: Path, whole_probe: None
) -> None:
    """Rule 3 as ``seeded`` runs it: the probe's best (block 64) is 5% ahead of the default, under
    ``STEEP_GAIN``, so the climb refines, not LFBO, and finds block 128 one step further."""
    problem = add_problem(None, (), timer=GentleTimer(), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(extend=False).search(problem)

    assert_runs(problem, outcome)
    assert outcome.config["block_sizes"] == [128]
    chosen = next(n for n in outcome.notes if n.startswith("refinement:"))
    assert chosen.startswith("refinement: climb (the probe's best is +5.3% vs the start"), chosen
    logs = tmp_path / "logs"
    assert (logs / "add-climb1.csv").exists() and not (logs / "add-lfbo.csv").exists()


def test_seeded_runs_lfbo_where_the_probe_gained_ten_percent_or_more(
    tmp_path: Path, whole_probe: None
) -> None:
    problem = add_problem(None, (), timer=BlockTimer(128), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch().search(problem)

    # The probe's block 64 is 50% ahead of the default's 32 (the interpreter's one-generation
    # LFBO need not reach 128).
    assert outcome.config["block_sizes"] in ([64], [128])
    assert any(n.startswith("refinement: lfbo (") for n in outcome.notes), outcome.notes
    logs = tmp_path / "logs"
    assert (logs / "add-lfbo.csv").exists() and not list(logs.glob("add-climb*.csv"))


def test_seeded_polish_climbs_from_the_lfbo_refinements_best(
    tmp_path: Path, whole_probe: None
) -> None:
    """Rule 3b: the probe's block 64 is 33% ahead of the default's 32, so LFBO refines (one
    generation under the interpreter, which need not reach 256); two climb steps from LFBO's best
    then reach block 256 whatever LFBO found, and their CSV logs follow LFBO's. On by default
    (``POLISH_STEPS``)."""
    problem = add_problem(None, (), timer=BlockTimer(256), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(extend=False).search(problem)

    assert_runs(problem, outcome)
    assert outcome.config["block_sizes"] == [256]
    assert any(n.startswith("refinement: lfbo (") for n in outcome.notes), outcome.notes
    polish = next(n for n in outcome.notes if n.startswith("polish:"))
    assert polish.startswith("polish: 2 climb step(s) at most from LFBO's best"), polish
    logs = tmp_path / "logs"
    assert (logs / "add-lfbo.csv").exists() and (logs / "add-polish-climb1.csv").exists()
    lfbo_configs = {text for _ms, text in monitor.finished([logs / "add-lfbo.csv"])}
    polish_configs = {text for _ms, text in monitor.finished([logs / "add-polish-climb1.csv"])}
    assert len(polish_configs - lfbo_configs) >= 1  # it benchmarked what LFBO had not
    assert seeded.POLISH_STEPS == 2
    with pytest.raises(ValueError, match="polish_steps must be 0 or more, not -1"):
        seeded.SeededSearch(polish_steps=-1)


def test_a_polish_step_that_leaves_out_dead_ends_is_named_as_a_polish_step(
    tmp_path: Path, whole_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 6 inside rule 3b: the logs up to LFBO's are made to say that configs with 2 and 8
    warps (the warp count's neighbours) were cut off at 30 s twice each, and nothing else; the
    polish's first step leaves them out, and its note names it ``polish-climb1``, not the plain
    climb's ``climb1``."""
    outcomes = seeded.monitor.compile_outcomes
    slow = [
        (f"Config(block_sizes=[{b}], num_warps={w})", 30.0)
        for b, w in ((16, 2), (32, 2), (64, 8), (128, 8))
    ]

    def cut_in_lfbo(paths: Any) -> list[tuple[str, float | None]]:
        paths = list(paths)  # after LFBO: only the cut-offs, so no compiled config carries them
        return slow if any(Path(p).name == "add-lfbo.csv" for p in paths) else outcomes(paths)

    monkeypatch.setattr(seeded.monitor, "compile_outcomes", cut_in_lfbo)
    problem = add_problem(None, (), timer=BlockTimer(256), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(extend=False).search(problem)

    assert_runs(problem, outcome)
    expected = rule6_note("polish-climb1", "num_warps=2", "num_warps=8")
    assert rule6_notes(outcome.notes) == [expected], outcome.notes
    logs = tmp_path / "logs"  # the step's centre, LFBO's best, is in LFBO's log: not proposed
    lfbo = {r["config"] for r in read_rows(logs / "add-lfbo.csv")}
    proposed = {r["config"] for r in read_rows(logs / "add-polish-climb1.csv")} - lfbo
    assert proposed and not any("num_warps=2," in c or "num_warps=8," in c for c in proposed)


def test_refinement_rule() -> None:
    assert seeded.refinement("auto", seeded.STEEP_GAIN) == "lfbo"
    assert seeded.refinement("auto", seeded.STEEP_GAIN - 0.001) == "climb"
    assert seeded.refinement("lfbo", 0.02) == "lfbo"
    assert seeded.refinement("climb", 0.5) == "climb"


def test_a_climb_step_is_sized_by_the_budget_left(tmp_path: Path) -> None:
    """A climb step is benchmarked whole, so with 9.5 s of budget left it takes 9 neighbours (one a
    second, as the probe), not the 20 the default config has."""
    problem = add_problem(None, (), timer=BlockTimer(128), budget_s=100.0)
    current = problem.bound.config_spec.default_config()
    assert (
        len(seeded.pattern_neighbours(problem.bound, current, problem.bound.settings, False)) > 10
    )
    search = seeded.SeededSearch("seeded-climb", refine="climb")
    sent: list[int] = []
    finite = search._finite

    def counting(problem: SearchProblem, configs: list[Any], *rest: Any) -> None:
        sent.append(len(configs))
        finite(problem, configs, *rest)

    search._finite = counting  # type: ignore[method-assign]
    started = time.perf_counter() - 90.5  # as if 90.5 s of the 100 s were spent
    outcome = SearchOutcome(config={})
    search._climb(problem, outcome, {}, current, 1000, tmp_path / "add", started, steps=1)

    assert sent == [1 + 9]  # the current config and 9 neighbours
    assert (tmp_path / "add-climb1.csv").exists()


def test_warp_pairs_pair_each_block_size_with_the_warp_count() -> None:
    """``warp_pairs`` adds the configs that change a block size and the warp count together (the
    work one program does against its threads); without it no neighbour changes both."""
    problem = add_problem(None, ())
    bound, settings = problem.bound, problem.bound.settings
    default = bound.config_spec.default_config()

    def both_changed(configs: list[Any]) -> list[Any]:
        return [
            c
            for c in configs
            if c.config["num_warps"] != default.config["num_warps"]
            and c.config["block_sizes"] != default.config["block_sizes"]
        ]

    single = seeded.pattern_neighbours(bound, default, settings, warp_pairs=False)
    paired = seeded.pattern_neighbours(bound, default, settings, warp_pairs=True)
    assert both_changed(single) == []
    added = both_changed(paired)
    blocks = len(default.config["block_sizes"])
    assert len(added) == blocks * 4  # each block size and the warps one step up or down
    assert len(paired) == len(single) + len(added)


def test_early_stop_keeps_the_start_or_a_faster_default() -> None:
    times = [1.00, 1.01, 0.995]  # default, start (a seed), a neighbour 0.5% ahead of the start
    assert seeded.early_stop_choice(times, 2, 1, True, 0.005) == 0  # the default re-timed faster
    assert seeded.early_stop_choice(times, 2, 1, False, 0.005) == 1  # no default: the start
    assert seeded.early_stop_choice([1.0, 0.99, 0.98], 2, 1, True, 0.01) == 1
    assert seeded.early_stop_choice(times, 2, 1, True, 0.02) == 2  # a stop for the budget


def test_refine_compile_timeout_never_above_helions_floor() -> None:
    assert seeded.refine_compile_timeout([7.0] * 20) == seeded.HELION_COMPILE_TIMEOUT_FLOOR_S


def test_log_path_starts_a_search_afresh_and_refuses_a_dotted_name(tmp_path: Path) -> None:
    """Helion appends to its logs: a search's earlier logs (its own and its stages') go first,
    and only those; a dotted name would let Helion's ``with_suffix`` merge stages' logs."""
    from pytest_helion_tune.strategies.helion_search import log_path

    logs = tmp_path / "logs"
    logs.mkdir()
    old = ["k__seeded.csv", "k__seeded.log", "k__seeded-probe.csv", "k__seeded-lfbo.sources.csv"]
    kept = ["k__seeded_warm-probe.csv", "k__seededx.csv", "other.csv"]
    for name in old + kept:
        (logs / name).write_text("x")
    with log_path(add_problem(None, (), log_path=str(logs / "k__seeded"))) as base:
        assert base == logs / "k__seeded"
        assert sorted(p.name for p in logs.iterdir()) == sorted(kept)
    dotted = add_problem(None, (), log_path=str(logs / "test_k.py.test_add"))
    with pytest.raises(ValueError, match="must not contain a dot"), log_path(dotted):
        pass


def test_the_sessions_llm_client_is_closed_with_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client a case built (an httpx pool) is closed when pytest unconfigures the session;
    a session that built none closes nothing."""
    from pytest_helion_tune.llm.client import HttpLLMClient
    from pytest_helion_tune.options import Options
    from pytest_helion_tune.session import TuneSession

    monkeypatch.setenv("HELION_LLM_PROVIDER", "openai-chat")
    monkeypatch.setenv("HELION_LLM_MODEL", "m")
    monkeypatch.setenv("HELION_LLM_API_BASE", "http://127.0.0.1:9/v1")
    session = TuneSession(Options("llm", cache_dir=tmp_path))
    session.close()  # none built yet
    client = session.llm_client()
    assert isinstance(client, HttpLLMClient)
    http = client._client()  # the pool a request would use
    session.close()
    assert http.is_closed and client._http is None


def test_prepared_keeps_the_kernels_own_seed_configs() -> None:
    """Every strategy's Helion search sees the kernel's ``autotune_seed_configs`` first, then the
    problem's seeds (once each); the user's setting is restored after."""
    from pytest_helion_tune.strategies.helion_env import prepared

    problem = add_problem(None, ())
    settings = problem.bound.settings
    own, seed = helion.Config(block_sizes=[8]), helion.Config(block_sizes=[16])
    settings.autotune_seed_configs = [own]
    try:
        with prepared(problem, [seed, own]) as inside:
            assert inside.autotune_seed_configs == [own, seed]
        with prepared(problem, []) as inside:
            assert inside.autotune_seed_configs == [own]
        assert settings.autotune_seed_configs == [own]
    finally:
        settings.autotune_seed_configs = None
    with prepared(problem, []) as inside:
        assert inside.autotune_seed_configs is None


def test_seeded_refinement_must_be_known() -> None:
    with pytest.raises(ValueError, match="refine must be one of auto, lfbo, climb"):
        seeded.SeededSearch(refine="hill")


class BlockWarpsTimer(Timer):
    """Like ``BlockTimer``, with the distance of num_warps from ``warps`` added: two fields whose
    gains add up, each found alone by a probe of one-field changes."""

    name = "block-warps"

    def __init__(self, block: int, warps: int) -> None:
        self.block, self.warps = block, warps

    def launched(self, fn: Any) -> tuple[int, int]:
        """Runs ``fn`` and reads the block size and warp count of the add kernel it launched."""
        fn()
        launch = re.search(r"_launcher\(_helion_add, \((\d+),\).*num_warps=(\d+)", _generated(fn))
        assert launch, "no add kernel launch in the timed callable"
        return 256 // int(launch.group(1)), int(launch.group(2))

    def sample(self, fn: Any, label: str) -> float:
        block, warps = self.launched(fn)
        return 1.0 + abs(math.log2(block / self.block)) + abs(math.log2(warps / self.warps))


def test_seeded_joins_the_probes_improving_changes(tmp_path: Path, whole_probe: None) -> None:
    """Rule 1b of ``seeded``: from the default (block 32, 4 warps) the probe finds block 64 and 8
    warps faster, each alone; the combine batch tries both together, which is the optimum. (Warp
    pairs off: with them, rule 1's probe holds that pair itself; see the next test.)"""
    problem = add_problem(
        None, (), timer=BlockWarpsTimer(64, 8), log_path=str(tmp_path / "logs" / "add")
    )
    bound = problem.bound
    default = bound.config_spec.default_config().config
    assert (default["block_sizes"], default["num_warps"]) == ([32], 4)
    outcome = seeded.SeededSearch(warp_pairs=False, extend=False).search(problem)

    assert_runs(problem, outcome)
    assert any("(1 joining its improving changes)" in n for n in outcome.notes), outcome.notes
    rows = read_rows(tmp_path / "logs" / "add-combine.csv")  # a lone config goes in twice
    (joined,) = {r["config"] for r in rows}
    assert "block_sizes=[64]" in joined and "num_warps=8" in joined
    assert {float(r["perf_ms"]) for r in rows} == {1.0}  # the optimum, before any refinement
    assert (outcome.config["block_sizes"], outcome.config["num_warps"]) == ([64], 8)


def test_the_probe_holds_a_block_size_and_warps_pair(tmp_path: Path, whole_probe: None) -> None:
    """Rule 1 with warp pairs (``seeded``'s default): block 64 with 8 warps is one of the probe's
    own neighbours, so it is benchmarked there, and no combine batch is needed for it."""
    problem = add_problem(
        None, (), timer=BlockWarpsTimer(64, 8), log_path=str(tmp_path / "logs" / "add")
    )
    outcome = seeded.SeededSearch().search(problem)

    assert_runs(problem, outcome)
    probed = [r["config"] for r in read_rows(tmp_path / "logs" / "add-probe.csv")]
    assert any("block_sizes=[64]" in c and "num_warps=8" in c for c in probed), probed
    assert (outcome.config["block_sizes"], outcome.config["num_warps"]) == ([64], 8)


def test_combined_changes_skip_a_second_change_to_one_field() -> None:
    """The faster of two changes to one field is kept; what is left joins, fastest first."""
    bound = add.bind((torch.randn(256), torch.randn(256)))
    start = bound.config_spec.default_config()
    timed = [
        (1.0, helion.Config(**{**start.config, "num_warps": 8})),
        (1.5, helion.Config(**{**start.config, "num_warps": 2})),  # the same field: left out
        (2.0, helion.Config(**{**start.config, "block_sizes": [64]})),
        (2.5, helion.Config(**{**start.config, "num_stages": 2})),
        (3.0, start),
        (4.0, helion.Config(**{**start.config, "block_sizes": [16]})),  # slower: not a gain
    ]
    joined = [c.config for c in seeded.combined_changes(bound, start, timed, cap=4)]
    assert [(c["num_warps"], c["block_sizes"], c["num_stages"]) for c in joined] == [
        (8, [64], 1),
        (8, [64], 2),
    ]
    assert [c.config for c in seeded.combined_changes(bound, start, timed, cap=1)] == joined[:1]
    assert seeded.combined_changes(bound, start, timed[:1], cap=4) == []  # start not timed


def test_combined_changes_join_changes_to_two_entries_of_one_list() -> None:
    """Eviction policies hold one entry per load: changes to two loads are two changes."""
    bound = add.bind((torch.randn(256), torch.randn(256)))
    start = bound.config_spec.default_config()
    assert start.config["load_eviction_policies"] == ["", ""]
    timed = [
        (1.0, helion.Config(**{**start.config, "load_eviction_policies": ["last", ""]})),
        (2.0, helion.Config(**{**start.config, "load_eviction_policies": ["", "first"]})),
        (2.5, helion.Config(**{**start.config, "load_eviction_policies": ["first", ""]})),
        (3.0, start),
    ]
    (joined,) = seeded.combined_changes(bound, start, timed, cap=4)
    assert joined.config["load_eviction_policies"] == ["last", "first"]


def test_contested_combine_swaps_a_joined_change_for_its_runner_up() -> None:
    """Rule 1c: of two changes to one entry that both beat the start (load 1 to ``last`` and to
    ``first``), rule 1b joins the faster; ``contested`` adds the largest join with the runner-up
    in its place, one config per runner-up, fastest first, and none for a kept change that the
    largest join does not hold."""
    bound = add.bind((torch.randn(256), torch.randn(256)))
    start = bound.config_spec.default_config()
    assert start.config["load_eviction_policies"] == ["", ""]

    def with_(**fields: Any) -> Any:
        return helion.Config(**{**start.config, **fields})

    timed = [
        (1.0, with_(load_eviction_policies=["last", ""])),
        (1.5, with_(num_warps=8)),
        (2.0, with_(load_eviction_policies=["", "last"])),
        (2.1, with_(load_eviction_policies=["", "first"])),  # runner-up on load 1
        (2.2, with_(load_eviction_policies=["first", ""])),  # runner-up on load 0
        (2.3, with_(num_warps=2)),  # runner-up on the warp count
        (3.0, start),
    ]

    def shown(configs: list[Any]) -> list[tuple[list[str], int]]:
        return [(c.config["load_eviction_policies"], c.config["num_warps"]) for c in configs]

    plain = shown(seeded.combined_changes(bound, start, timed, cap=4))
    assert plain == [(["last", ""], 8), (["last", "last"], 8)]
    assert shown(seeded.combined_changes(bound, start, timed, cap=4, contested=1)) == [
        *plain,
        (["last", "first"], 8),
    ]
    assert shown(seeded.combined_changes(bound, start, timed, cap=4, contested=2)) == [
        *plain,
        (["last", "first"], 8),
        (["first", "last"], 8),
    ]
    # cap 1: the largest join is load 0's ``last`` with 8 warps; load 1's runner-up has nothing
    # to swap in it, load 0's and the warp count's have.
    assert shown(seeded.combined_changes(bound, start, timed, cap=1, contested=2)) == [
        (["last", ""], 8),
        (["first", ""], 8),
        (["last", ""], 2),
    ]
    with pytest.raises(ValueError, match="contested must be 0 or more"):
        seeded.SeededSearch(contested=-1)


class PeakTimer(BlockWarpsTimer):
    """The default's block 32 sits on a peak: both of its block neighbours (16 and 64) beat it,
    64 by more; 8 warps beat the default's 4."""

    name = "peak"

    def sample(self, fn: Any, label: str) -> float:
        block, warps = self.launched(fn)
        on_block = 3.0 if block == 32 else 1.0 + 0.1 * abs(math.log2(block / 64))
        return on_block + 0.5 * abs(math.log2(warps / 8))


@pytest.mark.parametrize("contested", [0, 1])
def test_a_search_with_contested_tries_the_runner_up_in_its_combine_batch(
    tmp_path: Path, whole_probe: None, contested: int
) -> None:
    """``seeded-contested`` end to end: the probe finds blocks 64 and 16 both faster than the
    default's 32 (64 more so) and 8 warps faster; rule 1b joins block 64 with 8 warps, and rule
    1c also block 16 with 8 warps, in the same combine batch."""
    problem = add_problem(None, (), timer=PeakTimer(64, 8), log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(warp_pairs=False, contested=contested).search(problem)

    assert_runs(problem, outcome)
    combined = {r["config"] for r in read_rows(tmp_path / "logs" / "add-combine.csv")}
    assert any("block_sizes=[64]" in c and "num_warps=8" in c for c in combined), combined
    swapped = any("block_sizes=[16]" in c and "num_warps=8" in c for c in combined)
    assert swapped == bool(contested), combined


def test_extended_changes_take_integer_fields_one_step_further() -> None:
    """A pattern move: each improving change goes one step further in its integer fields, in the
    direction it moved (block 32 -> 64 -> 128, 4 -> 8 -> 16 warps, 4 -> 2 -> 1 warps), other
    fields it changed kept; a change of no integer field, or at the field's bound, gives nothing."""
    bound = add.bind((torch.randn(256), torch.randn(256)))
    start = bound.config_spec.default_config()
    assert (start.config["block_sizes"], start.config["num_warps"]) == ([32], 4)
    eviction = {"load_eviction_policies": ["last", ""]}
    timed = [
        (1.0, helion.Config(**{**start.config, "num_warps": 8})),
        (2.0, helion.Config(**{**start.config, "block_sizes": [64], **eviction})),
        (2.2, helion.Config(**{**start.config, "load_eviction_policies": ["", "first"]})),
        (3.0, start),
        (4.0, helion.Config(**{**start.config, "num_stages": 2})),  # slower: not a gain
    ]
    moved = [c.config for c in seeded.extended_changes(bound, start, timed, cap=4)]
    assert [(c["num_warps"], c["block_sizes"], c["load_eviction_policies"]) for c in moved] == [
        (16, [32], ["", ""]),
        (4, [128], ["last", ""]),
    ]
    assert len(seeded.extended_changes(bound, start, timed, cap=1)) == 1
    down = [(1.0, helion.Config(**{**start.config, "num_warps": 2})), (3.0, start)]
    (fewer,) = seeded.extended_changes(bound, start, down, cap=4)
    assert fewer.config["num_warps"] == 1
    at_bound = [(1.0, helion.Config(**{**start.config, "num_warps": 1})), (3.0, start)]
    assert seeded.extended_changes(bound, start, at_bound, cap=4) == []
    assert seeded.extended_changes(bound, start, timed[:1], cap=4) == []  # start not timed


@pytest.mark.parametrize("extend", [True, False])
def test_seeded_extend_reaches_an_optimum_two_steps_away(
    tmp_path: Path, whole_probe: None, extend: bool
) -> None:
    """``extend``: the optimum is 16 warps, two steps from the default's 4; the probe finds 8
    faster, and the combine batch, which holds no join here (one improving change), takes it to
    16, the optimum, before any refinement. Without ``extend`` no combine batch runs."""
    problem = add_problem(
        None, (), timer=BlockWarpsTimer(32, 16), log_path=str(tmp_path / "logs" / "add")
    )
    outcome = seeded.SeededSearch(extend=extend).search(problem)

    assert_runs(problem, outcome)
    combine = tmp_path / "logs" / "add-combine.csv"
    if not extend:
        assert not combine.exists()
        assert not any("joining" in n for n in outcome.notes), outcome.notes
        return
    assert any("(1 joining or extending its improving changes)" in n for n in outcome.notes)
    (moved,) = {r["config"] for r in read_rows(combine)}
    assert "block_sizes=[32]" in moved and "num_warps=16" in moved
    assert {float(r["perf_ms"]) for r in read_rows(combine)} == {1.0}
    assert (outcome.config["block_sizes"], outcome.config["num_warps"]) == ([32], 16)


class BlockCurveTimer(Timer):
    """``add``'s latency by block size alone, from ``curve`` (block -> ms; 2.0 off it): a
    landscape where one step from the default gains little and the next a lot."""

    name = "block-curve"

    def __init__(self, curve: dict[int, float]) -> None:
        self.curve = curve

    def sample(self, fn: Any, label: str) -> float:
        fn()
        launch = re.search(r"_launcher\(_helion_add, \((\d+),\)", _generated(fn))
        assert launch, "no add kernel launch in the timed callable"
        return self.curve.get(256 // int(launch.group(1)), 2.0)


@pytest.mark.parametrize("marginal", [True, False])
def test_a_marginal_lead_goes_on_with_the_climb(
    tmp_path: Path, whole_probe: None, marginal: bool
) -> None:
    """Rule 2b: block 64 leads the default's 32 by 1% (under the 1.5% that rule 2 asks, over
    0.5%) and block 128, one step further, is twice as fast. Without ``marginal`` the search
    stops after the probe with the default; with it, it climbs to 128."""
    timer = BlockCurveTimer({16: 1.2, 32: 1.0, 64: 0.99, 128: 0.5, 256: 0.6})
    problem = add_problem(None, (), timer=timer, log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(marginal=marginal, extend=False).search(problem)

    assert_runs(problem, outcome)
    if not marginal:
        assert any("stopped after the probe" in n for n in outcome.notes), outcome.notes
        assert outcome.config["block_sizes"] == [32]
        return
    assert any("a marginal lead of +1.0% vs the start" in n for n in outcome.notes)
    assert (tmp_path / "logs" / "add-climb1.csv").exists()
    assert outcome.config["block_sizes"] == [128]
    assert outcome.best_ms == 0.5


def test_a_marginal_climb_that_finds_nothing_more_keeps_the_default(
    tmp_path: Path, whole_probe: None
) -> None:
    """Rule 2b's guard: block 64 leads the default by 1% and nothing beyond it is faster, so the
    climb ends where it began; the final pick (block 64, still 1% ahead) leads the start by less
    than rule 2's 1.5%, and the default is kept, as in a stop for noise."""
    timer = BlockCurveTimer({16: 1.2, 32: 1.0, 64: 0.99, 128: 1.1})
    problem = add_problem(None, (), timer=timer, log_path=str(tmp_path / "logs" / "add"))
    outcome = seeded.SeededSearch(marginal=True).search(problem)

    assert_runs(problem, outcome)
    assert any("a marginal lead of +1.0%" in n for n in outcome.notes), outcome.notes
    assert any("marginal: the best led the start by +1.0%" in n for n in outcome.notes)
    assert outcome.config["block_sizes"] == [32]
    assert outcome.best_ms == 1.0


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["status"] != "started"]


def test_a_batch_whose_default_compile_was_cut_compiles_it_again_at_helions_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's 5 s cut stops the default config's compile (a slow host, a large
    kernel): the configs the cut stopped go again at 30 s, so the baseline is not lost. The
    interpreter compiles nothing ahead and writes no timeouts, so Helion's batch is replaced by
    one that writes the CSV rows an H100 run would (a GPU compile timeout cannot happen here)."""
    problem = add_problem(None, (), log_path=str(tmp_path / "logs" / "add"))
    default = problem.bound.config_spec.default_config()
    other = helion.Config(**{**default.config, "num_warps": 2})
    calls: list[tuple[int, list[str]]] = []

    def batch(self: Any, problem: Any, name: str, kwargs: Any, base: Path, *rest: Any) -> None:
        timeout = problem.bound.settings.autotune_compile_timeout
        calls.append((timeout, [seeded._canonical_id(c) for c in kwargs["configs"]]))
        # Helion writes str(config) ("Config(...)") in the config column.
        rows = [f'r,1,a,0,ok,0.5,0.4,"{other}"', f'r,2,b,0,timeout,,10.01,"{default}"']
        if len(calls) > 1:
            rows = [f'r,3,b,0,ok,0.6,12.5,"{default}"']
        log = base.with_suffix(".csv")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(
            (log.read_text() if log.exists() else HELION_CSV_HEADER) + "\n".join(rows) + "\n"
        )

    monkeypatch.setattr(seeded.SeededSearch, "_run_helion", batch)
    outcome = SearchOutcome(config={})
    base = tmp_path / "logs" / "add-probe"
    seeded.SeededSearch()._finite(problem, [default, other], base, outcome, 0.0)

    assert calls[0][0] == 5 and calls[1] == (30, [seeded._canonical_id(default)] * 2), calls
    assert outcome.notes == [
        "probe: 1 compiles cut at 5 s, the default's among them; compiled again at 30 s"
    ]
    assert [text for _ms, text in monitor.finished([base.with_suffix(".csv")])] == [
        str(other),
        str(default),
    ]
    # The default compiled in time: the batch stands, the stopped config is not tried again.
    calls.clear()
    outcome = SearchOutcome(config={})
    default, other = other, default  # now the timed-out config is not the default
    seeded.SeededSearch()._finite(problem, [other], tmp_path / "logs" / "add-x", outcome, 0.0)
    assert len(calls) == 1 and outcome.notes == []
    # A timeout the user lowered under the cut is never raised: no second batch at it.
    default, other = other, default
    calls.clear()
    settings = problem.bound.settings
    users = settings.autotune_compile_timeout
    try:
        settings.autotune_compile_timeout = 4
        seeded.SeededSearch()._finite(problem, [other], tmp_path / "logs" / "add-y", outcome, 0.0)
    finally:
        settings.autotune_compile_timeout = users
    assert calls == [(4, [seeded._canonical_id(other)] * 2)] and outcome.notes == []
    # Nothing finished in a later batch (no default in it): the stopped configs go again too.
    calls.clear()
    base = tmp_path / "logs" / "add-climb1"
    base.with_suffix(".csv").write_text(HELION_CSV_HEADER)
    stopped_only = helion.Config(**{**default.config, "num_warps": 8})

    def all_cut(self: Any, problem: Any, name: str, kwargs: Any, base: Path, *rest: Any) -> None:
        timeout = problem.bound.settings.autotune_compile_timeout
        calls.append((timeout, [seeded._canonical_id(c) for c in kwargs["configs"]]))
        status = "timeout,,6.01" if len(calls) == 1 else "ok,0.9,7.5"
        with base.with_suffix(".csv").open("a") as handle:
            handle.write(f'r,1,c,0,{status},"{stopped_only}"\n')

    monkeypatch.setattr(seeded.SeededSearch, "_run_helion", all_cut)
    monkeypatch.setattr(seeded, "compile_cut", lambda earlier: 6.0)
    seeded.SeededSearch()._finite(problem, [stopped_only], base, outcome, 0.0)
    assert [c[0] for c in calls] == [6, 30], calls
    assert outcome.notes == ["climb1: 1 compiles cut at 6 s, none finished; compiled again at 30 s"]


def test_monitor_follow_reads_only_the_rows_of_its_own_search(tmp_path: Path) -> None:
    """Helion appends to a log: a second search on it (seeded's compile retry) counts its rows."""
    log = tmp_path / "s.csv"
    log.write_text(HELION_CSV_HEADER + 'r,1,a,0,ok,0.5,0.4,"Config(num_warps=4)"\n')
    with monitor.follow(log, None, time.perf_counter) as seen, log.open("a") as handle:
        handle.write('r,1,b,0,ok,0.7,0.4,"Config(num_warps=8)"\n')
    assert seen.tested == 1 and seen.candidates == ["b"] and seen.best_ms == 0.7
