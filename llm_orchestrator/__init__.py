"""llm-orchestrator: reliable, cheap LLM calls to OpenAI, Anthropic and Gemini.

Importing this package connects to nothing and reads no environment variables.

    from llm_orchestrator import LLMOrchestrator
    orch = LLMOrchestrator.from_yaml("config/demo.yaml")
    print(orch.send_request("Hello").content)
"""

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
    RateLimitError,
    RequestTimeoutError,
    RetryLaterError,
    ServerError,
)
from llm_orchestrator.models.registry import ModelInfo, ModelRegistry
from llm_orchestrator.orchestrator import LLMOrchestrator
from llm_orchestrator.providers.base import BaseLLMProvider, LLMResponse, Message, StreamChunk, Usage

__version__ = "0.1.0"

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
    "RateLimitError",
    "RequestTimeoutError",
    "RetryLaterError",
    "ServerError",
    "StreamChunk",
    "Usage",
    "__version__",
]
