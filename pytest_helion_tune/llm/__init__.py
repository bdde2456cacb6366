"""LLM support: settings from env/ini, an HTTP client, and record/replay cassettes.

Owns the public names below; ``httpx`` is imported only when a request is sent.
"""

from __future__ import annotations

from pytest_helion_tune.llm.cassette import RecordingClient, ReplayClient, exchange_id
from pytest_helion_tune.llm.client import (
    HttpLLMClient,
    LLMClient,
    LLMStats,
    Message,
    make_client,
)
from pytest_helion_tune.llm.settings import LLMSettings, llm_settings

__all__ = [
    "HttpLLMClient",
    "LLMClient",
    "LLMSettings",
    "LLMStats",
    "Message",
    "RecordingClient",
    "ReplayClient",
    "exchange_id",
    "llm_settings",
    "make_client",
]
