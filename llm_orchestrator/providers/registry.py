"""Which adapter serves which provider: a plain dict, no discovery by naming convention."""

from __future__ import annotations

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.providers.anthropic_adapter import AnthropicAdapter
from llm_orchestrator.providers.base import BaseLLMProvider
from llm_orchestrator.providers.gemini_adapter import GeminiAdapter
from llm_orchestrator.providers.openai_adapter import OpenAIAdapter

ADAPTERS: dict[str, type[BaseLLMProvider]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def build_adapter(name: str, config: ProviderConfig) -> BaseLLMProvider:
    """The adapter for provider ``name`` built from its config block.

    Raises:
        ConfigError: ``name`` is not a supported provider.
    """
    try:
        cls = ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; expected one of {', '.join(ADAPTERS)}") from None
    return cls(config)  # type: ignore[call-arg]
