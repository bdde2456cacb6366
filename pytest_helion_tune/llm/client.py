"""HTTP transport to LLM providers: wire formats, timeouts, retries, redaction.

Owns ``LLMClient`` (the protocol), ``HttpLLMClient`` and ``make_client``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from pytest_helion_tune.errors import LLMError
from pytest_helion_tune.llm.settings import LLMSettings

if TYPE_CHECKING:
    import httpx

Message = dict[str, str]

logger = logging.getLogger("pytest_helion_tune.llm")

ANTHROPIC_VERSION = "2023-06-01"
MAX_OUTPUT_TOKENS = 4096
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
_EXCERPT_CHARS = 200
_ROLES = frozenset({"system", "user", "assistant"})
_ENDPOINTS = {
    "anthropic": "messages",
    "openai": "responses",
    "openai-chat": "chat/completions",
}


class LLMClient(Protocol):
    """Anything that turns a chat history into the model's reply text."""

    def complete(self, messages: Sequence[Message]) -> str: ...


@dataclass
class LLMStats:
    """Counters over the client's life; they never hold request data."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests that repeated an earlier failed one
    failures: int = 0  # ``complete`` calls that ended in LLMError


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


def endpoint_url(provider: str, api_base: str) -> str:
    """The POST URL for ``provider``, tolerating a base that already ends in ``/v1``."""
    endpoint = _ENDPOINTS[provider]
    base = api_base.rstrip("/")
    # Same tolerance as Helion's _resolve_v1_endpoint: users paste either form.
    if base.endswith((f"/v1/{endpoint}", f"/{endpoint}")):
        return base
    if base.endswith("/v1"):
        return f"{base}/{endpoint}"
    return f"{base}/v1/{endpoint}"


def _auth_headers(settings: LLMSettings) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    key = settings.api_key
    if settings.provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def _check_messages(messages: Sequence[Message]) -> list[Message]:
    checked: list[Message] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            raise LLMError(
                f"LLM message {index} must be {{'role': system|user|assistant, "
                f"'content': str}}, got role {role!r} and content of type "
                f"{type(content).__name__}"
            )
        checked.append({"role": role, "content": content})
    return checked


def _split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def build_payload(settings: LLMSettings, messages: Sequence[Message]) -> dict[str, Any]:
    """The JSON request body for ``settings.provider`` (public for tests and debugging)."""
    checked = _check_messages(messages)
    if settings.provider == "anthropic":
        system, rest = _split_system(checked)
        payload: dict[str, Any] = {
            "model": settings.model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "messages": rest,
        }
        if system:
            payload["system"] = system
        return payload
    if settings.provider == "openai":
        # Matches Helion's Responses request: system prompts go to `instructions`,
        # each turn carries typed content parts.
        system, rest = _split_system(checked)
        payload = {
            "model": settings.model,
            "input": [
                {
                    "role": m["role"],
                    "content": [
                        {
                            "type": "output_text" if m["role"] == "assistant" else "input_text",
                            "text": m["content"],
                        }
                    ],
                }
                for m in rest
            ],
            "max_output_tokens": MAX_OUTPUT_TOKENS,
        }
        if system:
            payload["instructions"] = system
        return payload
    return {"model": settings.model, "messages": checked}


def _missing(what: str) -> LLMError:
    return LLMError(f"reply lacks {what}")


def extract_text(provider: str, body: object) -> str:
    """Pull the reply text out of a decoded response body, or raise ``LLMError``."""
    if not isinstance(body, dict):
        raise LLMError(f"reply is a JSON {type(body).__name__}, not an object")
    if provider == "anthropic":
        content = body.get("content")
        if not isinstance(content, list):
            raise _missing("a 'content' list")
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        if not texts:
            raise _missing("any content[].text part of type 'text'")
        return "".join(texts)
    if provider == "openai":
        if isinstance(body.get("output_text"), str):
            return str(body["output_text"])
        output = body.get("output")
        if not isinstance(output, list):
            raise _missing("'output_text' and an 'output' list")
        texts = []
        for item in output:
            parts = item.get("content") if isinstance(item, dict) else None
            if not isinstance(parts, list):
                continue
            texts.extend(
                part["text"]
                for part in parts
                if isinstance(part, dict)
                and part.get("type") == "output_text"
                and isinstance(part.get("text"), str)
            )
        if not texts:
            raise _missing("'output_text' and any output[].content[].text of type 'output_text'")
        return "".join(texts)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _missing("a non-empty 'choices' list")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise _missing("choices[0].message.content as a string")
    return content


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _EXCERPT_CHARS:
        return flat[:_EXCERPT_CHARS] + "..."
    return flat


class HttpLLMClient:
    """Talks to one provider over HTTP with per-request timeouts and bounded retries."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.url = endpoint_url(settings.provider, settings.api_base)
        self.stats = LLMStats()
        self._clock = clock
        self._sleep = sleep
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpLLMClient({self.settings.describe()})"

    def __enter__(self) -> HttpLLMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool; a later ``complete`` opens a new one."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                try:
                    import httpx
                except ImportError:
                    raise LLMError(
                        "the LLM client needs httpx; install pytest-helion-tune[llm]"
                    ) from None
                # The key lives only inside the httpx client's default headers, so
                # no local variable of ours holds it when a traceback shows locals.
                self._http = httpx.Client(
                    headers=_auth_headers(self.settings),
                    timeout=httpx.Timeout(self.settings.timeout_s),
                    follow_redirects=False,
                )
            return self._http

    def _log(self, msg: str, *args: object) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", self.settings.redact(msg % args if args else msg))

    def _fail(self, msg: str) -> LLMError:
        self.stats.failures += 1
        text = self.settings.redact(f"{self.settings.provider} request to {self.url} {msg}")
        self._log("giving up: %s", text)
        return LLMError(text)

    def complete(self, messages: Sequence[Message]) -> str:
        """Send ``messages`` and return the reply text; raises ``LLMError`` on failure."""
        payload = build_payload(self.settings, messages)
        body = json.dumps(payload).encode("utf-8")
        http = self._client()
        start = self._clock()
        cap = self.settings.total_timeout_s
        attempt = 0
        while True:
            remaining = cap - (self._clock() - start)
            if remaining <= 0:
                raise self._fail(f"failed: total time cap of {cap:g} s reached")
            if attempt:
                self.stats.retries += 1
            self.stats.requests += 1
            self._log(
                "POST %s (%s %s, %d messages, attempt %d)",
                self.url,
                self.settings.provider,
                self.settings.model,
                len(messages),
                attempt + 1,
            )
            try:
                return self._attempt(http, body, min(self.settings.timeout_s, remaining))
            except _Retryable as failure:
                attempt += 1
                if attempt > self.settings.max_retries:
                    tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise self._fail(f"failed after {tries}: {failure.reason}") from None
                wait = failure.retry_after_s
                if wait is None:
                    wait = min(BACKOFF_BASE_S * 2 ** (attempt - 1), BACKOFF_CAP_S)
                elapsed = self._clock() - start
                if elapsed + wait > cap:
                    raise self._fail(
                        f"failed: {failure.reason}; the next try (in {wait:g} s) would pass "
                        f"the total cap of {cap:g} s"
                    ) from None
                self._log("%s; retrying in %g s", failure.reason, wait)
                self._sleep(wait)

    def _attempt(self, http: httpx.Client, body: bytes, timeout_s: float) -> str:
        import httpx

        t0 = time.monotonic()
        try:
            response = http.post(self.url, content=body, timeout=httpx.Timeout(timeout_s))
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {timeout_s:g} s") from None
        except httpx.TransportError as exc:
            # Only the class and message: the exception object carries the request,
            # headers included.
            reason = f"could not connect: {type(exc).__name__}: {exc}"
            raise _Retryable(self.settings.redact(reason)) from None
        status = response.status_code
        self._log("HTTP %d from %s in %.2f s", status, self.url, time.monotonic() - t0)
        if status == 429 or 500 <= status < 600:
            retry_after = None
            if status in (429, 503):
                retry_after = _retry_after_s(response.headers.get("retry-after"))
            reason = f"HTTP {status}: {_excerpt(response.text)}"
            raise _Retryable(self.settings.redact(reason), retry_after)
        if not 200 <= status < 300:
            raise self._fail(f"failed: HTTP {status}: {_excerpt(response.text)}")
        try:
            decoded = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._fail(
                f"returned a body that is not valid JSON ({exc.__class__.__name__}: {exc}): "
                f"{_excerpt(response.text)}"
            ) from None
        try:
            text = extract_text(self.settings.provider, decoded)
        except LLMError as exc:
            raise self._fail(f"returned an unusable reply: {exc}") from None
        self._log("reply of %d characters", len(text))
        return text


def make_client(settings: LLMSettings) -> HttpLLMClient:
    """The client for ``settings``; close it (or use ``with``) when done."""
    return HttpLLMClient(settings)
