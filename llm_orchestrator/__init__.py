"""llm-orchestrator: reliable, cheap LLM calls to OpenAI, Anthropic and Gemini.

Importing this package connects to nothing, reads no environment variables and loads no SDK:
the public names are imported on first use.

    from llm_orchestrator import LLMOrchestrator
    orch = LLMOrchestrator.from_yaml("config/demo.yaml")
    print(orch.send_request("Hello").content)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use (PEP 562): the SDKs load only then
    from llm_orchestrator.config.manager import ConfigManager, OrchestratorConfig
    from llm_orchestrator.cost_tracker import CostRecord, CostTracker
    from llm_orchestrator.exceptions import (
        AllFallbacksFailedError,
        AuthenticationError,
        BudgetExceededError,
        CircuitOpenError,
        ConfigError,
        ContentBlockedError,
        InvalidRequestError,
        LLMOrchestratorError,
        LocalRateLimitError,
        ModelNotFoundError,
        ProviderError,
        QuotaExceededError,
        RateLimitError,
        RequestTimeoutError,
        RetryLaterError,
        ServerError,
        TenantRateLimitError,
    )
    from llm_orchestrator.models.registry import ModelInfo, ModelRegistry
    from llm_orchestrator.observability.usage import UsageMetrics
    from llm_orchestrator.orchestrator import LLMOrchestrator
    from llm_orchestrator.pricing import calculate_cost
    from llm_orchestrator.providers.base import BaseLLMProvider, LLMResponse, Message, StreamChunk, Usage

# public name → the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["ConfigManager", "OrchestratorConfig"], "llm_orchestrator.config.manager"),
    **dict.fromkeys(["CostRecord", "CostTracker"], "llm_orchestrator.cost_tracker"),
    **dict.fromkeys(
        [
            "AllFallbacksFailedError",
            "AuthenticationError",
            "BudgetExceededError",
            "CircuitOpenError",
            "ConfigError",
            "ContentBlockedError",
            "InvalidRequestError",
            "LLMOrchestratorError",
            "LocalRateLimitError",
            "ModelNotFoundError",
            "ProviderError",
            "QuotaExceededError",
            "RateLimitError",
            "RequestTimeoutError",
            "RetryLaterError",
            "ServerError",
            "TenantRateLimitError",
        ],
        "llm_orchestrator.exceptions",
    ),
    **dict.fromkeys(["ModelInfo", "ModelRegistry"], "llm_orchestrator.models.registry"),
    "LLMOrchestrator": "llm_orchestrator.orchestrator",
    "UsageMetrics": "llm_orchestrator.observability.usage",
    "calculate_cost": "llm_orchestrator.pricing",
    **dict.fromkeys(
        ["BaseLLMProvider", "LLMResponse", "Message", "StreamChunk", "Usage"], "llm_orchestrator.providers.base"
    ),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (so ``llm-orch --help`` does not load three SDKs)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__version__ = "0.3.0"

__all__ = [
    "AllFallbacksFailedError",
    "AuthenticationError",
    "BaseLLMProvider",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigError",
    "ConfigManager",
    "ContentBlockedError",
    "CostRecord",
    "CostTracker",
    "InvalidRequestError",
    "LLMOrchestrator",
    "LLMOrchestratorError",
    "LLMResponse",
    "LocalRateLimitError",
    "Message",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelRegistry",
    "OrchestratorConfig",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryLaterError",
    "ServerError",
    "StreamChunk",
    "TenantRateLimitError",
    "Usage",
    "UsageMetrics",
    "__version__",
    "calculate_cost",
]
