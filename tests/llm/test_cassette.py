"""Record/replay of LLM exchanges: file format, round trip, misses, damage.

Recording runs through the real HTTP client against the local scripted server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

import pytest

from pytest_helion_tune.errors import LLMError
from pytest_helion_tune.llm import (
    LLMSettings,
    Message,
    RecordingClient,
    ReplayClient,
    exchange_id,
    make_client,
)

KEY = "sk-test-SECRET-1234567890"
FIRST = [
    {"role": "system", "content": "You tune kernels."},
    {"role": "user", "content": "Propose configs."},
]
SECOND = [*FIRST, {"role": "assistant", "content": "[]"}, {"role": "user", "content": "More."}]


class CannedClient:
    """A stand-in model: answers from a dict, counts calls, no transport involved."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.calls = 0

    def complete(self, messages: Sequence[Message]) -> str:
        self.calls += 1
        return self.replies[messages[-1]["content"]]


@pytest.mark.parametrize("provider", ["anthropic", "openai", "openai-chat"])
def test_record_then_replay_with_server_stopped(llm_server, tmp_path, provider: str) -> None:
    settings = LLMSettings(provider, "model-x", llm_server.url, api_key=KEY)
    one = 'Here:\n```json\n{"configs": [{"num_warps": 8}]}\n```'
    two = "no more ideas"
    llm_server.script(llm_server.ok(provider, one), llm_server.ok(provider, two))
    with make_client(settings) as http:
        recorder = RecordingClient(http, tmp_path, settings)
        assert recorder.complete(FIRST) == one
        assert recorder.complete(SECOND) == two
    llm_server.stop()

    replay = ReplayClient(tmp_path)
    assert replay.complete(SECOND) == two
    assert replay.complete(FIRST) == one
    assert replay.complete(FIRST) == one
    assert len(llm_server.received) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{exchange_id(m)}.json" for m in (FIRST, SECOND)
    )


def test_file_format(tmp_path) -> None:
    settings = LLMSettings("openai-chat", "llama3", "http://127.0.0.1:1", api_key=KEY)
    RecordingClient(CannedClient({"Propose configs.": "ok"}), tmp_path, settings).complete(FIRST)
    (path,) = tmp_path.iterdir()
    assert path.name == f"{exchange_id(FIRST)}.json"
    text = path.read_text(encoding="utf-8")
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert record["schema"] == 1
    assert record["provider"] == "openai-chat"
    assert record["model"] == "llama3"
    assert record["messages"] == FIRST
    assert record["reply"] == "ok"
    assert datetime.fromisoformat(record["recorded_at"]).tzinfo is not None
    assert set(record) == {"schema", "provider", "model", "messages", "reply", "recorded_at"}


def test_recording_redacts_and_stores_no_headers(tmp_path) -> None:
    settings = LLMSettings("anthropic", "claude-x", "http://127.0.0.1:1", api_key=KEY)
    messages = [{"role": "user", "content": f"my key is {KEY}"}]
    inner = CannedClient({messages[-1]["content"]: f"echo {KEY}"})
    reply = RecordingClient(inner, tmp_path, settings).complete(messages)
    # The caller still gets the reply as the model sent it; only the file is redacted.
    assert reply == f"echo {KEY}"
    (path,) = tmp_path.iterdir()
    text = path.read_text()
    assert KEY not in text
    assert "***" in text
    for header in ("x-api-key", "authorization", "bearer", "anthropic-version"):
        assert header not in text.lower()


def test_recording_without_settings(tmp_path) -> None:
    inner = CannedClient({"Propose configs.": "fine"})
    recorder = RecordingClient(inner, tmp_path / "new" / "dir", None)
    assert recorder.complete(FIRST) == "fine"
    record = json.loads((tmp_path / "new" / "dir" / f"{exchange_id(FIRST)}.json").read_text())
    assert record["provider"] is None
    assert record["model"] is None
    assert ReplayClient(tmp_path / "new" / "dir").complete(FIRST) == "fine"


def test_rerecording_overwrites_and_leaves_no_temp_files(tmp_path) -> None:
    RecordingClient(CannedClient({"Propose configs.": "old"}), tmp_path, None).complete(FIRST)
    RecordingClient(CannedClient({"Propose configs.": "new"}), tmp_path, None).complete(FIRST)
    assert [p.name for p in tmp_path.iterdir()] == [f"{exchange_id(FIRST)}.json"]
    assert ReplayClient(tmp_path).complete(FIRST) == "new"


def test_failed_inner_call_writes_nothing(closed_port_url, tmp_path) -> None:
    settings = LLMSettings("openai-chat", "m", closed_port_url, max_retries=0)
    with make_client(settings) as http, pytest.raises(LLMError):
        RecordingClient(http, tmp_path, settings).complete(FIRST)
    assert list(tmp_path.iterdir()) == []


def test_replay_miss_names_directory_and_id(tmp_path) -> None:
    RecordingClient(CannedClient({"Propose configs.": "x"}), tmp_path, None).complete(FIRST)
    with pytest.raises(LLMError) as info:
        ReplayClient(tmp_path).complete(SECOND)
    message = str(info.value)
    assert str(tmp_path) in message
    assert exchange_id(SECOND) in message
    assert "--helion-llm-record" in message
    assert "\n" not in message


def test_replay_from_missing_directory_is_a_miss(tmp_path) -> None:
    with pytest.raises(LLMError, match="--helion-llm-record"):
        ReplayClient(tmp_path / "nowhere").complete(FIRST)


@pytest.mark.parametrize(
    "content",
    [
        '{"schema": 1, "reply": "trunc',
        "[1, 2]",
        '{"schema": 2, "reply": "future format"}',
        '{"schema": 1, "messages": []}',
        '{"schema": 1, "reply": 42}',
    ],
)
def test_replay_damaged_file_names_it(tmp_path, content: str) -> None:
    path = tmp_path / f"{exchange_id(FIRST)}.json"
    path.write_text(content)
    with pytest.raises(LLMError) as info:
        ReplayClient(tmp_path).complete(FIRST)
    assert str(path) in str(info.value)
    assert "damaged" in str(info.value)


def test_exchange_id_is_stable_and_content_sensitive() -> None:
    ident = exchange_id(FIRST)
    assert re.fullmatch(r"[0-9a-f]{16}", ident)
    # Key order inside a message and extra keys do not matter; order of messages does.
    reordered = [{"content": m["content"], "role": m["role"]} for m in FIRST]
    assert exchange_id(reordered) == ident
    assert exchange_id([{**m, "name": "x"} for m in FIRST]) == ident
    assert exchange_id(list(reversed(FIRST))) != ident
    assert exchange_id([FIRST[0], {"role": "user", "content": "Propose configs!"}]) != ident
    assert exchange_id([{"role": "user", "content": "ünïcødé"}]) == exchange_id(
        [{"role": "user", "content": "ünïcødé"}]
    )
