"""``Breakers``: the orchestrator's view of the circuit breakers.

Uses Redis when a client is configured (shared by all processes) and falls back to this
process's memory while Redis is unreachable, logging that at most once per interval, so
requests keep flowing through a Redis outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from llm_orchestrator.exceptions import CircuitOpenError
from llm_orchestrator.observability.observer import Observer
from llm_orchestrator.resilience.breaker_memory import MemoryBreaker
from llm_orchestrator.resilience.breaker_redis import RedisBreaker
from llm_orchestrator.resilience.breaker_types import BreakerSettings, Permit
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors

log = logging.getLogger(__name__)
SUCCESS, FAILURE, NEUTRAL = 1, 0, -1


class Breakers:
    """Circuit breakers per (provider, model).

    Args:
        config: the ``breaker`` config block (or BreakerSettings).
        redis: a client, or None for memory only.
        key_prefix: Redis key prefix.
        on_open: called with (provider, model) once each time a breaker opens.
    """

    def __init__(
        self,
        config: Any,
        redis: Any = None,
        key_prefix: str = "llmorch:",
        on_open: Callable[[str, str], None] | None = None,
    ) -> None:
        settings = config if isinstance(config, BreakerSettings) else BreakerSettings.from_config(config)
        self.enabled: bool = getattr(config, "enabled", True)
        self.memory = MemoryBreaker(settings)
        self.redis = RedisBreaker(settings, redis, key_prefix) if redis is not None else None
        self._errors = redis_errors() if redis is not None else ()
        self._degraded = DegradedLog(log, "circuit breaker").warn
        self.on_open = on_open  # told (provider, model) when a breaker opens: the alerts hook
        self._obs = Observer(redis, key_prefix)

    def before_call(self, provider: str, model: str) -> Permit:
        """A permit to call (model, provider).

        Raises:
            CircuitOpenError: the breaker is open, or half-open with all probe slots taken.
        """
        if not self.enabled:
            return Permit(provider, model, 0)
        return self.granted(self._with_fallback(lambda b: b.acquire(provider, model)))

    def granted(self, permit: Permit) -> Permit:
        """What follows an acquire (here or in the gate's script): observe it; raise if refused.

        Raises:
            CircuitOpenError: the permit was refused.
        """
        self._obs.breaker_permit(permit)
        if not permit.allowed:
            raise CircuitOpenError(permit.provider, permit.model, permit.retry_after)
        return permit

    def record(self, permit: Permit, *, success: bool) -> None:
        """Report the outcome of a call made with ``permit``."""
        self._report(permit, SUCCESS if success else FAILURE)

    def release(self, permit: Permit) -> None:
        """Neither success nor failure (e.g. a 400): frees a half-open probe lease."""
        self._report(permit, NEUTRAL)

    def state(self, provider: str, model: str) -> dict[str, object]:
        return self._with_fallback(lambda b: b.snapshot(provider, model))

    def _report(self, permit: Permit, outcome: int) -> None:
        if not self.enabled:
            return
        if permit.backend == "redis" and self.redis is not None:
            try:
                state = self.redis.record(permit, outcome)
            except self._errors as e:
                self._degraded(e)
                return
        else:
            state = self.memory.record(permit, outcome)
        self.reported(permit, state)

    def reported(self, permit: Permit, state: str) -> None:
        """What follows a record (here or in the gate's script): observe the state it left."""
        self._obs.breaker_reported(permit, state)
        if state == "open" and self.on_open is not None:  # only the report that opened it gets "open"
            self.on_open(permit.provider, permit.model)

    def _with_fallback(self, op: Any) -> Any:
        if self.redis is not None:
            try:
                return op(self.redis)
            except self._errors as e:
                self._degraded(e)
        return op(self.memory)
