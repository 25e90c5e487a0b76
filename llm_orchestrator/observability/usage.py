"""In-process usage metrics of one orchestrator, with no Redis and no Prometheus needed.

``LLMOrchestrator.get_metrics()`` returns a :class:`UsageMetrics` snapshot: request totals,
averages, p50/p95/p99 latency of successful calls, cost, prompt-cache hit rate and errors by type,
with ``to_dict()`` for a monitoring system. Latency percentiles come from the most recent
:data:`LATENCY_SAMPLES` successful calls; the totals cover the orchestrator's whole life.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from llm_orchestrator.observability.events import OK, CallEvent

LATENCY_SAMPLES = 10_000
MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class UsageMetrics:
    """A snapshot of one orchestrator's provider calls (see module docstring)."""

    total_requests: int
    successful_requests: int
    failed_requests: int
    total_cost_usd: Decimal
    total_tokens: int
    total_prompt_tokens: int
    total_completion_tokens: int
    total_cached_tokens: int
    average_cost_usd: Decimal
    average_latency_ms: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None
    cache_hit_rate: float  # cached prompt tokens / prompt tokens
    errors_by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; money as a decimal string."""
        d = asdict(self)
        d["total_cost_usd"] = str(self.total_cost_usd)
        d["average_cost_usd"] = str(self.average_cost_usd)
        return d


class UsageCounter:
    """Thread-safe running totals of call events (one per orchestrator)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = self._ok = 0
        self._micros = self._prompt = self._completion = self._cached = 0
        self._latency_sum = 0.0
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._errors: Counter[str] = Counter()

    def add(self, event: CallEvent) -> None:
        with self._lock:
            self._calls += 1
            if event.outcome == OK:
                self._ok += 1
                self._latency_sum += event.latency_ms
                self._latencies.append(event.latency_ms)
                self._micros += event.cost_micros or 0
                self._prompt += event.prompt_tokens
                self._completion += event.completion_tokens
                self._cached += event.cached_tokens
            else:
                self._errors[event.error_type or "unknown"] += 1

    def snapshot(self) -> UsageMetrics:
        with self._lock:
            ordered = sorted(self._latencies)
            cost = (Decimal(self._micros) * MICRO).quantize(MICRO)
            return UsageMetrics(
                total_requests=self._calls,
                successful_requests=self._ok,
                failed_requests=self._calls - self._ok,
                total_cost_usd=cost,
                total_tokens=self._prompt + self._completion,
                total_prompt_tokens=self._prompt,
                total_completion_tokens=self._completion,
                total_cached_tokens=self._cached,
                average_cost_usd=(cost / self._ok).quantize(MICRO) if self._ok else Decimal(0),
                average_latency_ms=round(self._latency_sum / self._ok, 2) if self._ok else 0.0,
                p50_latency_ms=_rank(ordered, 50),
                p95_latency_ms=_rank(ordered, 95),
                p99_latency_ms=_rank(ordered, 99),
                cache_hit_rate=round(self._cached / self._prompt, 4) if self._prompt else 0.0,
                errors_by_type=dict(self._errors),
            )


def _rank(ordered: list[float], p: int) -> float | None:
    """Nearest-rank percentile."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
