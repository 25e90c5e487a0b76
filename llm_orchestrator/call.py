"""One model's share of a request, inside the retry layer: admit → call → settle.

The orchestrator decides *which* model; ``ModelCall`` makes the call to one model as safely as it
can. The gate admits it (breaker permit, tenant hold, limiter slot: one Redis round trip), the
adapter calls the provider, and the gate settles it (breaker outcome, real tokens and spend, the
ledger row, the stats entry: one round trip). Each try is recorded as an :class:`Attempt`;
retryable errors are retried with backoff until the model's attempts or the deadline run out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

from llm_orchestrator.exceptions import (
    BudgetExceededError,
    CircuitOpenError,
    LocalRateLimitError,
    ProviderError,
    RequestTimeoutError,
)
from llm_orchestrator.gate import Admission, Gate
from llm_orchestrator.kept_answers import KeptAnswers
from llm_orchestrator.observability.events import ERROR, OK
from llm_orchestrator.observability.observer import Observer
from llm_orchestrator.observability.stats import StatsStream, call_entry
from llm_orchestrator.providers.base import Attempt, LLMResponse, Message, RequestOptions, StreamChunk
from llm_orchestrator.resilience.retry import Deadline, RetryPolicy, acall_with_retries, call_with_retries

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # rough estimate used to reserve tokens before the call
REFUSALS = (CircuitOpenError, BudgetExceededError, LocalRateLimitError)  # admission said no: no call made


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


class ModelCall:
    """Calls one model of the active provider: admission, the adapter, settlement, retries."""

    def __init__(self, config: Any, parts: Any, kept: KeptAnswers | None = None) -> None:
        self.provider: str = config.active_provider
        self.adapter = parts.adapter
        self.limiter = parts.limiter
        self.policy = RetryPolicy.from_config(config.retry)
        self.read_timeout: float = config.provider.timeout.read
        prefix = config.redis.key_prefix
        self.obs = Observer(parts.redis, prefix, calls_to_stream=False)  # the gate writes call entries
        stream = StatsStream(parts.redis, prefix) if parts.redis is not None else None
        self.gate = Gate(self.provider, parts, stream, track_costs=config.cost_tracking.enabled)
        self.kept = kept or KeptAnswers()

    # -- sync -------------------------------------------------------------------------------

    def run(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        """Call ``model`` with retries. Raises the last error when retries are exhausted."""
        return call_with_retries(
            lambda: self._once(model, req, attempts),
            policy=self.policy,
            deadline=req.deadline,
            provider=self.provider,
            model=model,
        )

    def _once(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        admission = self._admit(model, req, attempts)
        options, started = self._options(req), time.perf_counter()
        try:
            response = self.adapter.generate(req.messages, model, options)
        except ProviderError as err:
            self.gate.settle_failure(admission, err, self._failed(model, err, started, attempts, req, options))
            raise
        self._answered(model, response, started, attempts, req)
        self._settled(
            model,
            response,
            req,
            attempts,
            self.gate.settle_success(admission, response, req, self._ok(model, response)),
        )
        return response

    def stream(self, model: str, req: Request, attempts: list[Attempt]) -> Iterator[StreamChunk]:
        """Stream from ``model``. Retries happen only until the first chunk has arrived."""

        def open_stream() -> tuple[Admission, StreamChunk, Iterator[StreamChunk], float, RequestOptions]:
            admission = self._admit(model, req, attempts)
            options, started = self._options(req), time.perf_counter()
            chunks = self.adapter.stream(req.messages, model, options)
            try:
                first = next(chunks)
            except ProviderError as err:
                self.gate.settle_failure(admission, err, self._failed(model, err, started, attempts, req, options))
                raise
            return admission, first, chunks, started, options

        admission, first, chunks, started, options = call_with_retries(
            open_stream, policy=self.policy, deadline=req.deadline, provider=self.provider, model=model
        )
        try:
            for chunk in _prepend(first, chunks):
                if chunk.done and chunk.response is not None:
                    self._answered(model, chunk.response, started, attempts, req)
                    settled = self.gate.settle_success(admission, chunk.response, req, self._ok(model, chunk.response))
                    self._settled(model, chunk.response, req, attempts, settled)
                yield chunk
        except ProviderError as err:
            self.gate.settle_failure(admission, err, self._failed(model, err, started, attempts, req, options))
            raise

    # -- async ------------------------------------------------------------------------------

    async def arun(self, model: str, req: Request, attempts: list[Attempt]) -> LLMResponse:
        """Async twin of :meth:`run` (every Redis round trip through ``redis.asyncio``)."""

        async def once() -> LLMResponse:
            admission = await self._aadmit(model, req, attempts)
            options, started = self._options(req), time.perf_counter()
            try:
                response = await self.adapter.agenerate(req.messages, model, options)
            except ProviderError as err:
                stats = self._failed(model, err, started, attempts, req, options)
                await self.gate.asettle_failure(admission, err, stats)
                raise
            self._answered(model, response, started, attempts, req)
            settled = await self.gate.asettle_success(admission, response, req, self._ok(model, response))
            self._settled(model, response, req, attempts, settled)
            return response

        return await acall_with_retries(
            once, policy=self.policy, deadline=req.deadline, provider=self.provider, model=model
        )

    async def astream(self, model: str, req: Request, attempts: list[Attempt]) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`."""

        async def open_stream() -> tuple[Admission, StreamChunk, AsyncIterator[StreamChunk], float, RequestOptions]:
            admission = await self._aadmit(model, req, attempts)
            options, started = self._options(req), time.perf_counter()
            chunks = self.adapter.astream(req.messages, model, options)
            try:
                first = await anext(chunks)
            except ProviderError as err:
                stats = self._failed(model, err, started, attempts, req, options)
                await self.gate.asettle_failure(admission, err, stats)
                raise
            return admission, first, chunks, started, options

        admission, first, chunks, started, options = await acall_with_retries(
            open_stream, policy=self.policy, deadline=req.deadline, provider=self.provider, model=model
        )
        chunk: StreamChunk | None = first
        try:
            while chunk is not None:
                if chunk.done and chunk.response is not None:
                    self._answered(model, chunk.response, started, attempts, req)
                    settled = await self.gate.asettle_success(
                        admission, chunk.response, req, self._ok(model, chunk.response)
                    )
                    self._settled(model, chunk.response, req, attempts, settled)
                yield chunk
                chunk = await anext(chunks, None)
        except ProviderError as err:
            await self.gate.asettle_failure(admission, err, self._failed(model, err, started, attempts, req, options))
            raise

    # -- what every path does around the call -----------------------------------------------

    def _admit(self, model: str, req: Request, attempts: list[Attempt]) -> Admission:
        try:
            return self.gate.admit(model, req, self._max_wait(req))
        except REFUSALS as err:
            attempts.append(_refused(model, err))
            raise

    async def _aadmit(self, model: str, req: Request, attempts: list[Attempt]) -> Admission:
        try:
            return await self.gate.aadmit(model, req, self._max_wait(req))
        except REFUSALS as err:
            attempts.append(_refused(model, err))
            raise

    def _max_wait(self, req: Request) -> float:
        return min(self.policy.max_inline_wait, req.deadline.remaining())

    def _options(self, req: Request) -> RequestOptions:
        """Never wait for a chunk longer than the request's remaining budget."""
        return replace(req.options, timeout=max(0.001, min(self.read_timeout, req.deadline.remaining())))

    def _answered(
        self, model: str, response: LLMResponse, started: float, attempts: list[Attempt], req: Request
    ) -> None:
        """Record the try; keep the answer (before billing: a re-run of this job here reuses it)."""
        latency = round((time.perf_counter() - started) * 1000, 2)
        attempts.append(Attempt(model=model, error_type=None, status=200, latency_ms=latency))
        response.attempts = [a.to_dict() for a in attempts]
        self.kept.put(req, response)

    def _ok(self, model: str, response: LLMResponse) -> dict[str, Any]:
        return call_entry(self.provider, model, OK, response.attempts[-1]["latency_ms"])

    def _settled(self, model: str, response: LLMResponse, req: Request, attempts: list[Attempt], settled: Any) -> None:
        """After settlement: the session total for the worker, the learned limit, in-process events."""
        if settled.session_micros is not None:
            from llm_orchestrator.pricing import from_micros

            response.session_cost_usd = from_micros(settled.session_micros)
        self.limiter.learn(self.provider, model, response.rate_limits)  # the provider's stated limit
        self.obs.call_succeeded(response, req, attempts)

    def _failed(
        self,
        model: str,
        err: ProviderError,
        started: float,
        attempts: list[Attempt],
        req: Request,
        options: RequestOptions,
    ) -> dict[str, Any]:
        """Record the failed try (log, metrics); returns its stats entry for the gate to store.

        A timeout of a call the request's deadline gave less than the read timeout is marked
        ``cut_short``: it says nothing about the provider, so the breaker does not count it.
        """
        latency = (time.perf_counter() - started) * 1000
        given = options.timeout
        if isinstance(err, RequestTimeoutError) and given is not None and given < self.read_timeout:
            err.cut_short = True
        attempts.append(
            Attempt(
                model=model,
                error_type=type(err).__name__,
                status=err.status,
                latency_ms=round(latency, 2),
                retryable=err.retryable,
                retry_after=err.retry_after,
            )
        )
        log.info(
            "%s/%s call failed: %s (%s, HTTP %s) after %.0f ms",
            self.provider,
            model,
            type(err).__name__,
            err.reason or "no reason",
            err.status,
            latency,
            extra={
                "provider": self.provider,
                "model": model,
                "attempt": len(attempts),
                "error_type": type(err).__name__,
                "status": err.status,
                "latency_ms": round(latency, 2),
                "prompt_hash": req.prompt_hash,
            },
        )
        self.obs.call_failed(self.provider, model, err, latency, req, attempts)
        return call_entry(self.provider, model, ERROR, round(latency, 2), type(err).__name__)


def _refused(model: str, err: Exception) -> Attempt:
    return Attempt(
        model, type(err).__name__, None, 0.0, getattr(err, "retryable", None), getattr(err, "retry_after", None)
    )


def _prepend(first: StreamChunk, rest: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
    yield first
    yield from rest
