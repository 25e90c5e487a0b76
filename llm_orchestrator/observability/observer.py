"""``Observer``: the one object the call path talks to. It turns what it is told into events and
hands each to the call log, the Prometheus metrics, the Redis stats stream and any listeners.

Every method is cheap: a few attribute reads, a log call only when the call logger is enabled,
metric increments, and (with Redis) one pipelined XADD for calls, fallbacks and breaker
transitions. Nothing here raises into the call path because Redis is away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llm_orchestrator.observability import calllog, metrics
from llm_orchestrator.observability.events import (
    ERROR,
    OK,
    BreakerEvent,
    CallEvent,
    Event,
    FallbackEvent,
    LimiterWaitEvent,
    listeners,
)
from llm_orchestrator.observability.stats import StatsStream
from llm_orchestrator.observability.usage import UsageCounter

if TYPE_CHECKING:
    from llm_orchestrator.call import Request
    from llm_orchestrator.exceptions import ProviderError
    from llm_orchestrator.providers.base import Attempt, LLMResponse
    from llm_orchestrator.resilience.breaker_types import Permit


class Observer:
    """Reports events of one orchestrator (or one breaker/limiter set).

    Args:
        redis: the client of the shared state, or None (no stats stream then).
        key_prefix: Redis key prefix (``redis.key_prefix``).
    """

    def __init__(self, redis: Any = None, key_prefix: str = "llmorch:", calls_to_stream: bool = True) -> None:
        self.stream = StatsStream(redis, key_prefix) if redis is not None else None
        self.calls_to_stream = calls_to_stream  # False: the call's gate writes its stream entry itself
        self.usage = UsageCounter()  # this orchestrator's in-process totals (get_metrics)

    # -- provider calls ---------------------------------------------------------------------

    def call_succeeded(self, response: LLMResponse, req: Request, attempts: Sequence[Attempt]) -> None:
        """The request's last try answered (``attempts`` ends with it); ``response.cost_usd`` is set."""
        from llm_orchestrator.pricing import to_micros

        last = attempts[-1] if attempts else None
        model = last.model if last else response.model
        self._call(
            CallEvent(
                provider=response.provider,
                model=model,
                outcome=OK,
                latency_ms=last.latency_ms if last else response.latency_ms,
                prompt_hash=req.prompt_hash,
                attempt=req.attempt,
                try_number=len(attempts),
                retries=_earlier_tries(model, attempts),
                status=200,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
                cached_tokens=response.cached_tokens,
                cache_write_tokens=response.cache_write_tokens,
                cost_micros=None if response.cost_usd is None else to_micros(response.cost_usd),
                job_id=req.job_id,
                request_id=response.request_id,
                tenant=req.tenant,
            )
        )

    def call_failed(
        self,
        provider: str,
        model: str,
        err: ProviderError,
        latency_ms: float,
        req: Request,
        attempts: Sequence[Attempt],
    ) -> None:
        """A provider call raised ``err`` (``attempts`` ends with its record)."""
        self._call(
            CallEvent(
                provider=provider,
                model=model,
                outcome=ERROR,
                latency_ms=round(latency_ms, 2),
                prompt_hash=req.prompt_hash,
                attempt=req.attempt,
                try_number=len(attempts),
                retries=_earlier_tries(model, attempts),
                error_type=type(err).__name__,
                status=err.status,
                job_id=req.job_id,
                request_id=getattr(err, "request_id", None),
                tenant=req.tenant,
            )
        )

    def _call(self, event: CallEvent) -> None:
        calllog.write(event)
        metrics.on_call(event)
        self.usage.add(event)
        if self.stream is not None and self.calls_to_stream:
            self.stream.add_call(event)
        _notify(event)

    # -- fallbacks --------------------------------------------------------------------------

    def fallback(self, provider: str, model: str, err: Exception, req: Request) -> None:
        """``model`` failed with a fall-through error; recorded only if a next model exists."""
        chain = req.chain
        at = chain.index(model) if model in chain else len(chain)
        if at + 1 >= len(chain):
            return  # the last model: the request fails, nothing falls back
        event = FallbackEvent(provider, model, chain[at + 1], type(err).__name__, req.prompt_hash)
        metrics.on_fallback(event)
        if self.stream is not None:
            self.stream.add_fallback(event)
        _notify(event)

    # -- breakers ---------------------------------------------------------------------------

    def breaker_permit(self, permit: Permit) -> None:
        """``before_call`` granted ``permit``: a probe lease means the breaker is half-open.

        A refusal is not reported: it can mean open, or half-open with every probe slot taken.
        """
        if permit.lease is not None:
            self._breaker(BreakerEvent(permit.provider, permit.model, "half_open"))

    def breaker_reported(self, permit: Permit, state: str) -> None:
        """``record`` returned ``state`` for a call made with ``permit``.

        Both breaker backends return the state after the report; a permit of an older
        generation gets "stale". "open" comes back only to the report that opened it (later
        reports are stale), so it is a transition: from half-open for a probe (it held a lease),
        else from closed. "closed" after a probe is the half-open breaker closing.
        """
        if state == "open":
            previous: str | None = "half_open" if permit.lease else "closed"
        elif state == "closed" and permit.lease:
            previous = "half_open"
        elif state in ("closed", "half_open"):
            previous = None
        else:
            return  # stale: says nothing about the current state
        event = BreakerEvent(permit.provider, permit.model, state, previous)
        self._breaker(event)

    def _breaker(self, event: BreakerEvent) -> None:
        metrics.on_breaker(event)
        if event.transition:
            if self.stream is not None:
                self.stream.add_breaker(event)
            _notify(event)

    # -- rate limiter -----------------------------------------------------------------------

    def limiter_waited(self, provider: str, model: str, scope: str, seconds: float) -> None:
        """The limiter is about to sleep ``seconds`` for room in ``scope``."""
        event = LimiterWaitEvent(provider, model, scope, seconds)
        metrics.on_limiter_wait(event)
        _notify(event)


def _earlier_tries(model: str, attempts: Sequence[Attempt]) -> int:
    return sum(1 for a in attempts[:-1] if a.model == model)


def _notify(event: Event) -> None:
    for listener in listeners():
        listener(event)
