"""One model's share of a request: breaker → rate limiter → adapter, inside the retry layer.

The orchestrator decides *which* model; ``ModelCall`` makes the call to one model as safely as
it can: it fails fast when that model's breaker is open, reserves rate-limit capacity, calls
the adapter, tells the breaker and the limiter how it went, records an :class:`Attempt`, and
retries retryable errors with backoff until the model's attempts or the deadline run out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from llm_orchestrator.exceptions import (
    BudgetExceededError,
    CircuitOpenError,
    LocalRateLimitError,
    ProviderError,
    RateLimitError,
    on_error,
)
from llm_orchestrator.observability.observer import Observer
from llm_orchestrator.providers.base import Attempt, LLMResponse, Message, RequestOptions, StreamChunk
from llm_orchestrator.resilience.budgets import Hold
from llm_orchestrator.resilience.ratelimit import Reservation
from llm_orchestrator.resilience.retry import Deadline, RetryPolicy, acall_with_retries, call_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")

CHARS_PER_TOKEN = 4  # rough estimate used to reserve tokens before the call


@dataclass(frozen=True)
class Request:
    """Everything about one request that stays the same across models and retries."""

    messages: list[Message]
    options: RequestOptions
    chain: list[str]
    deadline: Deadline
    prompt_hash: str
    session_id: str | None = None
    job_id: str | None = None
    attempt: int = 0
    tenant: str | None = None

    def estimated_tokens(self) -> int:
        chars = sum(len(m.content) for m in self.messages)
        return chars // CHARS_PER_TOKEN + self.options.max_tokens


@dataclass(frozen=True)
class Admission:
    """What admission reserved for one call: limiter capacity and the tenant's budget hold."""

    limit: Reservation
    hold: Hold | None


class ModelCall:
    """Calls one model of the active provider through breaker, limiter and retries."""

    def __init__(self, config: Any, parts: Any) -> None:
        self.provider: str = config.active_provider
        self.adapter = parts.adapter
        self.breakers = parts.breakers
        self.limiter = parts.limiter
        self.budgets = parts.budgets
        self.policy = RetryPolicy.from_config(config.retry)
        self.read_timeout: float = config.provider.timeout.read
        self.obs = Observer(parts.redis, config.redis.key_prefix)

    # -- sync -------------------------------------------------------------------------------

    def run(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        """Call ``model`` with retries. Raises the last error when retries are exhausted."""
        return call_with_retries(lambda: self._once(model, req, attempts), policy=self.policy,
                                 deadline=req.deadline, provider=self.provider, model=model)

    def _once(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        ticket, reservation = self._admit(model, req, attempts)
        started = time.perf_counter()
        try:
            response = self.adapter.generate(req.messages, model, self._options(req))
        except ProviderError as err:
            self._failed(model, ticket, reservation, err, started, attempts, req)
            raise
        self._succeeded(model, ticket, reservation, response, started, attempts)
        return response

    def stream(self, model: str, req: Request, attempts: list[Attempt]) -> Iterator[StreamChunk]:
        """Stream from ``model``. Retries happen only until the first chunk has arrived."""

        def open_stream() -> tuple[Any, Any, StreamChunk, Iterator[StreamChunk], float]:
            ticket, reservation = self._admit(model, req, attempts)
            started = time.perf_counter()
            chunks = self.adapter.stream(req.messages, model, self._options(req))
            try:
                first = next(chunks)
            except ProviderError as err:
                self._failed(model, ticket, reservation, err, started, attempts, req)
                raise
            return ticket, reservation, first, chunks, started

        ticket, reservation, first, chunks, started = call_with_retries(
            open_stream, policy=self.policy, deadline=req.deadline, provider=self.provider, model=model)
        try:
            for chunk in _prepend(first, chunks):
                if chunk.done and chunk.response is not None:
                    self._succeeded(model, ticket, reservation, chunk.response, started, attempts)
                yield chunk
        except ProviderError as err:
            self._failed(model, ticket, reservation, err, started, attempts, req)
            raise

    # -- async ------------------------------------------------------------------------------

    async def arun(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        """Async twin of :meth:`run`."""

        async def once() -> LLMResponse:
            ticket, reservation = await self._aadmit(model, req, attempts)
            started = time.perf_counter()
            try:
                response = await self.adapter.agenerate(req.messages, model, self._options(req))
            except ProviderError as err:
                self._failed(model, ticket, reservation, err, started, attempts, req)
                raise
            self._succeeded(model, ticket, reservation, response, started, attempts)
            return response

        return await acall_with_retries(once, policy=self.policy, deadline=req.deadline,
                                        provider=self.provider, model=model)

    async def astream(self, model: str, req: Request, attempts: list[Attempt]) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`."""

        async def open_stream() -> tuple[Any, Any, StreamChunk, AsyncIterator[StreamChunk], float]:
            ticket, reservation = await self._aadmit(model, req, attempts)
            started = time.perf_counter()
            chunks = self.adapter.astream(req.messages, model, self._options(req))
            try:
                first = await anext(chunks)
            except ProviderError as err:
                self._failed(model, ticket, reservation, err, started, attempts, req)
                raise
            return ticket, reservation, first, chunks, started

        ticket, reservation, first, chunks, started = await acall_with_retries(
            open_stream, policy=self.policy, deadline=req.deadline, provider=self.provider, model=model)
        chunk: StreamChunk | None = first
        try:
            while chunk is not None:
                if chunk.done and chunk.response is not None:
                    self._succeeded(model, ticket, reservation, chunk.response, started, attempts)
                yield chunk
                chunk = await anext(chunks, None)
        except ProviderError as err:
            self._failed(model, ticket, reservation, err, started, attempts, req)
            raise

    # -- bookkeeping shared by all four paths -----------------------------------------------

    def _admit(self, model: str, req: Request, attempts: list[Attempt]) -> tuple[Any, Admission]:
        """Breaker, tenant budget, then limiter. Any may refuse; then no provider call is made."""
        try:
            ticket = self.breakers.before_call(self.provider, model)
        except CircuitOpenError as err:
            attempts.append(Attempt(model, type(err).__name__, None, 0.0, True, err.retry_after))
            raise
        try:
            hold = self.budgets.reserve(req.tenant, self.provider, model, req.estimated_tokens(),
                                        req.options.max_tokens, self._max_wait(req))
        except (BudgetExceededError, LocalRateLimitError) as err:
            self._refused(model, ticket, None, err, attempts)
            raise
        try:
            reservation = self.limiter.acquire(self.provider, model, req.estimated_tokens(), self._max_wait(req))
        except LocalRateLimitError as err:
            self._refused(model, ticket, hold, err, attempts)
            raise
        return ticket, Admission(reservation, hold)

    async def _aadmit(self, model: str, req: Request, attempts: list[Attempt]) -> tuple[Any, Admission]:
        try:
            ticket = self.breakers.before_call(self.provider, model)
        except CircuitOpenError as err:
            attempts.append(Attempt(model, type(err).__name__, None, 0.0, True, err.retry_after))
            raise
        try:
            hold = await self.budgets.areserve(req.tenant, self.provider, model, req.estimated_tokens(),
                                               req.options.max_tokens, self._max_wait(req))
        except (BudgetExceededError, LocalRateLimitError) as err:
            self._refused(model, ticket, None, err, attempts)
            raise
        try:
            reservation = await self.limiter.aacquire(self.provider, model, req.estimated_tokens(),
                                                      self._max_wait(req))
        except LocalRateLimitError as err:
            self._refused(model, ticket, hold, err, attempts)
            raise
        return ticket, Admission(reservation, hold)

    def _refused(self, model: str, ticket: Any, hold: Hold | None, err: BudgetExceededError | LocalRateLimitError,
                 attempts: list[Attempt]) -> None:
        """A refusal after the breaker's permit: give back what was taken; no call was made."""
        self.budgets.release(hold, called=False)
        self.breakers.release(ticket)
        attempts.append(Attempt(model, type(err).__name__, None, 0.0, err.retryable, getattr(err, "retry_after", None)))

    def _max_wait(self, req: Request) -> float:
        return min(self.policy.max_inline_wait, req.deadline.remaining())

    def _options(self, req: Request) -> RequestOptions:
        """Never wait for a chunk longer than the request's remaining budget."""
        return replace(req.options, timeout=max(0.001, min(self.read_timeout, req.deadline.remaining())))

    def _succeeded(self, model: str, ticket: Any, admission: Admission, response: LLMResponse,
                   started: float, attempts: list[Attempt]) -> None:
        latency = (time.perf_counter() - started) * 1000
        self.breakers.record(ticket, success=True)
        self.limiter.reconcile(admission.limit, response.total_tokens)
        self.limiter.learn(self.provider, model, response.rate_limits)  # the provider's stated limit
        self.budgets.settle(admission.hold, response)
        attempts.append(Attempt(model=model, error_type=None, status=200, latency_ms=round(latency, 2)))

    def _failed(self, model: str, ticket: Any, admission: Admission, err: ProviderError, started: float,
                attempts: list[Attempt], req: Request) -> None:
        latency = (time.perf_counter() - started) * 1000
        if on_error(err).breaker_failure:  # 5xx and timeouts say the model is sick; 4xx and 429 do not
            self.breakers.record(ticket, success=False)
        else:
            self.breakers.release(ticket)  # neither success nor failure: frees a probe lease
        self.limiter.reconcile(admission.limit, 0)
        self.budgets.release(admission.hold)
        if isinstance(err, RateLimitError) and on_error(err).retry_same_model:  # not a quota error
            self.limiter.on_rate_limited(self.provider, model, err.retry_after)
        attempts.append(Attempt(model=model, error_type=type(err).__name__, status=err.status,
                                latency_ms=round(latency, 2), retryable=err.retryable, retry_after=err.retry_after))
        log.info("%s/%s call failed: %s (%s, HTTP %s) after %.0f ms", self.provider, model, type(err).__name__,
                 err.reason or "no reason", err.status, latency,
                 extra={"provider": self.provider, "model": model, "attempt": len(attempts),
                                       "error_type": type(err).__name__, "status": err.status,
                                       "latency_ms": round(latency, 2), "prompt_hash": req.prompt_hash})
        self.obs.call_failed(self.provider, model, err, latency, req, attempts)


def _prepend(first: StreamChunk, rest: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
    yield first
    yield from rest

