"""The gate of one provider call: admission before it, settlement after it, one round trip each.

    admission = gate.admit(model, req, max_wait)      # breaker permit + tenant hold + limiter slot (+ ledger mark)
    response = adapter.generate(...)
    gate.settle_success(admission, response, ...)     # breaker + limiter + budget + ledger row + stats entry
    # or gate.settle_failure(admission, err, ...)     # breaker + limiter (AIMD on a 429) + budget release + stats

With Redis each of the two is one script (:mod:`resilience.gate_scripts`, composed from the
components' own scripts, so the semantics are theirs); the async twins send the same scripts
through ``redis.asyncio`` (one client per event loop) and never block the loop. Without Redis, or
while it is unreachable, each component runs on this process's memory as before (the ledger row
goes to the spool), and the gate does not try Redis again for ``SKIP_SECONDS`` after a failure.
What a script decided is then handed to the components' hooks (observer, metrics, alerts), in
this process.

On a Redis Cluster one script cannot touch keys of different hash slots (a breaker, a tenant, a
provider's limits and the ledger each have their own), so there the gate runs each component's
own script in turn — the same order and semantics, more round trips (the async twins run them in
a worker thread, off the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from llm_orchestrator.cost_tracker import CostRecord
from llm_orchestrator.exceptions import (
    BudgetExceededError,
    LocalRateLimitError,
    ProviderError,
    RateLimitError,
    counts_against_breaker,
    on_error,
)
from llm_orchestrator.providers._common import PerLoop
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.redis_client import is_cluster
from llm_orchestrator.resilience.breaker_redis import permit as permit_from_reply
from llm_orchestrator.resilience.breaker_types import Permit
from llm_orchestrator.resilience.budgets import Hold
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.gate_scripts import ADMIT, SETTLE, layout
from llm_orchestrator.resilience.ratelimit import RETRY_SLACK_SECONDS, Reservation

SKIP_SECONDS = 1.0  # after a Redis error the gate uses memory this long before trying Redis again
SUCCESS, FAILURE, NEUTRAL = 1, 0, -1
NO_PARTS: tuple[list[str], list[Any]] = ([], [])


@dataclass(frozen=True)
class Admission:
    """What admission took for one call; settlement gives back what was not used."""

    permit: Permit
    reservation: Reservation
    hold: Hold | None


@dataclass(frozen=True)
class Refusal:
    """Admission said no for now: wait ``seconds`` and try again, or raise ``error``."""

    seconds: float
    error: Exception
    provider: str
    model: str
    scope: str


@dataclass(frozen=True)
class Settled:
    """What settlement stored: the ledger record (None when cost tracking is off) and the
    session's total in micro-dollars after it (None when unknown)."""

    record: CostRecord | None
    session_micros: int | None


class Gate:
    """Admission and settlement for one orchestrator's provider (see module docstring)."""

    def __init__(self, provider: str, parts: Any, stream: Any, track_costs: bool) -> None:
        self.provider = provider
        self.breakers = parts.breakers
        self.limiter = parts.limiter
        self.budgets = parts.budgets
        self.tracker = parts.cost_tracker if track_costs else None
        self.stream = stream  # StatsStream or None
        self.redis = parts.redis
        self._admit: Any = self.redis.register_script(ADMIT) if self.redis is not None else None
        self._settle: Any = self.redis.register_script(SETTLE) if self.redis is not None else None
        self._aio: PerLoop[tuple[Any, Any, Any]] | None = (
            PerLoop(self._async_client) if self.redis is not None else None
        )
        self._errors = redis_errors() if self.redis is not None else ()
        self._degraded = DegradedLog(logging.getLogger(__name__), "call gate").warn
        self._skip_until = 0.0
        self.cluster = is_cluster(self.redis)  # one component script at a time (see module docstring)

    # -- admission ------------------------------------------------------------------------------

    def admit(self, model: str, req: Any, max_wait: float) -> Admission:
        """Take a breaker permit, the tenant's hold and a limiter slot; wait up to ``max_wait`` for room.

        Raises:
            CircuitOpenError, BudgetExceededError: at once (no call is made).
            TenantRateLimitError, LocalRateLimitError: no room within ``max_wait``.
        """
        if self.cluster:
            return self._admit_by_component(model, req, max_wait)
        deadline = time.monotonic() + max_wait
        while True:
            plan = self._plan(model, req)
            outcome = self._admit_once(plan)
            if isinstance(outcome, Admission):
                return outcome
            self._wait_or_raise(outcome, deadline)
            time.sleep(outcome.seconds + RETRY_SLACK_SECONDS)

    async def aadmit(self, model: str, req: Any, max_wait: float) -> Admission:
        """Async twin of :meth:`admit`."""
        if self.cluster:
            return await asyncio.to_thread(self._admit_by_component, model, req, max_wait)
        deadline = time.monotonic() + max_wait
        while True:
            plan = self._plan(model, req)
            outcome = await self._aadmit_once(plan)
            if isinstance(outcome, Admission):
                return outcome
            self._wait_or_raise(outcome, deadline)
            await asyncio.sleep(outcome.seconds + RETRY_SLACK_SECONDS)

    def _admit_by_component(self, model: str, req: Any, max_wait: float) -> Admission:
        """Admission one component at a time (Redis Cluster): breaker, budget, limiter, ledger mark."""
        provider, est = self.provider, req.estimated_tokens()
        permit = self.breakers.before_call(provider, model)
        try:
            hold = self.budgets.reserve(req.tenant, provider, model, est, req.options.max_tokens, max_wait)
        except (BudgetExceededError, LocalRateLimitError):
            self.breakers.release(permit)
            raise
        try:
            reservation = self.limiter.acquire(provider, model, est, max_wait)
        except LocalRateLimitError:
            self.budgets.release(hold, called=False)
            self.breakers.release(permit)
            raise
        if self.tracker is not None and req.job_id:
            self.tracker.begin(req.job_id, req.attempt)
        return Admission(permit, reservation, hold)

    def _settle_success_by_component(
        self, a: Admission, response: LLMResponse, req: Any, stats: dict[str, Any]
    ) -> Settled:
        self.breakers.record(a.permit, success=True)
        self.limiter.reconcile(a.reservation, response.total_tokens)
        self.budgets.settle(a.hold, response)
        record = None
        if self.tracker is not None:
            record = self.tracker.log_usage(
                response,
                session_id=req.session_id,
                job_id=req.job_id,
                attempt=req.attempt,
                tenant=req.tenant,
                request_id=response.request_id,
            )
            response.cost_usd = record.cost_usd
        if self.stream is not None:
            self.stream.add_later(stats)
        return Settled(record, None)

    def _settle_failure_by_component(self, a: Admission, err: ProviderError, stats: dict[str, Any]) -> None:
        if counts_against_breaker(err):
            self.breakers.record(a.permit, success=False)
        else:
            self.breakers.release(a.permit)
        self.limiter.reconcile(a.reservation, 0)
        self.budgets.release(a.hold)
        if isinstance(err, RateLimitError) and on_error(err).retry_same_model:
            self.limiter.on_rate_limited(self.provider, a.permit.model, err.retry_after)
        if self.stream is not None:
            self.stream.add_later(stats)

    def _wait_or_raise(self, refusal: Refusal, deadline: float) -> None:
        if time.monotonic() + refusal.seconds > deadline:
            raise refusal.error
        self.limiter.waited(refusal.provider, refusal.model, refusal.scope, refusal.seconds)

    def _plan(self, model: str, req: Any) -> _Plan:
        est = req.estimated_tokens()
        hold = self.budgets.new_hold(req.tenant, self.provider, model, est, req.options.max_tokens)
        scopes = self.limiter.scopes(self.provider, model)
        return _Plan(self.provider, model, req, hold, scopes, uuid.uuid4().hex[:16], est)

    def _admit_once(self, plan: _Plan) -> Admission | Refusal:
        if not self._shared_admission(plan):
            return self._admit_in_memory(plan)
        if self._use_redis():
            try:
                return self._decide(plan, self._admit(*self._admit_layout(plan)))
            except self._errors as e:
                self._went_away(e)
        return self._admit_in_memory(plan)

    async def _aadmit_once(self, plan: _Plan) -> Admission | Refusal:
        if not self._shared_admission(plan):
            return self._admit_in_memory(plan)
        if self._use_redis():
            try:
                _, admit, _ = self._aio.get()  # type: ignore[union-attr]
                keys, args = self._admit_layout(plan)
                return self._decide(plan, await admit(keys=keys, args=args))
            except self._errors as e:
                self._went_away(e)
        return self._admit_in_memory(plan)

    def _shared_admission(self, plan: _Plan) -> bool:
        """Whether admission has anything to do in Redis (else no round trip at all)."""
        return self.redis is not None and bool(
            (self.breakers.enabled and self.breakers.redis is not None)
            or plan.scopes
            or (plan.hold is not None and self.budgets.shared)
            or (self.tracker is not None and self.tracker.spool is not None and bool(plan.req.job_id))
        )

    def _admit_layout(self, plan: _Plan) -> tuple[list[str], list[Any]]:
        breaker = self.breakers.redis
        use_breaker = self.breakers.enabled and breaker is not None
        budget = plan.hold is not None and self.budgets.shared
        tracker = self.tracker
        return layout(
            [
                breaker.acquire_parts(self.provider, plan.model) if use_breaker else NO_PARTS,
                self.budgets.reserve_parts(plan.hold) if budget else NO_PARTS,
                self.limiter.acquire_parts(plan.rid, plan.scopes, plan.est) if plan.scopes else NO_PARTS,
                tracker.ledger.begin_parts(plan.req.job_id, plan.req.attempt)
                if tracker is not None and tracker.spool is not None and plan.req.job_id
                else NO_PARTS,
                ([], breaker.record_constants()) if use_breaker else NO_PARTS,
                ([], self.budgets.release_args(plan.hold)) if budget else NO_PARTS,
            ]
        )

    def _decide(self, plan: _Plan, reply: list[Any]) -> Admission | Refusal:
        kind = _text(reply[0])
        provider, model = self.provider, plan.model
        if kind == "B":
            self.breakers.granted(
                Permit(provider, model, 0, allowed=False, retry_after=int(reply[1]) / 1000, backend="redis")
            )  # raises CircuitOpenError
        if kind == "G":
            hold, wait = self.budgets.decide(
                int(reply[1]), int(reply[2]) / 1000, int(reply[3]), int(reply[4]), _redis_hold(plan.hold)
            )  # raises BudgetExceededError over a day limit
            return Refusal(wait, _tenant_refusal(plan, wait), provider, model, f"tenant:{plan.hold.tenant}")  # type: ignore[union-attr]
        if kind == "L":
            wait, scope = int(reply[1]) / 1000, plan.scopes[int(reply[2]) - 1].scope
            return Refusal(wait, _limit_refusal(scope, wait), provider, model, scope)
        if self.breakers.enabled and self.breakers.redis is not None:
            permit = self.breakers.granted(permit_from_reply(provider, model, 1, reply[1], reply[2], 0))
        else:
            permit = Permit(provider, model, 0)
        hold = _redis_hold(plan.hold) if plan.hold is not None and self.budgets.shared else plan.hold
        backend = "redis" if plan.scopes else "none"
        return Admission(permit, Reservation(plan.rid, plan.scopes, plan.est, backend), hold)

    def _admit_in_memory(self, plan: _Plan) -> Admission | Refusal:
        """Each component on this process's memory (no Redis, or Redis away)."""
        if self.tracker is not None and plan.req.job_id and self.tracker.spool is None:
            self.tracker.begin(plan.req.job_id, plan.req.attempt)
        permit = (
            self.breakers.memory.acquire(self.provider, plan.model)
            if self.breakers.enabled
            else Permit(self.provider, plan.model, 0)
        )
        self.breakers.granted(permit)
        hold = plan.hold
        if plan.hold is not None:
            hold, wait = self.budgets.reserve_in_memory(plan.hold)
            if hold is None:
                self._give_back_permit(permit)
                return Refusal(
                    wait, _tenant_refusal(plan, wait), self.provider, plan.model, f"tenant:{plan.hold.tenant}"
                )
        if plan.scopes:
            reservation, wait, scope = self.limiter.reserve_in_memory(plan.rid, plan.scopes, plan.est)
            if reservation is None:
                if hold is not None:
                    self.budgets.finish_in_memory(hold, 0, 0, drop_request=True)
                self._give_back_permit(permit)
                return Refusal(wait, _limit_refusal(scope, wait), self.provider, plan.model, scope)
        else:
            reservation = Reservation(plan.rid, (), plan.est, "none")
        return Admission(permit, reservation, hold)

    def _give_back_permit(self, permit: Permit) -> None:
        if self.breakers.enabled:
            self.breakers.reported(permit, self.breakers.memory.record(permit, NEUTRAL))

    # -- settlement -----------------------------------------------------------------------------

    def settle_success(self, admission: Admission, response: LLMResponse, req: Any, stats: dict[str, Any]) -> Settled:
        """The call answered: breaker success, real tokens, the budget's real spend, the ledger row
        (sets ``response.cost_usd``) and the stats entry — one round trip with Redis."""
        if self.cluster:
            return self._settle_success_by_component(admission, response, req, stats)
        record = self._record(response, req)
        spend = self.budgets.spend(admission.hold, response) if admission.hold is not None else (0, 0)
        if self._nothing_shared(admission, record is not None and self._ledger_in_redis()):
            return self._without_redis(admission, response, record, spend, stats)
        if self._use_redis():
            try:
                keys, args = self._success_layout(admission, response, record, spend, stats)
                return self._after_success(admission, response, record, spend, self._settle(keys=keys, args=args))
            except self._errors as e:
                self._went_away(e)
        return self._success_in_memory(admission, response, record, spend)

    async def asettle_success(
        self, admission: Admission, response: LLMResponse, req: Any, stats: dict[str, Any]
    ) -> Settled:
        """Async twin of :meth:`settle_success`."""
        if self.cluster:
            return await asyncio.to_thread(self._settle_success_by_component, admission, response, req, stats)
        record = self._record(response, req)
        spend = self.budgets.spend(admission.hold, response) if admission.hold is not None else (0, 0)
        if self._nothing_shared(admission, record is not None and self._ledger_in_redis()):
            return self._without_redis(admission, response, record, spend, stats)
        if self._use_redis():
            try:
                _, _, settle = self._aio.get()  # type: ignore[union-attr]
                keys, args = self._success_layout(admission, response, record, spend, stats)
                reply = await settle(keys=keys, args=args)
                return self._after_success(admission, response, record, spend, reply)
            except self._errors as e:
                self._went_away(e)
        return self._success_in_memory(admission, response, record, spend)

    def settle_failure(self, admission: Admission, err: ProviderError, stats: dict[str, Any]) -> None:
        """The call failed: breaker failure (5xx, timeout) or neutral, slot and hold given back,
        the limiter shrunk after a provider 429, the stats entry — one round trip with Redis."""
        if self.cluster:
            self._settle_failure_by_component(admission, err, stats)
            return
        if self._nothing_shared(admission, False) and not self._shrinks(err, admission):
            if self.stream is not None:
                self.stream.add_later(stats)
            self._failure_in_memory(admission, err)
            return
        if self._use_redis():
            try:
                self._after_failure(admission, self._settle(*self._failure_layout(admission, err, stats)))
                return
            except self._errors as e:
                self._went_away(e)
        self._failure_in_memory(admission, err)

    async def asettle_failure(self, admission: Admission, err: ProviderError, stats: dict[str, Any]) -> None:
        """Async twin of :meth:`settle_failure`."""
        if self.cluster:
            await asyncio.to_thread(self._settle_failure_by_component, admission, err, stats)
            return
        if self._nothing_shared(admission, False) and not self._shrinks(err, admission):
            if self.stream is not None:
                self.stream.add_later(stats)
            self._failure_in_memory(admission, err)
            return
        if self._use_redis():
            try:
                _, _, settle = self._aio.get()  # type: ignore[union-attr]
                keys, args = self._failure_layout(admission, err, stats)
                self._after_failure(admission, await settle(keys=keys, args=args))
                return
            except self._errors as e:
                self._went_away(e)
        self._failure_in_memory(admission, err)

    def _ledger_in_redis(self) -> bool:
        return self.tracker is not None and self.tracker.spool is not None

    def _without_redis(
        self,
        a: Admission,
        response: LLMResponse,
        record: CostRecord | None,
        spend: tuple[int, int],
        stats: dict[str, Any],
    ) -> Settled:
        """Nothing of this call lives in Redis: settle in memory; the stats entry is written in the background."""
        if self.stream is not None:
            self.stream.add_later(stats)
        return self._success_in_memory(a, response, record, spend)

    def _record(self, response: LLMResponse, req: Any) -> CostRecord | None:
        if self.tracker is None:
            return None
        return self.tracker.record_for(
            response,
            session_id=req.session_id,
            job_id=req.job_id,
            attempt=req.attempt,
            tenant=req.tenant,
            request_id=response.request_id,
        )

    def _success_layout(
        self,
        a: Admission,
        response: LLMResponse,
        record: CostRecord | None,
        spend: tuple[int, int],
        stats: dict[str, Any],
    ) -> tuple[list[str], list[Any]]:
        ledger = self.tracker.ledger if self.tracker is not None and self.tracker.spool is not None else None
        return layout(
            [
                self._breaker_parts(a.permit, SUCCESS),
                self._reconcile_parts(a.reservation, response.total_tokens),
                NO_PARTS,
                self.budgets.settle_parts(a.hold, *spend, drop_request=False) if _shared(a.hold) else NO_PARTS,
                ledger.commit_parts(record.to_row(), record.cost_micros)
                if ledger is not None and record is not None
                else NO_PARTS,
                self._stats_parts(stats),
            ]
        )

    def _shrinks(self, err: ProviderError, a: Admission) -> bool:
        """A provider 429 on a model with a shared limit: the AIMD shrink is a Redis write."""
        return (
            isinstance(err, RateLimitError)
            and on_error(err).retry_same_model
            and self.redis is not None
            and bool(self.limiter.scopes(self.provider, a.permit.model))
        )

    def _failure_layout(self, a: Admission, err: ProviderError, stats: dict[str, Any]) -> tuple[list[str], list[Any]]:
        outcome = FAILURE if counts_against_breaker(err) else NEUTRAL
        shrink = isinstance(err, RateLimitError) and on_error(err).retry_same_model
        parts = self.limiter.shrink_parts(self.provider, a.permit.model) if shrink else None
        return layout(
            [
                self._breaker_parts(a.permit, outcome),
                self._reconcile_parts(a.reservation, 0),
                parts or NO_PARTS,
                self.budgets.settle_parts(a.hold, 0, 0, drop_request=False) if _shared(a.hold) else NO_PARTS,
                NO_PARTS,
                self._stats_parts(stats),
            ]
        )

    def _breaker_parts(self, permit: Permit, outcome: int) -> tuple[list[str], list[Any]]:
        if not self.breakers.enabled or permit.backend != "redis" or self.breakers.redis is None:
            return NO_PARTS
        return self.breakers.redis.record_parts(permit, outcome)

    def _reconcile_parts(self, reservation: Reservation, tokens: int) -> tuple[list[str], list[Any]]:
        if reservation.backend != "redis":
            return NO_PARTS
        return self.limiter.reconcile_parts(reservation, tokens) or NO_PARTS

    def _stats_parts(self, stats: dict[str, Any]) -> tuple[list[str], list[Any]]:
        return (self.stream.parts(stats) if self.stream is not None else None) or NO_PARTS

    def _nothing_shared(self, a: Admission, ledger: bool) -> bool:
        """Settlement has nothing to do in Redis but the stats entry (it then goes the stream's own way)."""
        breaker = self.breakers.enabled and a.permit.backend == "redis" and self.breakers.redis is not None
        return not (breaker or a.reservation.backend == "redis" or _shared(a.hold) or ledger)

    def _after_success(
        self, a: Admission, response: LLMResponse, record: CostRecord | None, spend: tuple[int, int], reply: list[Any]
    ) -> Settled:
        state, tokens, micros, new, row_id, session = reply
        self._reported(a.permit, state)
        self._memory_reconcile(a.reservation, response.total_tokens)
        if a.hold is not None:
            if _shared(a.hold):
                self.budgets.settled(a.hold, int(tokens), int(micros))
            else:
                self.budgets.settle_in_memory(a.hold, *spend)
        return self._billed(response, record, bool(int(new)), _text(row_id), int(session))

    def _after_failure(self, a: Admission, reply: list[Any]) -> None:
        self._reported(a.permit, reply[0])
        self._memory_reconcile(a.reservation, 0)
        if a.hold is not None and not _shared(a.hold):
            self.budgets.finish_in_memory(a.hold, 0, 0, drop_request=False)

    def _success_in_memory(
        self, a: Admission, response: LLMResponse, record: CostRecord | None, spend: tuple[int, int]
    ) -> Settled:
        self._report_in_memory(a.permit, SUCCESS)
        self._memory_reconcile(a.reservation, response.total_tokens, also_redis=True)
        if a.hold is not None:
            self.budgets.settle_in_memory(a.hold, *spend)  # a Redis hold expires by itself
        if record is None or self.tracker is None:
            return Settled(None, None)
        row = record.to_row()
        new, row_id = (
            self.tracker.commit_fallback(row, record.cost_micros)
            if self.tracker.spool is not None
            else self.tracker.ledger.commit(row, record.cost_micros)
        )
        session = (
            self.tracker.ledger.session_micros(record.session_id)
            if record.session_id and self.tracker.spool is None
            else None
        )
        return self._billed(response, record, new, row_id, session)

    def _failure_in_memory(self, a: Admission, err: ProviderError) -> None:
        self._report_in_memory(a.permit, FAILURE if counts_against_breaker(err) else NEUTRAL)
        self._memory_reconcile(a.reservation, 0, also_redis=True)
        if isinstance(err, RateLimitError) and on_error(err).retry_same_model:
            self.limiter.shrink_in_memory(self.provider, a.permit.model)
        if a.hold is not None:
            self.budgets.finish_in_memory(a.hold, 0, 0, drop_request=False)

    def _billed(
        self, response: LLMResponse, record: CostRecord | None, new: bool, row_id: str, session: int | None
    ) -> Settled:
        if record is None or self.tracker is None:
            return Settled(None, None)
        stored = self.tracker.committed(record, new, row_id)
        response.cost_usd = stored.cost_usd
        if self.tracker.spool is not None and self._use_redis():
            self.tracker.replay_if_due()
        return Settled(stored, session if session is not None and session >= 0 else None)

    def _reported(self, permit: Permit, state: Any) -> None:
        state = _text(state)
        if state and self.breakers.enabled:
            self.breakers.reported(permit, state)

    def _report_in_memory(self, permit: Permit, outcome: int) -> None:
        if self.breakers.enabled and permit.backend != "redis":
            self.breakers.reported(permit, self.breakers.memory.record(permit, outcome))

    def _memory_reconcile(self, reservation: Reservation, tokens: int, also_redis: bool = False) -> None:
        if reservation.backend == "memory" or (also_redis and reservation.backend == "redis"):
            self.limiter.reconcile_in_memory(reservation, tokens)

    # -- Redis availability -----------------------------------------------------------------------

    def _use_redis(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._skip_until

    def _went_away(self, e: BaseException) -> None:
        self._degraded(e)
        self._skip_until = time.monotonic() + SKIP_SECONDS
        if self.stream is not None:
            self.stream.pause()

    def _async_client(self) -> tuple[Any, Any, Any]:
        """A ``redis.asyncio`` client on the same server as the sync one, for this event loop."""
        client = _async_twin(self.redis)
        return client, client.register_script(ADMIT), client.register_script(SETTLE)


@dataclass(frozen=True)
class _Plan:
    provider: str
    model: str
    req: Any
    hold: Hold | None
    scopes: tuple[Any, ...]
    rid: str
    est: int


def _shared(hold: Hold | None) -> bool:
    return hold is not None and hold.backend == "redis"


def _redis_hold(hold: Hold | None) -> Hold:
    from dataclasses import replace

    return replace(cast(Hold, hold), backend="redis")  # called only when the plan holds budget


def _tenant_refusal(plan: _Plan, wait: float) -> Exception:
    from llm_orchestrator.exceptions import TenantRateLimitError

    return TenantRateLimitError(f"tenant:{plan.hold.tenant}", wait)  # type: ignore[union-attr]


def _limit_refusal(scope: str, wait: float) -> Exception:
    from llm_orchestrator.exceptions import LocalRateLimitError

    return LocalRateLimitError(scope, wait)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _async_twin(client: Any) -> Any:
    """A ``redis.asyncio.Redis`` with the sync client's connection settings."""
    import redis.asyncio as aredis

    kwargs = dict(client.connection_pool.connection_kwargs)
    if "path" in kwargs:
        return aredis.Redis(
            unix_socket_path=kwargs.pop("path"), **{k: v for k, v in kwargs.items() if k in _ASYNC_KWARGS}
        )
    return aredis.Redis(**{k: v for k, v in kwargs.items() if k in _ASYNC_KWARGS})


_ASYNC_KWARGS = (
    "host",
    "port",
    "db",
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "health_check_interval",
    "client_name",
    "ssl",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
)
