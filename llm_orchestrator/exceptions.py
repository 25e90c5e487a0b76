"""The error tree.

Every error is picklable (it crosses process boundaries as a Celery result) and keeps the SDK
error it came from as ``__cause__`` (``raise X from e``). Messages never contain API keys or
prompt text: they are built from the provider, model, status and a short reason only.

    LLMOrchestratorError
    ├── ConfigError
    ├── ProviderError (.provider, .model, .status, .retryable)
    │   ├── AuthenticationError
    │   ├── RateLimitError (.retry_after)
    │   │   └── QuotaExceededError     quota, spend limit, billing, a per-day quota
    │   ├── ServerError                5xx, overloaded, malformed body, broken stream
    │   ├── RequestTimeoutError
    │   ├── InvalidRequestError
    │   │   └── BatchNotFoundError     the provider does not know that batch id
    │   ├── ModelNotFoundError         unknown or retired model (404)
    │   ├── ContentBlockedError
    │   └── BatchItemNotRunError       the batch was cancelled/expired before the item ran
    ├── CircuitOpenError (.retry_after)
    ├── AllFallbacksFailedError (.attempts)
    ├── BudgetExceededError (.tenant, .limit)
    ├── LocalRateLimitError (.scope, .retry_after)
    │   └── TenantRateLimitError       a tenant's rpm
    └── RetryLaterError (.retry_after)

What each error does to a request (retry the model? next model? breaker failure? job comes back
later?) is decided in one place, :data:`ON_ERROR` at the end of this module; every call path and
the worker read it through :func:`on_error`, and the README's error table is printed from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LLMOrchestratorError(Exception):
    """Base class of every error this library raises on purpose."""

    @property
    def retryable(self) -> bool:
        """Whether the same work may succeed if tried again later (see :data:`ON_ERROR`)."""
        return on_error(self).job_retry

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
        retryable: whether the same call may succeed if repeated later (from :data:`ON_ERROR`).
        retry_after: seconds the provider asked us to wait, if it said.
        code: the provider's own error code (e.g. ``insufficient_quota``), if it gave one.
    """

    def __init__(
        self,
        provider: str,
        model: str | None,
        message: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.code = code
        self.reason = message
        self._args = (provider, model, message)
        self._kwargs = {"status": status, "retry_after": retry_after, "code": code}
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
    """The provider said 429 (too many requests or tokens for now)."""


class QuotaExceededError(RateLimitError):
    """The account's quota, spend limit or billing is exhausted (429/402, a per-day quota).

    Waiting seconds or trying another model of the same account cannot help.
    """


class ServerError(ProviderError):
    """5xx, overloaded, a malformed body or a stream that broke."""


class RequestTimeoutError(ProviderError):
    """No (complete) answer within the configured timeout.

    Attributes:
        cut_short: True when the request's deadline had left this call less than the read
            timeout: the timeout then says nothing about the provider, and the breaker does not
            count it (see :func:`counts_against_breaker`).
    """

    cut_short: bool = False


class InvalidRequestError(ProviderError):
    """The request itself is wrong (400/413/422): repeating it cannot help."""


class BatchNotFoundError(InvalidRequestError):
    """The provider does not know this batch id (404 on a batch status/results/cancel call)."""


class BatchItemNotRunError(ProviderError):
    """A batch item was never run: its batch was cancelled or expired first. Submit it again."""


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
        """The shortest wait the attempts that may succeed later asked for, if each of them said."""
        waits = [a.get("retry_after") for a in self.attempts if a.get("retryable")]
        if waits and all(w is not None for w in waits):
            return min(waits)  # type: ignore[type-var]
        return None

    @property
    def retryable(self) -> bool:
        """True when some model of the chain may succeed later (the worker then re-schedules the job)."""
        return any(a.get("retryable") for a in self.attempts)


class BudgetExceededError(LLMOrchestratorError):
    """A tenant's budget or quota would be exceeded; no call was made.

    Attributes:
        tenant: the tenant's name.
        limit: the config field that refused it: ``tokens_per_day`` or ``cost_per_day_usd``.
    """

    def __init__(self, tenant: str, limit: str, message: str = "") -> None:
        self.tenant = tenant
        self.limit = limit
        self._args = (tenant, limit, message)
        super().__init__(message or f"tenant {tenant!r} over its {limit} budget")


class LocalRateLimitError(LLMOrchestratorError):
    """Our own rate limiter refused the call; try again after ``retry_after`` seconds.

    Attributes:
        scope: the limit that refused it: ``provider`` or ``provider/model``.
        retry_after: seconds until there is room.
    """

    def __init__(self, scope: str, retry_after: float) -> None:
        self.scope = scope
        self.retry_after = retry_after
        self._args = (scope, retry_after)
        super().__init__(f"local rate limit for {scope}; retry in {retry_after:.2f}s")


class TenantRateLimitError(LocalRateLimitError):
    """A tenant's own ``rpm`` refused the call (scope ``tenant:<name>``): the same for every model."""


class RetryLaterError(LLMOrchestratorError):
    """A retryable failure whose wait is too long to sleep in-process.

    The worker turns it into a Celery countdown. ``cause_type`` names the original error.
    """

    def __init__(self, provider: str, model: str | None, retry_after: float, cause_type: str) -> None:
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.cause_type = cause_type
        self._args = (provider, model, retry_after, cause_type)
        super().__init__(f"{provider}/{model}: {cause_type}; retry in {retry_after:.1f}s")


# -- what each error does ---------------------------------------------------------------------


@dataclass(frozen=True)
class OnError:
    """What one kind of error does to a request. Every call path and the worker read this.

    Attributes:
        retry_same_model: worth another try on this model (after backoff, within the deadline)?
        next_model: may the next model of the provider's chain help?
        breaker_failure: does it say the provider/model is sick (counts against its breaker)?
        job_retry: may the same work succeed later? A worker job that ends with it is
            re-scheduled as a Celery countdown; this is also the error's ``retryable``.
        note: one line for the README's table.
    """

    retry_same_model: bool
    next_model: bool
    breaker_failure: bool
    job_retry: bool
    note: str = ""

    @property
    def stops_request(self) -> bool:
        """Raised to the caller at once: no retry, no other model."""
        return not (self.retry_same_model or self.next_model)


# Looked up along the error's class hierarchy (a subclass without its own row takes its parent's).
ON_ERROR: dict[type[Exception], OnError] = {
    ServerError: OnError(True, True, True, True, "5xx, 529 overloaded, malformed body, broken stream"),
    RequestTimeoutError: OnError(True, True, True, True, "no (complete) answer within the read timeout"),
    RateLimitError: OnError(
        True, True, False, True, "429; waits Retry-After / RetryInfo; shrinks the rate limiter (AIMD)"
    ),
    QuotaExceededError: OnError(
        False,
        False,
        False,
        False,
        "quota, spend limit, billing (402), a per-day quota: no model of the account can help",
    ),
    ModelNotFoundError: OnError(False, True, False, False, "404: unknown or retired model"),
    AuthenticationError: OnError(False, False, False, False, "401/403, Gemini API_KEY_INVALID"),
    InvalidRequestError: OnError(
        False, False, False, False, "400/413/422; also bad arguments and fine-tuned model ids, before any call"
    ),
    ContentBlockedError: OnError(False, False, False, False, "the provider refused the prompt (safety)"),
    BatchItemNotRunError: OnError(True, False, False, True, "batch lane only: the item is sent again live"),
    CircuitOpenError: OnError(False, True, False, True, "the model's breaker is open: no provider call"),
    LocalRateLimitError: OnError(False, True, False, True, "our limiter had no room within max_inline_wait"),
    TenantRateLimitError: OnError(False, False, False, True, "the tenant's rpm: the same for every model"),
    RetryLaterError: OnError(False, True, False, True, "a wait longer than max_inline_wait; carries retry_after"),
    BudgetExceededError: OnError(False, False, False, False, "a tenant's daily tokens or cost: no call made"),
    AllFallbacksFailedError: OnError(
        False, False, False, True, "every model failed; the job comes back later if one of them may succeed"
    ),
    ConfigError: OnError(False, False, False, False, "bad configuration"),
}
DEFAULT_ON_ERROR = OnError(False, False, False, False, "")


def counts_against_breaker(err: BaseException) -> bool:
    """The table's ``breaker_failure`` for ``err``, except a timeout our own deadline cut short."""
    return on_error(err).breaker_failure and not getattr(err, "cut_short", False)


def on_error(err: BaseException) -> OnError:
    """The row of :data:`ON_ERROR` for ``err`` (its class or nearest ancestor with a row)."""
    for cls in type(err).__mro__:
        row = ON_ERROR.get(cls)
        if row is not None:
            return row
    return DEFAULT_ON_ERROR
