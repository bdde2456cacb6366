"""Which LLM provider, model, endpoint and key to use, read from env and ini.

Owns ``LLMSettings`` and ``llm_settings``; names follow Helion's ``HELION_LLM_*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_helion_tune.errors import OptionError

PROVIDERS = ("anthropic", "openai", "openai-chat")

# Helion's own default (helion.autotuner.effort_profile.DEFAULT_LLM_MODEL), kept in step
# so that a bare HELION_LLM_PROVIDER=openai asks for the same model Helion would.
DEFAULT_OPENAI_MODEL = "gpt-5-2"
DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-6"

DEFAULT_API_BASES = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com",
}
DEFAULT_MODELS = {
    "anthropic": DEFAULT_ANTHROPIC_MODEL,
    "openai": DEFAULT_OPENAI_MODEL,
}

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_TOTAL_TIMEOUT_S = 180.0

# Helion accepts these spellings in HELION_LLM_PROVIDER; taking them too lets one
# environment drive both Helion's LLM search and this plugin.
_PROVIDER_ALIASES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "openai_responses": "openai",
    "openai-responses": "openai",
    "openai-chat": "openai-chat",
    "openai_chat": "openai-chat",
}

# Helion falls back to the vendor's own variables; a key for one vendor must never
# be sent to the other.
_KEY_FALLBACKS = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "openai-chat": ("OPENAI_API_KEY",),
}
_BASE_FALLBACKS = {
    "anthropic": ("ANTHROPIC_BASE_URL",),
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "openai-chat": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
}

_REDACTED = "***"
# Shorter keys would blank out ordinary words and digits all over a message.
_MIN_REDACT_LEN = 4


@dataclass(frozen=True)
class LLMSettings:
    """Everything needed to talk to one LLM endpoint; the key never prints."""

    provider: str
    model: str
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise OptionError(
                f"unknown LLM provider {self.provider!r}; valid providers are: "
                + ", ".join(PROVIDERS)
            )
        for name in ("timeout_s", "total_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise OptionError(f"LLM {name} must be a positive number, got {value!r}")
        if self.max_retries < 0:
            raise OptionError(f"LLM max_retries must be 0 or more, got {self.max_retries!r}")
        object.__setattr__(self, "api_base", self.api_base.rstrip("/"))

    def redact(self, text: str) -> str:
        """Return ``text`` with every occurrence of the API key replaced by ``***``."""
        key = self.api_key
        if key and len(key) >= _MIN_REDACT_LEN:
            return text.replace(key, _REDACTED)
        return text

    def describe(self) -> str:
        """One line for reports, e.g. ``openai-chat llama3 at http://127.0.0.1:8000``."""
        return self.redact(f"{self.provider} {self.model} at {self.api_base}")

    def __str__(self) -> str:
        return self.describe()


def _first(*values: str | None) -> str | None:
    for value in values:
        if value is not None and value.strip():
            return value.strip()
    return None


def _normalize_provider(raw: str, source: str) -> str:
    provider = _PROVIDER_ALIASES.get(raw.strip().lower())
    if provider is None:
        raise OptionError(
            f"unknown LLM provider {raw!r} in {source}; valid providers are: "
            + ", ".join(PROVIDERS)
        )
    return provider


def infer_provider(model: str) -> str | None:
    """Guess the provider from a model name the way Helion's ``infer_provider`` does."""
    name = model.lower()
    if name.startswith(("claude", "anthropic/")):
        return "anthropic"
    if name.startswith(("gpt-", "chatgpt-", "codex", "o1", "o3", "o4", "openai/")):
        return "openai"
    return None


def _strip_vendor_prefix(provider: str, model: str) -> str:
    # Helion strips these before sending. Only for the hosted APIs: a local server's
    # model can legitimately be named "openai/gpt-oss-20b".
    for prefix in ("anthropic/", "openai/"):
        if provider in ("anthropic", "openai") and model.startswith(prefix):
            return model.removeprefix(prefix)
    return model


def _parse_timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise OptionError(f"helion_llm_timeout must be a positive number of seconds, got {raw!r}")
    return value


def llm_settings(env: Mapping[str, str], ini: Mapping[str, str | None]) -> LLMSettings | None:
    """Build the settings from environment and ini values; ``None`` means offline.

    Environment variables win over ini options. Raises ``OptionError`` with a one-line
    message when the configuration is present but unusable.
    """
    raw_provider = _first(env.get("HELION_LLM_PROVIDER"), ini.get("helion_llm_provider"))
    model = _first(env.get("HELION_LLM_MODEL"), ini.get("helion_llm_model"))
    explicit_base = _first(env.get("HELION_LLM_API_BASE"), ini.get("helion_llm_api_base"))
    raw_timeout = _first(ini.get("helion_llm_timeout"))

    if raw_provider is None and model is None and explicit_base is None:
        return None

    if raw_provider is not None:
        source = (
            "HELION_LLM_PROVIDER"
            if _first(env.get("HELION_LLM_PROVIDER")) is not None
            else "ini option helion_llm_provider"
        )
        provider = _normalize_provider(raw_provider, source)
    elif model is not None:
        inferred = infer_provider(model)
        if inferred is None:
            raise OptionError(
                f"cannot tell the LLM provider from model {model!r}; set "
                "HELION_LLM_PROVIDER (or ini helion_llm_provider) to one of: "
                + ", ".join(PROVIDERS)
            )
        provider = inferred
    else:
        raise OptionError(
            "an LLM api base is set but no provider or model; set HELION_LLM_PROVIDER "
            "(or ini helion_llm_provider) to one of: " + ", ".join(PROVIDERS)
        )

    if model is None:
        model = DEFAULT_MODELS.get(provider)
        if model is None:
            raise OptionError(
                f"LLM provider {provider} has no default model; set HELION_LLM_MODEL "
                "(or ini helion_llm_model)"
            )
    model = _strip_vendor_prefix(provider, model)

    api_base = (
        explicit_base
        or _first(*(env.get(name) for name in _BASE_FALLBACKS[provider]))
        or DEFAULT_API_BASES.get(provider)
    )
    if api_base is None:
        raise OptionError(
            f"LLM provider {provider} has no default api base; set HELION_LLM_API_BASE "
            "(or ini helion_llm_api_base), e.g. http://127.0.0.1:8000"
        )

    api_key = _first(
        env.get("HELION_LLM_API_KEY"), *(env.get(name) for name in _KEY_FALLBACKS[provider])
    )
    if api_key is None and provider != "openai-chat":
        fallback = _KEY_FALLBACKS[provider][0]
        raise OptionError(
            f"LLM provider {provider} needs an API key; set HELION_LLM_API_KEY (or {fallback})"
        )

    if raw_timeout is None:
        return LLMSettings(provider=provider, model=model, api_base=api_base, api_key=api_key)
    timeout_s = _parse_timeout(raw_timeout)
    # A longer per-request timeout must still leave room for the retries it implies.
    total_timeout_s = max(DEFAULT_TOTAL_TIMEOUT_S, timeout_s * DEFAULT_MAX_RETRIES)
    return LLMSettings(
        provider=provider,
        model=model,
        api_base=api_base,
        api_key=api_key,
        timeout_s=timeout_s,
        total_timeout_s=total_timeout_s,
    )
