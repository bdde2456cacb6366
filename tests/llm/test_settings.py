"""How LLM settings are read from the environment and ini options.

Covers precedence, provider inference, defaults, missing values and redaction.
"""

from __future__ import annotations

import pytest

from pytest_helion_tune.errors import OptionError
from pytest_helion_tune.llm import LLMSettings, llm_settings
from pytest_helion_tune.llm.settings import DEFAULT_ANTHROPIC_MODEL, DEFAULT_OPENAI_MODEL

KEY = "sk-test-SECRET-1234567890"


def test_offline_when_nothing_is_set() -> None:
    assert llm_settings({}, {}) is None
    # A vendor key alone does not turn the LLM on.
    assert llm_settings({"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY}, {}) is None
    assert llm_settings({"HELION_LLM_PROVIDER": "  "}, {"helion_llm_model": None}) is None
    assert llm_settings({}, {"helion_llm_provider": "", "helion_llm_timeout": "5"}) is None


def test_env_wins_over_ini() -> None:
    env = {
        "HELION_LLM_PROVIDER": "openai-chat",
        "HELION_LLM_MODEL": "env-model",
        "HELION_LLM_API_BASE": "http://env:1/",
    }
    ini = {
        "helion_llm_provider": "anthropic",
        "helion_llm_model": "ini-model",
        "helion_llm_api_base": "http://ini:2",
    }
    settings = llm_settings(env, ini)
    assert settings is not None
    assert (settings.provider, settings.model, settings.api_base) == (
        "openai-chat",
        "env-model",
        "http://env:1",
    )


def test_ini_alone() -> None:
    ini = {
        "helion_llm_provider": "openai-chat",
        "helion_llm_model": "qwen2.5-coder",
        "helion_llm_api_base": "http://127.0.0.1:8000/v1/",
        "helion_llm_timeout": "12.5",
    }
    settings = llm_settings({}, ini)
    assert settings is not None
    assert settings.api_base == "http://127.0.0.1:8000/v1"
    assert settings.api_key is None
    assert settings.timeout_s == 12.5
    assert settings.total_timeout_s >= 3 * settings.timeout_s
    assert settings.describe() == "openai-chat qwen2.5-coder at http://127.0.0.1:8000/v1"


def test_defaults() -> None:
    settings = llm_settings({"HELION_LLM_PROVIDER": "openai", "OPENAI_API_KEY": KEY}, {})
    assert settings == LLMSettings("openai", DEFAULT_OPENAI_MODEL, "https://api.openai.com", KEY)
    assert DEFAULT_OPENAI_MODEL == "gpt-5-2"
    assert (settings.timeout_s, settings.max_retries, settings.total_timeout_s) == (60, 3, 180)
    settings = llm_settings({"HELION_LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": KEY}, {})
    assert settings is not None
    assert settings.model == DEFAULT_ANTHROPIC_MODEL
    assert DEFAULT_ANTHROPIC_MODEL.startswith("claude-")
    assert settings.api_base == "https://api.anthropic.com"


@pytest.mark.parametrize(
    ("model", "provider", "sent_model"),
    [
        ("claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6"),
        ("anthropic/claude-opus-4-7", "anthropic", "claude-opus-4-7"),
        ("gpt-5-2", "openai", "gpt-5-2"),
        ("o3-mini", "openai", "o3-mini"),
        ("o4-mini", "openai", "o4-mini"),
        ("chatgpt-4o-latest", "openai", "chatgpt-4o-latest"),
        ("codex-mini", "openai", "codex-mini"),
        ("openai/gpt-5.4", "openai", "gpt-5.4"),
    ],
)
def test_provider_inferred_from_model(model: str, provider: str, sent_model: str) -> None:
    settings = llm_settings({"HELION_LLM_MODEL": model, "HELION_LLM_API_KEY": KEY}, {})
    assert settings is not None
    assert settings.provider == provider
    assert settings.model == sent_model


def test_openai_chat_keeps_slashes_in_model_names() -> None:
    env = {
        "HELION_LLM_PROVIDER": "openai-chat",
        "HELION_LLM_MODEL": "openai/gpt-oss-20b",
        "HELION_LLM_API_BASE": "http://127.0.0.1:8000",
    }
    settings = llm_settings(env, {})
    assert settings is not None
    assert settings.model == "openai/gpt-oss-20b"


def test_uninferable_model_asks_for_provider() -> None:
    with pytest.raises(OptionError, match="HELION_LLM_PROVIDER") as info:
        llm_settings({"HELION_LLM_MODEL": "llama3", "HELION_LLM_API_BASE": "http://x"}, {})
    assert "openai-chat" in str(info.value)


def test_base_without_provider_or_model() -> None:
    with pytest.raises(OptionError, match="HELION_LLM_PROVIDER"):
        llm_settings({}, {"helion_llm_api_base": "http://127.0.0.1:8000"})


@pytest.mark.parametrize(
    ("env", "ini", "needle"),
    [
        (
            {"HELION_LLM_PROVIDER": "openai-chat", "HELION_LLM_API_BASE": "http://x"},
            {},
            "HELION_LLM_MODEL",
        ),
        ({"HELION_LLM_PROVIDER": "openai-chat"}, {}, "HELION_LLM_MODEL"),
        (
            {"HELION_LLM_PROVIDER": "openai-chat", "HELION_LLM_MODEL": "llama3"},
            {},
            "HELION_LLM_API_BASE",
        ),
        (
            {},
            {"helion_llm_provider": "openai-chat", "helion_llm_model": "m"},
            "helion_llm_api_base",
        ),
    ],
)
def test_openai_chat_needs_model_and_base(
    env: dict[str, str], ini: dict[str, str], needle: str
) -> None:
    with pytest.raises(OptionError) as info:
        llm_settings(env, ini)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_provider_lists_valid_names() -> None:
    with pytest.raises(OptionError) as info:
        llm_settings({"HELION_LLM_PROVIDER": "bedrock"}, {})
    message = str(info.value)
    assert "'bedrock'" in message
    assert "HELION_LLM_PROVIDER" in message
    for name in ("anthropic", "openai", "openai-chat"):
        assert name in message
    with pytest.raises(OptionError, match="helion_llm_provider"):
        llm_settings({}, {"helion_llm_provider": "gemini"})


def test_helion_provider_aliases() -> None:
    settings = llm_settings({"HELION_LLM_PROVIDER": "OpenAI_Responses", "OPENAI_API_KEY": KEY}, {})
    assert settings is not None
    assert settings.provider == "openai"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_hosted_providers_need_a_key(provider: str) -> None:
    with pytest.raises(OptionError, match="HELION_LLM_API_KEY"):
        llm_settings({"HELION_LLM_PROVIDER": provider}, {})


def test_key_fallbacks_follow_the_vendor() -> None:
    # An OpenAI key must never be sent to Anthropic, nor the other way round.
    with pytest.raises(OptionError):
        llm_settings({"HELION_LLM_PROVIDER": "anthropic", "OPENAI_API_KEY": KEY}, {})
    with pytest.raises(OptionError):
        llm_settings({"HELION_LLM_PROVIDER": "openai", "ANTHROPIC_API_KEY": KEY}, {})
    env = {
        "HELION_LLM_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": "a-key",
        "HELION_LLM_API_KEY": KEY,
    }
    settings = llm_settings(env, {})
    assert settings is not None
    assert settings.api_key == KEY
    chat = {
        "HELION_LLM_PROVIDER": "openai-chat",
        "HELION_LLM_MODEL": "m",
        "HELION_LLM_API_BASE": "http://x",
        "OPENAI_API_KEY": KEY,
    }
    settings = llm_settings(chat, {})
    assert settings is not None
    assert settings.api_key == KEY


def test_vendor_base_url_fallback() -> None:
    env = {
        "HELION_LLM_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": "https://gateway.example/anthropic/",
    }
    settings = llm_settings(env, {})
    assert settings is not None
    assert settings.api_base == "https://gateway.example/anthropic"
    env["HELION_LLM_API_BASE"] = "https://helion.example"
    settings = llm_settings(env, {})
    assert settings is not None
    assert settings.api_base == "https://helion.example"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf", "nan"])
def test_bad_timeout(value: str) -> None:
    env = {"HELION_LLM_PROVIDER": "openai", "HELION_LLM_API_KEY": KEY}
    with pytest.raises(OptionError, match="helion_llm_timeout"):
        llm_settings(env, {"helion_llm_timeout": value})


def test_key_is_hidden_and_redacted() -> None:
    settings = LLMSettings("openai", "gpt-5-2", "https://api.openai.com", KEY)
    for text in (repr(settings), str(settings), settings.describe()):
        assert KEY not in text
    assert settings.redact(f"a {KEY} b {KEY}") == "a *** b ***"
    # Very short keys are not redacted: they would blank out ordinary text.
    assert LLMSettings("openai", "m", "http://x", "abc").redact("abcdef") == "abcdef"
    assert LLMSettings("openai-chat", "m", "http://x").redact("text") == "text"


def test_settings_reject_unknown_provider_directly() -> None:
    with pytest.raises(OptionError, match="openai-chat"):
        LLMSettings("vertex", "m", "http://x")


@pytest.mark.parametrize(
    "kw",
    [{"timeout_s": 0}, {"total_timeout_s": -1.0}, {"max_retries": -1}, {"timeout_s": float("nan")}],
)
def test_settings_reject_bad_limits(kw: dict[str, float]) -> None:
    with pytest.raises(OptionError, match=next(iter(kw))):
        LLMSettings("openai-chat", "m", "http://x", **kw)  # type: ignore[arg-type]
