"""The public surface is pinned: an accidental export or removal fails CI."""

from __future__ import annotations

import pickle
import subprocess
import sys

import llm_orchestrator
from llm_orchestrator import exceptions as exc

EXPECTED = {
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
    "calculate_cost",
    "__version__",
}


def test_all_is_pinned():
    assert set(llm_orchestrator.__all__) == EXPECTED
    for name in llm_orchestrator.__all__:
        assert hasattr(llm_orchestrator, name), name


def test_import_has_no_side_effects():
    """Importing the library must not import celery, connect to Redis or read provider keys."""
    code = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "import llm_orchestrator, llm_orchestrator.cli\n"
        "assert 'celery' not in sys.modules, 'celery imported'\n"
        "assert 'worker' not in sys.modules and 'tasks' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": "/usr/bin:/bin"})


def test_every_error_pickles_with_its_fields():
    errors = [
        exc.ConfigError("f.yaml: x: bad"),
        exc.RateLimitError("openai", "m", "rate limited", status=429, retry_after=2.5),
        exc.QuotaExceededError("openai", "m", "quota", status=429, code="insufficient_quota"),
        exc.ServerError("anthropic", "m", "overloaded", status=529),
        exc.AuthenticationError("gemini", "m", "bad key", status=401),
        exc.CircuitOpenError("openai", "m", 12.0),
        exc.AllFallbacksFailedError(
            "openai", [{"model": "m", "error_type": "ServerError", "retryable": True, "retry_after": 3.0}]
        ),
        exc.BudgetExceededError("acme", "cost/day"),
        exc.LocalRateLimitError("openai/m", 0.5),
        exc.TenantRateLimitError("tenant:acme", 0.5),
        exc.RetryLaterError("openai", "m", 45.0, "RateLimitError"),
    ]
    for err in errors:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
        for field in ("status", "retryable", "retry_after", "provider", "model", "attempts", "code"):
            assert getattr(copy, field, None) == getattr(err, field, None), (type(err), field)


def test_retryability_defaults():
    assert exc.ServerError("p", "m").retryable and exc.RequestTimeoutError("p", "m").retryable
    assert exc.RateLimitError("p", "m").retryable
    for cls in (exc.AuthenticationError, exc.InvalidRequestError, exc.ModelNotFoundError, exc.ContentBlockedError):
        assert not cls("p", "m").retryable
    failed = exc.AllFallbacksFailedError(
        "p", [{"retryable": True, "retry_after": 5.0}, {"retryable": True, "retry_after": 2.0}]
    )
    assert failed.retryable and failed.retry_after == 2.0
    assert not exc.AllFallbacksFailedError("p", []).retryable


def test_the_package_version_is_the_one_in_pyproject():
    import re

    import llm_orchestrator
    from tests.conftest import ROOT

    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None and llm_orchestrator.__version__ == declared[1]
