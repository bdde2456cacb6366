"""Record LLM exchanges to JSON files and replay them later without a network.

Owns ``RecordingClient``, ``ReplayClient`` and ``exchange_id`` (the file naming).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_helion_tune.errors import LLMError
from pytest_helion_tune.llm.client import LLMClient, Message
from pytest_helion_tune.llm.settings import LLMSettings

SCHEMA = 1


def _canonical(messages: Sequence[Message]) -> list[dict[str, str]]:
    # Only role and content take part: anything else a caller tucks into a message
    # never reaches the provider, so it must not change which reply is served.
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def exchange_id(messages: Sequence[Message]) -> str:
    """First 16 hex digits of the sha256 of the messages' canonical JSON."""
    text = json.dumps(
        _canonical(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cassette_path(directory: Path, messages: Sequence[Message]) -> Path:
    """Where the exchange for ``messages`` is (or would be) stored."""
    return Path(directory) / f"{exchange_id(messages)}.json"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target so os.replace stays a rename on one file system:
    # a reader (or a parallel worker) sees the old file or the new one, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RecordingClient:
    """Passes each request to ``inner`` and stores the exchange as one JSON file."""

    def __init__(self, inner: LLMClient, directory: Path, settings: LLMSettings | None) -> None:
        self.inner = inner
        self.directory = Path(directory)
        self.settings = settings

    def __repr__(self) -> str:
        return f"RecordingClient({self.inner!r}, {str(self.directory)!r})"

    def complete(self, messages: Sequence[Message]) -> str:
        """Ask ``inner``, write the exchange, and return the reply unchanged."""
        reply = self.inner.complete(messages)
        record: dict[str, Any] = {
            "schema": SCHEMA,
            "provider": self.settings.provider if self.settings else None,
            "model": self.settings.model if self.settings else None,
            "messages": _canonical(messages),
            "reply": reply,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        text = json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        if self.settings is not None:
            # On the serialized text, so a key pasted into any field (a prompt, the
            # reply) is caught in one place.
            text = self.settings.redact(text)
        path = cassette_path(self.directory, messages)
        try:
            _write_atomically(path, text)
        except OSError as exc:
            raise LLMError(f"cannot write LLM cassette {path}: {exc.strerror or exc}") from None
        return reply

    def close(self) -> None:
        """Close ``inner`` if it has anything to close."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class ReplayClient:
    """Serves recorded replies by exchange id; never touches the network."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"ReplayClient({str(self.directory)!r})"

    def complete(self, messages: Sequence[Message]) -> str:
        """The recorded reply for exactly these messages, or ``LLMError``."""
        ident = exchange_id(messages)
        path = self.directory / f"{ident}.json"
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LLMError(
                f"no recorded LLM exchange {ident} in {self.directory}; the prompt "
                "changed since recording, re-record with "
                f"--helion-llm-record={self.directory}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LLMError(f"cannot read LLM cassette {path}: {exc}") from None
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise LLMError(f"damaged LLM cassette {path}: not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise LLMError(f"damaged LLM cassette {path}: expected a JSON object")
        if record.get("schema") != SCHEMA:
            raise LLMError(
                f"damaged LLM cassette {path}: schema {record.get('schema')!r}, expected {SCHEMA}"
            )
        reply = record.get("reply")
        if not isinstance(reply, str):
            raise LLMError(f"damaged LLM cassette {path}: 'reply' is missing or not a string")
        return reply

    def close(self) -> None:
        """Nothing to release; present so callers can close any client alike."""
