"""Prometheus metrics, created on the first event when ``prometheus_client`` is installed.

Without ``prometheus_client`` every function here is a no-op. The library never imports it at
import time and never opens a port: serving ``/metrics`` is the application's job (the worker
does it, see ``worker/metrics_server.py``). Under a pre-forking server set
``PROMETHEUS_MULTIPROC_DIR`` before the first import so each process writes its own files and the
exporter sums them; the breaker-state gauge then reports the most recent value of any process.

Metric names (all prefixed ``llm_orch_``): see :data:`METRIC_NAMES`.
"""

from __future__ import annotations

import calendar
import functools
import threading
import time
from collections.abc import Mapping
from typing import Any

from llm_orchestrator.observability.events import (
    BREAKER_STATE_VALUES,
    OK,
    BreakerEvent,
    CallEvent,
    FallbackEvent,
    LimiterWaitEvent,
)

# Provider calls take from ~50 ms (cache hit, small model) to minutes (long generations). 10 s is a
# bound so the p99 > 10 s alert (deploy/prometheus/alerts.yml) is exact, not interpolated across 8–15 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 15.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TOKEN_KINDS = ("prompt", "completion", "cached", "cache_write")
NO_TENANT = "none"  # label value for calls made without a tenant

METRIC_NAMES = (
    "llm_orch_requests_total",  # counter {provider, model, outcome}: provider calls
    "llm_orch_errors_total",  # counter {provider, model, error_type}
    "llm_orch_retries_total",  # counter {provider, model}: calls that repeated a failed try
    "llm_orch_fallbacks_total",  # counter {provider, from_model, to_model, reason}
    "llm_orch_breaker_state",  # gauge {provider, model}: 0 closed, 1 half-open, 2 open
    "llm_orch_breaker_transitions_total",  # counter {provider, model, from_state, to_state}
    "llm_orch_limiter_wait_seconds",  # histogram {provider, model}: local rate-limit waits
    "llm_orch_tokens_total",  # counter {provider, model, kind}: prompt/completion/cached/cache_write
    "llm_orch_cost_micro_usd_total",  # counter {provider, model, tenant}: priced cost in micro-dollars
    "llm_orch_request_latency_seconds",  # histogram {provider, model, outcome}
    "llm_orch_queue_depth",  # gauge {queue}: Celery queue lengths (worker exporter only)
    "llm_orch_tenant_budget_used_ratio",  # gauge {tenant, limit}: the UTC day's settled use / daily limit
    "llm_orch_tenant_budget_day_timestamp_seconds",  # gauge {tenant, limit}: start of the day that ratio is of
)

_lock = threading.Lock()
_state: dict[str, Any] = {}


class _Metrics:
    """The metric objects of this process (registered in prometheus_client's default registry)."""

    def __init__(self, prom: Any) -> None:
        c, h, g = prom.Counter, prom.Histogram, prom.Gauge
        self.requests = c(
            "llm_orch_requests", "Provider calls by outcome (ok/error).", ["provider", "model", "outcome"]
        )
        self.errors = c("llm_orch_errors", "Failed provider calls by error type.", ["provider", "model", "error_type"])
        self.retries = c(
            "llm_orch_retries", "Provider calls that repeated a failed try of the same model.", ["provider", "model"]
        )
        self.fallbacks = c(
            "llm_orch_fallbacks",
            "Requests moved to the next model of the chain.",
            ["provider", "from_model", "to_model", "reason"],
        )
        self.breaker_state = g(
            "llm_orch_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["provider", "model"],
            multiprocess_mode="mostrecent",
        )
        self.breaker_transitions = c(
            "llm_orch_breaker_transitions",
            "Circuit breaker state changes.",
            ["provider", "model", "from_state", "to_state"],
        )
        self.limiter_wait = h(
            "llm_orch_limiter_wait_seconds",
            "Time calls waited for the local rate limiter.",
            ["provider", "model"],
            buckets=WAIT_BUCKETS,
        )
        self.tokens = c(
            "llm_orch_tokens", "Tokens by kind (prompt includes cached and cache_write).", ["provider", "model", "kind"]
        )
        self.cost = c(
            "llm_orch_cost_micro_usd",
            "Priced cost of provider calls in micro-dollars (1e-6 USD).",
            ["provider", "model", "tenant"],
        )
        self.latency = h(
            "llm_orch_request_latency_seconds",
            "Provider call latency.",
            ["provider", "model", "outcome"],
            buckets=LATENCY_BUCKETS,
        )
        self.budget_ratio = g(
            "llm_orch_tenant_budget_used_ratio",
            "A tenant's settled use of its UTC day / its daily limit (fleet-wide, from Redis); "
            "at least 1 once a call was refused by that limit.",
            ["tenant", "limit"],
            multiprocess_mode="mostrecent",
        )
        self.budget_day = g(
            "llm_orch_tenant_budget_day_timestamp_seconds",
            "Start (unix seconds) of the UTC day llm_orch_tenant_budget_used_ratio is of.",
            ["tenant", "limit"],
            multiprocess_mode="mostrecent",
        )


def _metrics() -> _Metrics | None:
    """The metrics, created once per process; None when prometheus_client is not installed."""
    m = _state.get("metrics")
    if m is not None or "unavailable" in _state:
        return m
    with _lock:
        if "metrics" not in _state and "unavailable" not in _state:
            try:
                import prometheus_client
            except ImportError:
                _state["unavailable"] = True
                return None
            _state["metrics"] = _Metrics(prometheus_client)
        return _state.get("metrics")


def on_call(event: CallEvent) -> None:
    m = _metrics()
    if m is None:
        return
    p, model = event.provider, event.model
    m.requests.labels(p, model, event.outcome).inc()
    m.latency.labels(p, model, event.outcome).observe(event.latency_ms / 1000)
    if event.retries:
        m.retries.labels(p, model).inc()
    if event.outcome != OK:
        m.errors.labels(p, model, event.error_type or "unknown").inc()
        return
    for kind, n in zip(
        TOKEN_KINDS, (event.prompt_tokens, event.completion_tokens, event.cached_tokens, event.cache_write_tokens)
    ):
        if n:
            m.tokens.labels(p, model, kind).inc(n)
    if event.cost_micros:
        m.cost.labels(p, model, event.tenant or NO_TENANT).inc(event.cost_micros)


def on_fallback(event: FallbackEvent) -> None:
    m = _metrics()
    if m is not None:
        m.fallbacks.labels(event.provider, event.from_model, event.to_model, event.reason).inc()


def on_breaker(event: BreakerEvent) -> None:
    m = _metrics()
    if m is None:
        return
    m.breaker_state.labels(event.provider, event.model).set(BREAKER_STATE_VALUES.get(event.state, 0))
    if event.transition:
        m.breaker_transitions.labels(event.provider, event.model, event.previous, event.state).inc()


def on_limiter_wait(event: LimiterWaitEvent) -> None:
    m = _metrics()
    if m is not None:
        m.limiter_wait.labels(event.provider, event.model).observe(event.seconds)


def on_budget(tenant: str, day: str, usage: Mapping[str, tuple[int, int | None]], refused: str | None) -> None:
    """A tenant's day after a settle or a refusal (``TenantBudgets`` calls it).

    Args:
        tenant: the tenant.
        day: the UTC day the usage is of, ``YYYYMMDD``.
        usage: limit name → (used, daily limit or None) in the limit's unit.
        refused: the limit that just refused a call, else None (its ratio is then at least 1).
    """
    m = _metrics()
    if m is None:
        return
    day_start = _day_start(day)
    for limit, (used, cap) in usage.items():
        if cap is None:
            continue
        ratio = used / cap if cap else 1.0
        if refused == limit:
            ratio = max(ratio, 1.0)
        m.budget_ratio.labels(tenant, limit).set(ratio)
        m.budget_day.labels(tenant, limit).set(day_start)


@functools.lru_cache(maxsize=4)
def _day_start(day: str) -> int:
    """Unix seconds at 00:00 UTC of ``day`` (``YYYYMMDD``)."""
    return calendar.timegm(time.strptime(day, "%Y%m%d"))


class QueueDepthCollector:
    """``llm_orch_queue_depth{queue}``: LLEN of each Celery queue, read from Redis at scrape time.

    Kombu keeps a queue as a Redis list named ``<global_keyprefix><queue>`` plus one list per
    priority step above 0 (``<queue>\\x06\\x16<step>``); the depth is their sum.

    Args:
        redis: a client on the broker's database.
        queues: queue names.
        key_prefix: the broker's ``global_keyprefix``.
        priority_steps: kombu's priority steps (default ``[0, 3, 6, 9]``).
    """

    def __init__(
        self, redis: Any, queues: tuple[str, ...], key_prefix: str = "", priority_steps: tuple[int, ...] = (0, 3, 6, 9)
    ) -> None:
        self.redis = redis
        self.queues = queues
        self.prefix = key_prefix
        self.steps = priority_steps

    def keys(self, queue: str) -> list[str]:
        return [f"{self.prefix}{queue}" + (f"\x06\x16{step}" if step else "") for step in self.steps]

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        from llm_orchestrator.resilience.degrade import redis_errors

        family = GaugeMetricFamily("llm_orch_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for queue in self.queues:
                for key in self.keys(queue):
                    pipe.llen(key)
            lengths = pipe.execute()
        except redis_errors():
            return  # Redis away: no sample rather than a wrong zero
        n = len(self.steps)
        for i, queue in enumerate(self.queues):
            family.add_metric([queue], sum(lengths[i * n : (i + 1) * n]))
        yield family
