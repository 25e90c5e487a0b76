"""Which adapter serves which provider: a plain table, no discovery by naming convention.

An adapter's module imports its SDK (the Anthropic SDK alone takes about 2 s), so a module is
imported when its provider is first used, not when this one is: a process that calls one provider
never imports the other two SDKs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.providers.base import BaseLLMProvider

ADAPTERS: dict[str, tuple[str, str]] = {  # provider -> (module, class)
    "openai": ("llm_orchestrator.providers.openai_adapter", "OpenAIAdapter"),
    "anthropic": ("llm_orchestrator.providers.anthropic_adapter", "AnthropicAdapter"),
    "gemini": ("llm_orchestrator.providers.gemini_adapter", "GeminiAdapter"),
}


def build_adapter(name: str, config: ProviderConfig) -> BaseLLMProvider:
    """The adapter for provider ``name`` built from its config block (imports its SDK on first use).

    Raises:
        ConfigError: ``name`` is not a supported provider.
    """
    try:
        module, cls = ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; expected one of {', '.join(ADAPTERS)}") from None
    adapter: BaseLLMProvider = getattr(import_module(module), cls)(config)
    return adapter


class LazyAdapters(Mapping[str, BaseLLMProvider]):
    """Provider name -> adapter, each built (and its SDK imported) when first looked up.

    Args:
        configs: provider name -> its config block (``config.providers``).
        ready: adapters already built, e.g. the active provider's.
    """

    def __init__(self, configs: Mapping[str, ProviderConfig], ready: Mapping[str, BaseLLMProvider]) -> None:
        self._configs = configs
        self._built: dict[str, BaseLLMProvider] = dict(ready)

    def __getitem__(self, name: str) -> BaseLLMProvider:
        if name not in self._built:
            self._built[name] = build_adapter(name, self._configs[name])
        return self._built[name]

    def __contains__(self, name: object) -> bool:  # Mapping's default would build the adapter
        return name in self._configs

    def __iter__(self) -> Iterator[str]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)
