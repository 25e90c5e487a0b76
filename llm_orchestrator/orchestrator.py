"""LLMOrchestrator: one provider, a chain of its models, one retry layer.

The fallback loop is the whole idea: try the active model (or ``model=``), then each of the
provider's ``fallback_models`` in order. Which errors move to the next model (5xx, timeouts,
overload, an unknown or retired model, an open breaker, a rate limit) and which stop at once
(bad key, bad request, blocked content, quota, budget) is decided by one table,
:data:`llm_orchestrator.exceptions.ON_ERROR`. It never switches provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llm_orchestrator.assembly import Parts, assemble
from llm_orchestrator.call import ModelCall, Request
from llm_orchestrator.config.manager import ConfigManager, OrchestratorConfig
from llm_orchestrator.cost_tracker import CostTracker
from llm_orchestrator.exceptions import AllFallbacksFailedError, LLMOrchestratorError, on_error
from llm_orchestrator.inputs import check_request
from llm_orchestrator.kept_answers import KeptAnswers
from llm_orchestrator.models.registry import ModelRegistry
from llm_orchestrator.observability.usage import UsageMetrics
from llm_orchestrator.providers.base import Attempt, BaseLLMProvider, LLMResponse, Message, RequestOptions, StreamChunk
from llm_orchestrator.resilience.degrade import redis_errors
from llm_orchestrator.resilience.retry import Deadline

log = logging.getLogger(__name__)


class LLMOrchestrator:
    """Send requests to the configured provider, falling back through that provider's models only.

    Nothing connects on construction: the Redis client and the SDK clients connect on first use.

    Args:
        config: a validated configuration.
        redis: a Redis client for the shared breaker, limiter, budgets, ledger and model cache. When
            None, one is made from ``config.redis.url`` if that is set, else all state stays in this
            process.
        **parts: ready-made parts instead of the ones built from ``config`` (tests, benchmarks):
            ``adapter``, ``registry``, ``cost_tracker``, ``breakers``, ``limiter``, ``budgets``, ``alerts``.

    Attributes:
        config: the configuration it was built with.
        provider: the active provider (``config.active_provider``); requests never leave it.
        adapter: the active provider's adapter.
        registry: the model registry of every configured provider.
        cost_tracker: the cost tracker; None when ``cost_tracking.enabled`` is false and none was passed.
        redis: the Redis client shared by every part; None when all state stays in this process.

    Raises:
        ConfigError: ``cost_tracking.pricing_path`` cannot be read or holds a bad price.
    """

    def __init__(self, config: OrchestratorConfig, *, redis: Any = None, **parts: Any) -> None:
        self.config: OrchestratorConfig = config
        self.provider: str = config.active_provider
        self._parts: Parts = assemble(config, redis=redis, **parts)
        self.adapter: BaseLLMProvider = self._parts.adapter
        self.registry: ModelRegistry | None = self._parts.registry
        self.cost_tracker: CostTracker | None = self._parts.cost_tracker
        self.redis: Any = self._parts.redis  # shared state; None when everything stays in this process
        self._kept: KeptAnswers = KeptAnswers()
        self._call: ModelCall = ModelCall(config, self._parts, self._kept)

    @classmethod
    def from_yaml(cls, path: str | None = None, **parts: Any) -> LLMOrchestrator:
        """Build an orchestrator from a YAML configuration file.

        Args:
            path: the file; default ``$LLM_ORCH_CONFIG``, then ``config/config.yaml``.
            **parts: passed to the constructor (``redis`` and ready-made parts).

        Returns:
            The orchestrator; nothing has connected yet.

        Raises:
            ConfigError: the file or its ``cost_tracking.pricing_path`` cannot be read or is invalid.
        """
        return cls(ConfigManager.load(path).config, **parts)

    # -- public API ---------------------------------------------------------------------

    def send_request(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: list[Message] | None = None,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float | None = None,
        cache_system: bool = False,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        deadline: float | None = None,
    ) -> LLMResponse:
        """Send one request, trying the provider's models in order until one answers.

        The chain is ``model`` (or ``active_model``) then the provider's ``fallback_models``; it never
        leaves the provider. Each model gets the one retry layer (``retry.max_attempts`` tries with
        backoff); :data:`~llm_orchestrator.exceptions.ON_ERROR` decides what each error does.

        Args:
            prompt: the user message; pass it or ``messages``, not both.
            system: a system prompt, or None.
            messages: a conversation (``Message`` list) instead of ``prompt``.
            model: start the chain at this model instead of ``active_model``.
            max_tokens: the answer's length limit in tokens (1 to 64,000).
            temperature: sampling temperature (0 to 2); None leaves the provider's default. Never sent
                to Anthropic, whose API rejects it.
            cache_system: mark the system prompt cacheable (Anthropic ``cache_control``; OpenAI and
                Gemini cache on their own).
            session_id: the session whose running cost this call adds to.
            job_id, attempt: the ledger keeps one row per ``(job_id, attempt)``; the same job, attempt
                and prompt asked again in this process gets the answer kept from the first call.
            tenant: the tenant whose rpm and daily budgets (``tenants``) apply; None: no limits.
            deadline: seconds for the whole request, all models and retries; None (or 0) means
                ``retry.deadline``.

        Returns:
            The first answer, with ``attempts`` (every try) and ``cost_usd`` (None for an unpriced
            model).

        Raises:
            InvalidRequestError: a bad argument (before any call), or the provider rejected the request.
            ConfigError: the registry, once refreshed, does not know a model of the chain.
            AuthenticationError, QuotaExceededError, ContentBlockedError, BudgetExceededError,
                TenantRateLimitError: at once, without trying the other models.
            AllFallbacksFailedError: every model of the chain failed; ``attempts`` lists the tries.
        """
        req = self._prepare(
            prompt,
            system,
            messages,
            model,
            max_tokens,
            temperature,
            cache_system,
            session_id,
            job_id,
            attempt,
            tenant,
            deadline,
        )
        with self._billing(req):
            if (kept := self._kept.get(req)) is not None:  # this job, run again here: already paid for
                return self._bill(kept, req)
            attempts: list[Attempt] = []
            for candidate in req.chain:
                try:
                    response = self._call.run(candidate, req, attempts)
                except LLMOrchestratorError as err:
                    self._note_fallback(candidate, err, req)
                    continue
                return self._finish(response, attempts, req)
            raise AllFallbacksFailedError(self.provider, [a.to_dict() for a in attempts])

    def send_streaming_request(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: list[Message] | None = None,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float | None = None,
        cache_system: bool = False,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        deadline: float | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream one request: like :meth:`send_request`, but yields the answer as it arrives.

        Falls back to the next model only before the first chunk arrives. After it, an error
        is raised as is: two models' output is never spliced into one answer. Unlike
        :meth:`send_request`, it never reuses an answer kept for the same job and attempt.

        Args:
            prompt, system, messages, model, max_tokens, temperature, cache_system, session_id, job_id,
                attempt, tenant, deadline: as for :meth:`send_request`.

        Yields:
            Chunks of text; the last one has ``done=True`` and ``response`` (usage and cost).

        Raises:
            InvalidRequestError, ConfigError, AuthenticationError, QuotaExceededError, ContentBlockedError,
                BudgetExceededError, TenantRateLimitError: before the first chunk, as for :meth:`send_request`.
            AllFallbacksFailedError: no model of the chain produced a first chunk.
            ProviderError: the stream broke after the first chunk (e.g. ``ServerError``, ``RequestTimeoutError``).
        """
        req = self._prepare(
            prompt,
            system,
            messages,
            model,
            max_tokens,
            temperature,
            cache_system,
            session_id,
            job_id,
            attempt,
            tenant,
            deadline,
        )
        with self._billing(req):
            attempts: list[Attempt] = []
            for candidate in req.chain:
                stream = self._call.stream(candidate, req, attempts)
                try:
                    first = next(stream)
                except LLMOrchestratorError as err:
                    self._note_fallback(candidate, err, req)
                    continue
                for chunk in itertools.chain([first], stream):
                    if chunk.done and chunk.response is not None:
                        self._finish(chunk.response, attempts, req)
                    yield chunk
                return
            raise AllFallbacksFailedError(self.provider, [a.to_dict() for a in attempts])

    async def asend_request(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: list[Message] | None = None,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float | None = None,
        cache_system: bool = False,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        deadline: float | None = None,
    ) -> LLMResponse:
        """Async twin of :meth:`send_request`: the same chain, errors and billing.

        Args:
            prompt, system, messages, model, max_tokens, temperature, cache_system, session_id, job_id,
                attempt, tenant, deadline: as for :meth:`send_request`.

        Returns:
            The first answer, as :meth:`send_request` returns it.

        Raises:
            InvalidRequestError, ConfigError, AuthenticationError, QuotaExceededError, ContentBlockedError,
                BudgetExceededError, TenantRateLimitError: as for :meth:`send_request`.
            AllFallbacksFailedError: every model of the chain failed.
        """
        req = self._prepare(
            prompt,
            system,
            messages,
            model,
            max_tokens,
            temperature,
            cache_system,
            session_id,
            job_id,
            attempt,
            tenant,
            deadline,
            check_models=False,
        )
        await self._acheck_models(req.chain)
        async with self._abilling(req):
            if (kept := self._kept.get(req)) is not None:
                return await asyncio.to_thread(self._bill, kept, req)  # rare: a job run again here
            attempts: list[Attempt] = []
            for candidate in req.chain:
                try:
                    response = await self._call.arun(candidate, req, attempts)
                except LLMOrchestratorError as err:
                    self._note_fallback(candidate, err, req)
                    continue
                return self._finish(response, attempts, req)
            raise AllFallbacksFailedError(self.provider, [a.to_dict() for a in attempts])

    async def asend_streaming_request(
        self,
        prompt: str | None = None,
        *,
        system: str | None = None,
        messages: list[Message] | None = None,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float | None = None,
        cache_system: bool = False,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`send_streaming_request`.

        Args:
            prompt, system, messages, model, max_tokens, temperature, cache_system, session_id, job_id,
                attempt, tenant, deadline: as for :meth:`send_request`.

        Yields:
            Chunks of text; the last one has ``done=True`` and ``response`` (usage and cost).

        Raises:
            InvalidRequestError, ConfigError, AuthenticationError, QuotaExceededError, ContentBlockedError,
                BudgetExceededError, TenantRateLimitError: before the first chunk, as for :meth:`send_request`.
            AllFallbacksFailedError: no model of the chain produced a first chunk.
            ProviderError: the stream broke after the first chunk.
        """
        req = self._prepare(
            prompt,
            system,
            messages,
            model,
            max_tokens,
            temperature,
            cache_system,
            session_id,
            job_id,
            attempt,
            tenant,
            deadline,
            check_models=False,
        )
        await self._acheck_models(req.chain)
        async with self._abilling(req):
            attempts: list[Attempt] = []
            for candidate in req.chain:
                stream = self._call.astream(candidate, req, attempts)
                try:
                    first = await anext(stream)
                except LLMOrchestratorError as err:
                    self._note_fallback(candidate, err, req)
                    continue
                chunk: StreamChunk | None = first
                while chunk is not None:
                    if chunk.done and chunk.response is not None:
                        self._finish(chunk.response, attempts, req)
                    yield chunk
                    chunk = await anext(stream, None)
                return
            raise AllFallbacksFailedError(self.provider, [a.to_dict() for a in attempts])

    def get_metrics(self) -> UsageMetrics:
        """Summarise this orchestrator's provider calls so far, in this process (no Redis read).

        Returns:
            A snapshot: totals, averages, p50/p95/p99 latency, cost, prompt-cache hit rate and errors
            by type; ``to_dict()`` gives plain JSON types.
        """
        return self._call.obs.usage.snapshot()

    def close(self) -> None:
        """Close the active adapter's sync SDK client; a later call opens a new one."""
        self.adapter.close()

    # -- helpers ------------------------------------------------------------------------

    def _prepare(
        self,
        prompt: str | None,
        system: str | None,
        messages: list[Message] | None,
        model: str | None,
        max_tokens: int,
        temperature: float | None,
        cache_system: bool,
        session_id: str | None,
        job_id: str | None,
        attempt: int,
        tenant: str | None,
        deadline: float | None,
        check_models: bool = True,
    ) -> Request:
        msgs = check_request(
            self.provider,
            prompt=prompt,
            system=system,
            messages=messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            ids={"session_id": session_id, "job_id": job_id, "tenant": tenant},
        )
        chain = self.config.model_chain(model)
        if check_models:
            self._check_models(chain)
        return Request(
            messages=msgs,
            options=RequestOptions(max_tokens=max_tokens, temperature=temperature, cache_system=cache_system),
            chain=chain,
            deadline=Deadline(deadline or self.config.retry.deadline),
            prompt_hash=_hash(msgs),
            session_id=session_id,
            job_id=job_id,
            attempt=attempt,
            tenant=tenant,
        )

    def _check_models(self, chain: list[str]) -> None:
        if self.registry is not None:
            for m in chain:
                self.registry.check_model(self.provider, m)

    async def _acheck_models(self, chain: list[str]) -> None:
        """As :meth:`_check_models`; its one Redis read per process runs off the event loop."""
        if self.registry is not None and self.registry.needs_load(self.provider):
            await asyncio.to_thread(self._check_models, chain)
        else:
            self._check_models(chain)

    @contextlib.asynccontextmanager
    async def _abilling(self, req: Request) -> AsyncIterator[None]:
        """Async twin of :meth:`_billing` (clearing the mark runs off the event loop)."""
        try:
            yield
        except BaseException:
            if req.job_id and self.cost_tracker is not None and self.config.cost_tracking.enabled:
                await asyncio.to_thread(self._abandon, req)
            raise

    def _abandon(self, req: Request) -> None:
        try:
            self.cost_tracker.abandon(req.job_id, req.attempt)  # type: ignore[union-attr, arg-type]
        except redis_errors():  # the original error matters more; the marker stays visible
            log.debug("could not clear the ledger's pending marker (Redis unreachable)")

    @contextlib.contextmanager
    def _billing(self, req: Request) -> Iterator[None]:
        """Clear the (job_id, attempt) pending mark (set by admission) if the request bills nothing."""
        try:
            yield
        except BaseException:
            if req.job_id and self.cost_tracker is not None and self.config.cost_tracking.enabled:
                self._abandon(req)
            raise

    def _note_fallback(self, model: str, err: LLMOrchestratorError, req: Request) -> None:
        """Go on to the next model if the error table says another model may help, else re-raise."""
        if not on_error(err).next_model:
            raise err  # e.g. a bad key, quota exhausted, a tenant's budget: no model of this provider helps
        log.warning(
            "%s/%s failed (%s: %s); trying next model",
            self.provider,
            model,
            type(err).__name__,
            err,
            extra={
                "provider": self.provider,
                "model": model,
                "prompt_hash": req.prompt_hash,
                "error_type": type(err).__name__,
            },
        )
        self._call.obs.fallback(self.provider, model, err, req)

    def _finish(self, response: LLMResponse, attempts: list[Attempt], req: Request) -> LLMResponse:
        """The request succeeded (its call was settled and billed by the gate): request-level alerts."""
        self._parts.alerts.request_finished(response, req)
        return response

    def _bill(self, response: LLMResponse, req: Request) -> LLMResponse:
        """The ledger row for the call (once per job and attempt; see ``ledger``)."""
        if self.cost_tracker is not None and self.config.cost_tracking.enabled:
            record = self.cost_tracker.log_usage(
                response,
                session_id=req.session_id,
                job_id=req.job_id,
                attempt=req.attempt,
                tenant=req.tenant,
                request_id=response.request_id,
            )
            response.cost_usd = record.cost_usd
        return response


def _hash(msgs: list[Message]) -> str:
    """A short, stable hash of the prompt for logs (the text itself is never logged at INFO)."""
    h = hashlib.sha256()
    for m in msgs:
        h.update(m.role.encode() + b"\0" + m.content.encode() + b"\0")
    return h.hexdigest()[:12]
