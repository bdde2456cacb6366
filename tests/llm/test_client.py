"""Black-box tests of HttpLLMClient against a real local HTTP server.

Covers the three wire formats, retries, timeouts, the total cap and key redaction.
"""

from __future__ import annotations

import email.utils
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_helion_tune.errors import LLMError
from pytest_helion_tune.llm import (
    HttpLLMClient,
    LLMSettings,
    RecordingClient,
    make_client,
)

KEY = "sk-test-SECRET-1234567890"
PROVIDERS = ["anthropic", "openai", "openai-chat"]
PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/responses",
    "openai-chat": "/v1/chat/completions",
}
MESSAGES = [
    {"role": "system", "content": "You tune kernels."},
    {"role": "system", "content": "Answer in JSON."},
    {"role": "user", "content": "Propose configs."},
    {"role": "assistant", "content": '{"configs": []}'},
    {"role": "user", "content": "Try again."},
]


class FakeTime:
    """Real monotonic time plus whatever the client 'slept', without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


def settings_for(provider: str, base: str, **kw: object) -> LLMSettings:
    model = {"anthropic": "claude-test", "openai": "gpt-test", "openai-chat": "llama3"}[provider]
    values: dict[str, object] = {"api_key": KEY, "timeout_s": 5.0, "total_timeout_s": 20.0}
    values.update(kw)
    return LLMSettings(provider, model, base, **values)  # type: ignore[arg-type]


def client_for(
    provider: str, base: str, fake: FakeTime | None = None, **kw: object
) -> HttpLLMClient:
    settings = settings_for(provider, base, **kw)
    if fake is None:
        return HttpLLMClient(settings)
    return HttpLLMClient(settings, clock=fake.clock, sleep=fake.sleep)


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


# ── success and the request on the wire ──────────────────────────


def test_success_anthropic_request_shape(llm_server) -> None:
    llm_server.script(llm_server.ok("anthropic", "hello"))
    with client_for("anthropic", llm_server.url) as client:
        assert client.complete(MESSAGES) == "hello"
    (req,) = llm_server.received
    assert req.method == "POST"
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    body = req.json()
    assert body["model"] == "claude-test"
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert body["system"] == "You tune kernels.\n\nAnswer in JSON."
    assert body["messages"] == [m for m in MESSAGES if m["role"] != "system"]


def test_success_openai_responses_request_shape(llm_server) -> None:
    llm_server.script(llm_server.ok("openai", "hello"))
    with client_for("openai", llm_server.url) as client:
        assert client.complete(MESSAGES) == "hello"
    (req,) = llm_server.received
    assert req.path == "/v1/responses"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in req.headers
    body = req.json()
    assert body["model"] == "gpt-test"
    assert body["instructions"] == "You tune kernels.\n\nAnswer in JSON."
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "Propose configs."}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": '{"configs": []}'}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Try again."}]},
    ]


def test_success_openai_chat_request_shape(llm_server) -> None:
    llm_server.script(llm_server.ok("openai-chat", "hello"))
    with client_for("openai-chat", llm_server.url) as client:
        assert client.complete(MESSAGES) == "hello"
    (req,) = llm_server.received
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json()
    assert body == {"model": "llama3", "messages": MESSAGES}


def test_openai_chat_without_key_sends_no_authorization(llm_server) -> None:
    llm_server.script(llm_server.ok("openai-chat", "hi"))
    with client_for("openai-chat", llm_server.url, api_key=None) as client:
        assert client.complete(MESSAGES[2:3]) == "hi"
    assert "authorization" not in llm_server.received[0].headers


def test_openai_output_text_field_wins(llm_server) -> None:
    body = llm_server.ok_body("openai", "from output[]")
    body["output_text"] = "from output_text"
    llm_server.script(llm_server.Reply(body=body))
    with client_for("openai", llm_server.url) as client:
        assert client.complete(MESSAGES) == "from output_text"


def test_anthropic_joins_text_parts_and_skips_others(llm_server) -> None:
    body = {
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "part one, "},
            {"type": "text", "text": "part two"},
        ]
    }
    llm_server.script(llm_server.Reply(body=body))
    with client_for("anthropic", llm_server.url) as client:
        assert client.complete(MESSAGES) == "part one, part two"


@pytest.mark.parametrize(
    ("suffix", "provider_name", "path"),
    [
        ("/v1", "openai-chat", "/v1/chat/completions"),
        ("/v1/", "openai-chat", "/v1/chat/completions"),
        ("/proxy", "anthropic", "/proxy/v1/messages"),
        ("/v1", "openai", "/v1/responses"),
    ],
)
def test_endpoint_tolerates_v1_in_base(
    llm_server, suffix: str, provider_name: str, path: str
) -> None:
    llm_server.script(llm_server.ok(provider_name, "ok"))
    with client_for(provider_name, llm_server.url + suffix) as client:
        client.complete(MESSAGES)
    assert llm_server.received[0].path == path


def test_prose_around_json_is_returned_as_is(llm_server, provider: str) -> None:
    text = 'Sure! Here are configs:\n```json\n{"configs": [{"num_warps": 4}]}\n```\nGood luck.'
    llm_server.script(llm_server.ok(provider, text))
    with client_for(provider, llm_server.url) as client:
        assert client.complete(MESSAGES) == text


# ── retries ──────────────────────────────────────────────────────


def test_429_retry_after_seconds_then_success(llm_server, provider: str, fake: FakeTime) -> None:
    llm_server.script(
        llm_server.Reply(status=429, body={"error": "slow down"}, headers={"retry-after": "2"}),
        llm_server.ok(provider, "done"),
    )
    with client_for(provider, llm_server.url, fake) as client:
        assert client.complete(MESSAGES) == "done"
        assert fake.sleeps == [2.0]
        assert (client.stats.requests, client.stats.retries, client.stats.failures) == (2, 1, 0)


def test_429_retry_after_really_waits(llm_server) -> None:
    llm_server.script(
        llm_server.Reply(status=429, headers={"retry-after": "1"}),
        llm_server.ok("openai-chat", "done"),
    )
    start = time.monotonic()
    with client_for("openai-chat", llm_server.url) as client:
        assert client.complete(MESSAGES) == "done"
    elapsed = time.monotonic() - start
    assert 0.95 <= elapsed < 3.0
    assert len(llm_server.received) == 2


def test_503_retry_after_http_date(llm_server, provider: str, fake: FakeTime) -> None:
    when = datetime.now(UTC) + timedelta(seconds=4)
    llm_server.script(
        llm_server.Reply(
            status=503, headers={"retry-after": email.utils.format_datetime(when, usegmt=True)}
        ),
        llm_server.ok(provider, "done"),
    )
    with client_for(provider, llm_server.url, fake) as client:
        assert client.complete(MESSAGES) == "done"
    (wait,) = fake.sleeps
    # HTTP-dates have whole seconds, so the wait lands between 3 and 4 s.
    assert 2.5 <= wait <= 4.0


def test_500_then_success_backs_off(llm_server, provider: str, fake: FakeTime) -> None:
    llm_server.script(
        llm_server.Reply(status=500, body="oops", headers={"retry-after": "30"}),
        llm_server.ok(provider, "done"),
    )
    with client_for(provider, llm_server.url, fake) as client:
        assert client.complete(MESSAGES) == "done"
    # Retry-After is only honoured on 429/503; a 500 takes the first backoff step.
    assert fake.sleeps == [0.5]


def test_backoff_doubles_then_gives_up(llm_server, fake: FakeTime) -> None:
    llm_server.script(*[llm_server.Reply(status=502, body="bad gateway")] * 4)
    with (
        client_for("openai-chat", llm_server.url, fake, max_retries=3) as client,
        pytest.raises(LLMError) as info,
    ):
        client.complete(MESSAGES)
        assert client.stats.requests == 4
        assert client.stats.retries == 3
        assert client.stats.failures == 1
    assert fake.sleeps == [0.5, 1.0, 2.0]
    message = str(info.value)
    assert "after 4 attempts" in message
    assert "HTTP 502" in message
    assert "\n" not in message


def test_retry_after_past_total_cap_fails_at_once(llm_server, fake: FakeTime) -> None:
    llm_server.script(llm_server.Reply(status=429, headers={"retry-after": "100"}))
    with (
        client_for("anthropic", llm_server.url, fake, total_timeout_s=10.0) as client,
        pytest.raises(LLMError, match="total cap of 10 s"),
    ):
        client.complete(MESSAGES)
    assert fake.sleeps == []
    assert len(llm_server.received) == 1


# ── timeouts ─────────────────────────────────────────────────────


def test_slow_reply_times_out_then_retry_succeeds(
    llm_server, provider: str, fake: FakeTime
) -> None:
    llm_server.script(llm_server.ok(provider, "late", delay=3.0), llm_server.ok(provider, "fast"))
    start = time.monotonic()
    with client_for(provider, llm_server.url, fake, timeout_s=0.3) as client:
        assert client.complete(MESSAGES) == "fast"
    assert time.monotonic() - start < 1.5
    assert fake.sleeps == [0.5]


def test_slow_replies_hit_total_cap_quickly(llm_server) -> None:
    llm_server.script(*[llm_server.ok("openai", "late", delay=5.0)] * 5)
    cap = 1.0
    start = time.monotonic()
    with (
        client_for("openai", llm_server.url, timeout_s=0.3, total_timeout_s=cap) as client,
        pytest.raises(LLMError) as info,
    ):
        client.complete(MESSAGES)
    elapsed = time.monotonic() - start
    assert elapsed < cap + 0.5
    assert "timed out" in str(info.value)
    assert "total cap" in str(info.value)


def test_connection_refused_fails_within_cap(closed_port_url: str, provider: str) -> None:
    cap = 1.0
    start = time.monotonic()
    with (
        client_for(provider, closed_port_url, total_timeout_s=cap) as client,
        pytest.raises(LLMError) as info,
    ):
        client.complete(MESSAGES)
    assert time.monotonic() - start < cap + 0.5
    message = str(info.value)
    assert provider in message
    assert closed_port_url in message
    assert "could not connect" in message


# ── failures that must not be retried ────────────────────────────


def test_invalid_key_401_fails_immediately(llm_server, provider: str, fake: FakeTime) -> None:
    llm_server.script(
        llm_server.Reply(
            status=401,
            body={"error": {"type": "authentication_error", "message": f"invalid key {KEY}"}},
        )
    )
    with client_for(provider, llm_server.url, fake) as client, pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    message = str(info.value)
    assert len(llm_server.received) == 1
    assert fake.sleeps == []
    assert KEY not in message
    assert "***" in message
    assert provider in message
    assert llm_server.url + PATHS[provider] in message
    assert "HTTP 401" in message
    assert "authentication_error" in message
    assert "\n" not in message


def test_400_fails_immediately_with_short_excerpt(llm_server, provider: str) -> None:
    llm_server.script(llm_server.Reply(status=400, body="x" * 5000 + "\n\nmore"))
    with client_for(provider, llm_server.url) as client, pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    message = str(info.value)
    assert len(llm_server.received) == 1
    assert "HTTP 400" in message
    assert len(message) < 500
    assert "\n" not in message


def test_truncated_json_body(llm_server, provider: str) -> None:
    text = json.dumps(llm_server.ok_body(provider, "never"))
    llm_server.script(llm_server.Reply(body=text[: len(text) // 2]))
    with (
        client_for(provider, llm_server.url) as client,
        pytest.raises(LLMError, match="not valid JSON") as info,
    ):
        client.complete(MESSAGES)
    assert len(llm_server.received) == 1
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("provider_name", "body", "missing"),
    [
        ("anthropic", {"content": [{"type": "thinking", "thinking": "..."}]}, "content[].text"),
        ("anthropic", {"type": "message"}, "'content'"),
        ("openai", {"output": [{"type": "reasoning"}]}, "output_text"),
        ("openai", {"id": "resp_1"}, "'output'"),
        ("openai-chat", {"choices": []}, "'choices'"),
        ("openai-chat", {"choices": [{"message": {"content": None}}]}, "message.content"),
        ("openai-chat", ["not", "an", "object"], "JSON list"),
    ],
)
def test_reply_missing_fields(llm_server, provider_name: str, body: object, missing: str) -> None:
    llm_server.script(llm_server.Reply(body=body))
    with client_for(provider_name, llm_server.url) as client, pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    assert missing in str(info.value)
    assert len(llm_server.received) == 1


def test_bad_message_shape_is_rejected_before_sending(llm_server) -> None:
    with (
        client_for("openai-chat", llm_server.url) as client,
        pytest.raises(LLMError, match="message 1"),
    ):
        client.complete([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}])
    assert llm_server.received == []


# ── the key never leaks ──────────────────────────────────────────


def test_key_appears_nowhere(
    llm_server, closed_port_url: str, tmp_path, caplog, fake: FakeTime
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = {"error": f"bad key {KEY}", "echo": KEY}
    texts: list[str] = []
    for provider_name in PROVIDERS:
        settings = settings_for(provider_name, llm_server.url, max_retries=1)
        texts += [repr(settings), str(settings), settings.describe()]
        llm_server.script(
            llm_server.Reply(status=401, body=leaky),
            llm_server.Reply(status=500, body=leaky),
            llm_server.Reply(status=500, body=leaky),
            llm_server.Reply(body=f"{{ {KEY}"),
            llm_server.Reply(status=200, body=leaky),
            llm_server.ok(provider_name, f"reply mentioning {KEY}"),
        )
        client = HttpLLMClient(settings, clock=fake.clock, sleep=fake.sleep)
        recorder = RecordingClient(client, tmp_path / "cassettes", settings)
        for _ in range(4):
            with pytest.raises(LLMError) as info:
                recorder.complete([{"role": "user", "content": f"my key is {KEY}"}])
            exc: BaseException | None = info.value
            while exc is not None:
                texts += [str(exc), repr(exc)]
                exc = exc.__context__
        recorder.complete([{"role": "user", "content": f"my key is {KEY}"}])
        texts += [repr(client), repr(client.stats), repr(recorder)]
        client.close()
        refused = HttpLLMClient(
            settings_for(provider_name, closed_port_url, max_retries=0), clock=fake.clock
        )
        with pytest.raises(LLMError) as info:
            refused.complete(MESSAGES)
        texts.append(str(info.value))
        refused.close()

    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    files = list((tmp_path / "cassettes").iterdir())
    assert files
    texts += [f.read_text() for f in files]
    assert any(r.name == "pytest_helion_tune.llm" for r in caplog.records)
    leaks = [t for t in texts if KEY in t]
    assert leaks == []
    assert all("x-api-key" not in f.read_text().lower() for f in files)


# ── lifecycle ────────────────────────────────────────────────────


def test_close_and_reuse(llm_server) -> None:
    llm_server.script(llm_server.ok("openai-chat", "a"), llm_server.ok("openai-chat", "b"))
    client = make_client(settings_for("openai-chat", llm_server.url))
    with client:
        assert client.complete(MESSAGES) == "a"
    # Closing only drops the pool; the client reconnects when used again.
    assert client.complete(MESSAGES) == "b"
    client.close()
    client.close()


def test_httpx_is_imported_lazily() -> None:
    code = (
        "import sys\n"
        "from pytest_helion_tune.llm import LLMSettings, make_client\n"
        "make_client(LLMSettings('openai-chat', 'm', 'http://127.0.0.1:1'))\n"
        "assert 'httpx' not in sys.modules, 'httpx imported eagerly'\n"
    )
    repo_root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)
