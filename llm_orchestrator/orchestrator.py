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

from llm_orchestrator.assembly import assemble
from llm_orchestrator.call import ModelCall, Request
from llm_orchestrator.config.manager import ConfigManager, OrchestratorConfig
from llm_orchestrator.exceptions import AllFallbacksFailedError, LLMOrchestratorError, on_error
from llm_orchestrator.inputs import check_request
from llm_orchestrator.kept_answers import KeptAnswers
from llm_orchestrator.observability.usage import UsageMetrics
from llm_orchestrator.providers.base import Attempt, LLMResponse, Message, RequestOptions, StreamChunk
from llm_orchestrator.resilience.degrade import redis_errors
from llm_orchestrator.resilience.retry import Deadline

log = logging.getLogger(__name__)


class LLMOrchestrator:
    """Send requests to the configured provider with in-provider fallback.

    Args:
        config: a validated configuration.
        redis: a Redis client for shared breaker/limiter/ledger/registry state; ``None``
            keeps everything in this process. Built lazily from ``config.redis.url`` by
            :meth:`from_yaml` — nothing connects until the first call.
        adapter, registry, cost_tracker, breakers, limiter: injectable parts (tests,
            benchmarks); built from the config when omitted.
    """

    def __init__(self, config: OrchestratorConfig, *, redis: Any = None, **parts: Any) -> None:
        self.config = config
        self.provider: str = config.active_provider
        self._parts = assemble(config, redis=redis, **parts)
        self.adapter = self._parts.adapter
        self.registry = self._parts.registry
        self.cost_tracker = self._parts.cost_tracker
        self.redis = self._parts.redis  # shared state; None when everything stays in this process
        self._kept = KeptAnswers()
        self._call = ModelCall(config, self._parts, self._kept)

    @classmethod
    def from_yaml(cls, path: str | None = None, **parts: Any) -> LLMOrchestrator:
        """Build from a YAML file (default ``$LLM_ORCH_CONFIG``, then ``config/config.yaml``)."""
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
        """Send one request, falling back through the provider's models.

        Args:
            prompt: the user message (or pass ``messages``).
            system: a system prompt.
            messages: a full conversation instead of ``prompt``.
            model: start the chain at this model instead of ``active_model``.
            max_tokens: answer length limit.
            temperature: sampling temperature (not sent to Anthropic, whose API rejects it).
            cache_system: ask for prompt caching of the system block (Anthropic).
            session_id, job_id, attempt, tenant: recorded with the cost.
            deadline: seconds for the whole request incl. retries (default ``retry.deadline``).

        Returns:
            The response of the first model that answered, with ``attempts`` and ``cost_usd``.

        Raises:
            AllFallbacksFailedError: every model failed with a fall-through error.
            AuthenticationError, InvalidRequestError, ContentBlockedError, RateLimitError
            (quota), BudgetExceededError: at once, without trying other models.
        """
        req = self._prepare(prompt, system, messages, model, max_tokens, temperature, cache_system,
                            session_id, job_id, attempt, tenant, deadline)
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
        """Stream a request (same arguments as :meth:`send_request`).

        Falls back to the next model only before the first chunk arrives. After it, an error
        is raised as is: two models' output is never spliced into one answer. The last chunk
        has ``done=True`` and ``response`` (with usage and cost).
        """
        req = self._prepare(prompt, system, messages, model, max_tokens, temperature, cache_system,
                            session_id, job_id, attempt, tenant, deadline)
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
        """Async twin of :meth:`send_request`."""
        req = self._prepare(prompt, system, messages, model, max_tokens, temperature, cache_system,
                            session_id, job_id, attempt, tenant, deadline, check_models=False)
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
        """Async twin of :meth:`send_streaming_request`."""
        req = self._prepare(prompt, system, messages, model, max_tokens, temperature, cache_system,
                            session_id, job_id, attempt, tenant, deadline, check_models=False)
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
        """This orchestrator's provider calls so far, in this process (no Redis needed).

        Returns:
            Totals, averages, p50/p95/p99 latency, cost, prompt-cache hit rate and errors by
            type; ``to_dict()`` gives plain JSON types.
        """
        return self._call.obs.usage.snapshot()

    def close(self) -> None:
        """Close HTTP connections."""
        self.adapter.close()

    # -- helpers ------------------------------------------------------------------------

    def _prepare(self, prompt: str | None, system: str | None, messages: list[Message] | None,
                 model: str | None, max_tokens: int, temperature: float | None, cache_system: bool,
                 session_id: str | None, job_id: str | None, attempt: int, tenant: str | None,
                 deadline: float | None, check_models: bool = True) -> Request:
        msgs = check_request(self.provider, prompt=prompt, system=system, messages=messages, model=model,
                             max_tokens=max_tokens, temperature=temperature,
                             ids={"session_id": session_id, "job_id": job_id, "tenant": tenant})
        chain = self.config.model_chain(model)
        if check_models:
            self._check_models(chain)
        return Request(
            messages=msgs,
            options=RequestOptions(max_tokens=max_tokens, temperature=temperature, cache_system=cache_system),
            chain=chain,
            deadline=Deadline(deadline or self.config.retry.deadline),
            prompt_hash=_hash(msgs),
            session_id=session_id, job_id=job_id, attempt=attempt, tenant=tenant,
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
        log.warning("%s/%s failed (%s: %s); trying next model", self.provider, model, type(err).__name__, err,
                    extra={"provider": self.provider, "model": model, "prompt_hash": req.prompt_hash,
                           "error_type": type(err).__name__})
        self._call.obs.fallback(self.provider, model, err, req)

    def _finish(self, response: LLMResponse, attempts: list[Attempt], req: Request) -> LLMResponse:
        """The request succeeded (its call was settled and billed by the gate): request-level alerts."""
        self._parts.alerts.request_finished(response, req)
        return response

    def _bill(self, response: LLMResponse, req: Request) -> LLMResponse:
        """The ledger row for the call (once per job and attempt; see ``ledger``)."""
        if self.cost_tracker is not None and self.config.cost_tracking.enabled:
            record = self.cost_tracker.log_usage(response, session_id=req.session_id, job_id=req.job_id,
                                                 attempt=req.attempt, tenant=req.tenant,
                                                 request_id=response.request_id)
            response.cost_usd = record.cost_usd
        return response


def _hash(msgs: list[Message]) -> str:
    """A short, stable hash of the prompt for logs (the text itself is never logged at INFO)."""
    h = hashlib.sha256()
    for m in msgs:
        h.update(m.role.encode() + b"\0" + m.content.encode() + b"\0")
    return h.hexdigest()[:12]
