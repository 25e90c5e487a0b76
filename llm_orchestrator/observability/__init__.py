"""Observability: one cheap hook at the end of each provider call, fallback, breaker change and
limiter wait, feeding three sinks.

* :mod:`.calllog` — one JSON line per provider call on the ``llm_orchestrator.calls`` logger
  (redacted; hashes and counts, never prompt text or keys).
* :mod:`.metrics` — Prometheus counters and histograms, when ``prometheus_client`` is
  installed (imported on the first event, never at import; multiprocess-safe through
  ``PROMETHEUS_MULTIPROC_DIR``).
* :mod:`.stats` — a bounded Redis stream read by ``llm-orch stats``.

Applications can add their own sink with :func:`add_listener`.
"""

from llm_orchestrator.observability.events import (
    BreakerEvent,
    CallEvent,
    Event,
    FallbackEvent,
    LimiterWaitEvent,
    add_listener,
    remove_listener,
)
from llm_orchestrator.observability.observer import Observer

__all__ = [
    "BreakerEvent",
    "CallEvent",
    "Event",
    "FallbackEvent",
    "LimiterWaitEvent",
    "Observer",
    "add_listener",
    "remove_listener",
]
