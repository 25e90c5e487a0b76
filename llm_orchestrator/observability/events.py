"""The events the call path reports, and the listeners an application may add."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

OK, ERROR = "ok", "error"
# Breaker states as numbers for the ``llm_orch_breaker_state`` gauge.
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class CallEvent:
    """One provider call ended (one HTTP request to the provider, success or error).

    ``attempt`` is the job's attempt (Celery retries); ``try_number`` counts the tries of this
    request across all models (1-based); ``retries`` is how many earlier tries of the same model
    this request made. ``cost_micros`` is None when unknown (error, unpriced, tracking off).
    """

    provider: str
    model: str
    outcome: str  # OK or ERROR
    latency_ms: float
    prompt_hash: str
    attempt: int
    try_number: int
    retries: int
    error_type: str | None = None
    status: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micros: int | None = None
    job_id: str | None = None
    request_id: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class FallbackEvent:
    """The request leaves ``from_model`` for ``to_model`` after ``reason`` (an error type)."""

    provider: str
    from_model: str
    to_model: str
    reason: str
    prompt_hash: str


@dataclass(frozen=True)
class BreakerEvent:
    """A breaker is in ``state``; ``previous`` is set when this report changed it."""

    provider: str
    model: str
    state: str
    previous: str | None = None

    @property
    def transition(self) -> bool:
        return self.previous is not None and self.previous != self.state


@dataclass(frozen=True)
class LimiterWaitEvent:
    """The rate limiter made a call wait ``seconds`` for room in ``scope``."""

    provider: str
    model: str
    scope: str
    seconds: float


Event = CallEvent | FallbackEvent | BreakerEvent | LimiterWaitEvent

_lock = threading.Lock()
_listeners: tuple[Callable[[Event], None], ...] = ()


def add_listener(listener: Callable[[Event], None]) -> None:
    """Call ``listener(event)`` for every event of this process (keep it fast; it runs inline).

    Args:
        listener: A callable taking one event.
    """
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)


def remove_listener(listener: Callable[[Event], None]) -> None:
    """Stop calling ``listener`` (no error when it was not added)."""
    global _listeners
    with _lock:
        _listeners = tuple(x for x in _listeners if x is not listener)


def listeners() -> tuple[Callable[[Event], None], ...]:
    return _listeners
