"""The error tree.

Every error is picklable (it crosses process boundaries as a Celery result) and keeps the SDK
error it came from as ``__cause__`` (``raise X from e``). Messages never contain API keys or
prompt text: they are built from the provider, model, status and a short reason only.

    LLMOrchestratorError
    ├── ConfigError
    ├── ProviderError (.provider, .model, .status, .retryable)
    │   ├── AuthenticationError        not retryable
    │   ├── RateLimitError             retryable (.retry_after); quota exhausted is not
    │   ├── ServerError                retryable (5xx, overloaded, malformed body, broken stream)
    │   ├── RequestTimeoutError        retryable
    │   ├── InvalidRequestError        not retryable
    │   │   └── BatchNotFoundError     the provider does not know that batch id
    │   ├── ModelNotFoundError         not retryable on this model; the next model may work
    │   ├── ContentBlockedError        not retryable
    │   └── BatchItemNotRunError       retryable: the batch was cancelled/expired before the item ran
    ├── CircuitOpenError (.retry_after)
    ├── AllFallbacksFailedError (.attempts)
    ├── BudgetExceededError (.tenant, .limit)  not retryable; never falls back to another model
    └── LocalRateLimitError (.retry_after)
"""

from __future__ import annotations

from typing import Any


class LLMOrchestratorError(Exception):
    """Base class of every error this library raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses keep their constructor arguments in ``self._args`` so pickling rebuilds
        # them exactly (Exception's default pickling only passes ``self.args``).
        return (self.__class__, getattr(self, "_args", self.args))


class ConfigError(LLMOrchestratorError):
    """The configuration is invalid. The message names the file, the field and the problem."""


class ProviderError(LLMOrchestratorError):
    """A provider call failed.

    Attributes:
        provider: ``openai``, ``anthropic`` or ``gemini``.
        model: the model that was called.
        status: the HTTP status, or ``None`` when no response arrived.
        retryable: whether the same call may succeed if repeated later.
        retry_after: seconds the provider asked us to wait, if it said.
    """

    default_retryable = False

    def __init__(
        self,
        provider: str,
        model: str | None,
        message: str = "",
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.code = code
        self.reason = message
        self._args = (provider, model, message)
        self._kwargs = {
            "status": status,
            "retryable": retryable,
            "retry_after": retry_after,
            "code": code,
        }
        where = f"{provider}/{model}" if model else provider
        text = f"{where}: {message}" if message else where
        if status is not None:
            text += f" (HTTP {status})"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__class__, self._args, self._kwargs))


def _rebuild(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)


class AuthenticationError(ProviderError):
    """The API key was rejected (401/403)."""


class RateLimitError(ProviderError):
    """The provider said 429. ``retryable`` is False when the quota or spend limit is used up."""

    default_retryable = True


class ServerError(ProviderError):
    """5xx, overloaded, a malformed body or a stream that broke: retryable."""

    default_retryable = True


class RequestTimeoutError(ProviderError):
    """No (complete) answer within the configured timeout: retryable."""

    default_retryable = True


class InvalidRequestError(ProviderError):
    """The request itself is wrong (400/413/422): repeating it cannot help."""


class BatchNotFoundError(InvalidRequestError):
    """The provider does not know this batch id (404 on a batch status/results/cancel call)."""


class BatchItemNotRunError(ProviderError):
    """A batch item was never run: its batch was cancelled or expired first. Submit it again."""

    default_retryable = True


class ModelNotFoundError(ProviderError):
    """The model does not exist or was retired (404). The next fallback model may work."""


class ContentBlockedError(ProviderError):
    """The provider refused the prompt or the answer for safety reasons."""


class CircuitOpenError(LLMOrchestratorError):
    """The breaker for (provider, model) is open; no call was made.

    Attributes:
        provider: the provider.
        model: the model whose breaker is open.
        retry_after: seconds until the breaker may admit a probe.
    """

    retryable = True

    def __init__(self, provider: str, model: str, retry_after: float) -> None:
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.status = None
        self._args = (provider, model, retry_after)
        super().__init__(f"circuit open for {provider}/{model}; retry in {retry_after:.1f}s")


class AllFallbacksFailedError(LLMOrchestratorError):
    """Every model in the chain failed. ``attempts`` lists each try (dicts, JSON-friendly)."""

    def __init__(self, provider: str, attempts: list[dict[str, Any]]) -> None:
        self.provider = provider
        self.attempts = attempts
        self._args = (provider, attempts)
        tried = ", ".join(f"{a.get('model')}: {a.get('error_type')}" for a in attempts)
        super().__init__(f"all models of {provider} failed ({tried})")

    @property
    def retry_after(self) -> float | None:
        """The shortest wait any attempt asked for, if every failure was retryable later."""
        waits = [a.get("retry_after") for a in self.attempts]
        if waits and all(w is not None for w in waits):
            return min(waits)  # type: ignore[type-var]
        return None

    @property
    def retryable(self) -> bool:
        return bool(self.attempts) and all(a.get("retryable") for a in self.attempts)


class BudgetExceededError(LLMOrchestratorError):
    """A tenant's budget or quota would be exceeded; no call was made.

    Attributes:
        tenant: the tenant's name.
        limit: the config field that refused it: ``tokens_per_day`` or ``cost_per_day_usd``.
    """

    retryable = False

    def __init__(self, tenant: str, limit: str, message: str = "") -> None:
        self.tenant = tenant
        self.limit = limit
        self._args = (tenant, limit, message)
        super().__init__(message or f"tenant {tenant!r} over its {limit} budget")


class LocalRateLimitError(LLMOrchestratorError):
    """Our own rate limiter refused the call; try again after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, scope: str, retry_after: float) -> None:
        self.scope = scope
        self.retry_after = retry_after
        self._args = (scope, retry_after)
        super().__init__(f"local rate limit for {scope}; retry in {retry_after:.2f}s")


class RetryLaterError(LLMOrchestratorError):
    """A retryable failure whose wait is too long to sleep in-process.

    The worker turns it into a Celery countdown. ``cause_type`` names the original error.
    """

    retryable = True

    def __init__(self, provider: str, model: str | None, retry_after: float, cause_type: str) -> None:
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.cause_type = cause_type
        self._args = (provider, model, retry_after, cause_type)
        super().__init__(f"{provider}/{model}: {cause_type}; retry in {retry_after:.1f}s")
