"""A scripted HTTP server on 127.0.0.1 for tests that need a real LLM endpoint.

Owns ``ScriptedServer`` and ``closed_port_url``; tests/llm/conftest.py wraps them as fixtures.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted response; ``body`` may be bytes, text, or JSON-able data."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def ok_body(provider: str, text: str) -> dict[str, Any]:
    """A minimal successful reply in ``provider``'s wire format."""
    if provider == "anthropic":
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
        }
    if provider == "openai":
        # The raw Responses API has no top-level output_text (that is an SDK
        # convenience), so the plain reply exercises the output[] walk.
        return {
            "id": "resp_1",
            "object": "response",
            "output": [
                {"type": "reasoning", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                },
            ],
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handlers sleeping through a scripted delay must not hold up teardown.
    block_on_close = False

    def __init__(self, owner: ScriptedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        owner.received.append(
            Received(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        reply = owner.next_reply()
        if reply.delay:
            owner.stopping.wait(reply.delay)
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            headers = {"content-type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up (timeout) before the delayed reply was written.
            pass


class ScriptedServer:
    """Serves queued replies in order and records every request it receives."""

    ok_body = staticmethod(ok_body)
    Reply = Reply

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.stopping = threading.Event()
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        # A short poll keeps shutdown() (hence each test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def ok(self, provider: str, text: str, **kw: Any) -> Reply:
        return Reply(body=ok_body(provider, text), **kw)

    def next_reply(self) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        # 418 is not retried, so a test that under-scripts fails at once and loudly.
        return Reply(status=418, body={"error": "no scripted reply left"})

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on a port nobody listens on, so connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
