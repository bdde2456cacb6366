"""The ``llm_server`` and ``closed_port_url`` fixtures used by the LLM tests.

The server itself (a scripted HTTP server on 127.0.0.1) lives in tests/llm_server.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_server import ScriptedServer
from llm_server import closed_port_url as _closed_port_url


@pytest.fixture
def llm_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a port nobody listens on, so connecting is refused at once."""
    return _closed_port_url()
