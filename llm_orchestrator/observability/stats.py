"""The stats stream in Redis and the report ``llm-orch stats`` prints from it.

Writers: every process with Redis appends one entry per provider call, fallback and breaker
transition to ``STATS_EVENTS`` (a stream, trimmed to about :data:`MAX_EVENTS` entries, key TTL
refreshed to :data:`STATS_TTL_SECONDS` on every write), so it stays bounded whatever the load.
Costs, tokens and cache hits come from the cost ledger (the source of truth), not the stream.

Reader: :func:`build_report` over a window (``--since 1h|24h|7d``). When the stream has been
trimmed past the window's start, the report says so (``window.truncated``) and covers what is left.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from llm_orchestrator.observability.events import OK, BreakerEvent, CallEvent, FallbackEvent
from llm_orchestrator.resilience.keys import STATS_EVENTS

log = logging.getLogger(__name__)

MAX_EVENTS = 200_000  # ≈ 30 MB of stream; at more events than this per window the report is truncated
STATS_TTL_SECONDS = 8 * 86400  # one day past the longest window anyone asks for (7d)
PAUSE_AFTER_ERROR_SECONDS = 5.0
LATER_FLUSH_SECONDS = 0.5  # entries queued by add_later reach the stream within this
LATER_MAX = 10_000  # at most this many wait for the writer (more are dropped: it is a statistic)  # Redis away: skip stream writes this long instead of waiting on every call
READ_CHUNK = 5000
_WINDOW_RE = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class StatsStream:
    """Appends events to the stats stream; a Redis outage pauses it (events are dropped), never fails a call.

    Args:
        redis: a client.
        key_prefix: Redis key prefix.
    """

    def __init__(self, redis: Any, key_prefix: str = "llmorch:") -> None:
        from llm_orchestrator.resilience.degrade import redis_errors

        self._r = redis
        self.key = STATS_EVENTS.format(prefix=key_prefix)
        self._errors = redis_errors()
        self._paused_until = 0.0
        self._later: list[dict[str, Any]] = []
        self._later_lock = threading.Lock()
        self._writer_pid = 0

    def add_call(self, e: CallEvent) -> None:
        self._add(call_fields(e))

    def add_later(self, fields: dict[str, Any]) -> None:
        """Queue an entry for the background writer (a call whose settlement has no Redis round trip)."""
        with self._later_lock:
            if len(self._later) < LATER_MAX:
                self._later.append(fields)
            if self._writer_pid != os.getpid():  # (again) in this process: threads do not survive a fork
                self._writer_pid = os.getpid()
                threading.Thread(target=self._write_later, name="llm-orch-stats", daemon=True).start()

    def _write_later(self) -> None:
        while True:
            time.sleep(LATER_FLUSH_SECONDS)
            with self._later_lock:
                batch, self._later = self._later, []
            if not batch or (self._paused_until and time.monotonic() < self._paused_until):
                continue
            try:
                pipe = self._r.pipeline(transaction=False)
                for fields in batch:
                    pipe.xadd(self.key, fields, maxlen=MAX_EVENTS, approximate=True)
                pipe.expire(self.key, STATS_TTL_SECONDS)
                pipe.execute()
            except self._errors:
                self.pause()

    def parts(self, fields: dict[str, Any]) -> tuple[list[str], list[Any]] | None:
        """An XADD of ``fields`` as script keys/args for the gate's settlement (None while paused)."""
        if self._paused_until and time.monotonic() < self._paused_until:
            return None
        return [self.key], [MAX_EVENTS, STATS_TTL_SECONDS, *(x for kv in fields.items() for x in kv)]

    def pause(self) -> None:
        """Redis is away: drop entries for a while instead of waiting on every call."""
        self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR_SECONDS

    def add_fallback(self, e: FallbackEvent) -> None:
        self._add(
            {"kind": "fallback", "provider": e.provider, "model": e.from_model, "to": e.to_model, "error": e.reason}
        )

    def add_breaker(self, e: BreakerEvent) -> None:
        self._add(
            {"kind": "breaker", "provider": e.provider, "model": e.model, "from": e.previous or "", "state": e.state}
        )

    def _add(self, fields: dict[str, Any]) -> None:
        if self._paused_until and time.monotonic() < self._paused_until:
            return
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.xadd(self.key, fields, maxlen=MAX_EVENTS, approximate=True)
            pipe.expire(self.key, STATS_TTL_SECONDS)
            pipe.execute()
            self._paused_until = 0.0
        except self._errors as e:
            # The breaker, limiter and ledger already warn about the outage; events are just dropped.
            self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR_SECONDS
            log.debug(
                "stats stream paused for %.0fs: Redis unreachable (%s)", PAUSE_AFTER_ERROR_SECONDS, type(e).__name__
            )


def call_fields(e: CallEvent) -> dict[str, Any]:
    """The stream entry of one provider call."""
    return call_entry(e.provider, e.model, e.outcome, e.latency_ms, e.error_type)


def call_entry(
    provider: str, model: str, outcome: str, latency_ms: float, error_type: str | None = None
) -> dict[str, Any]:
    """The stream entry of one provider call, from its parts."""
    fields: dict[str, Any] = {
        "kind": "call",
        "provider": provider,
        "model": model,
        "outcome": outcome,
        "latency_ms": latency_ms,
    }
    if error_type:
        fields["error"] = error_type
    return fields


# -- reading ----------------------------------------------------------------------------------------


def parse_window(text: str) -> int:
    """Seconds in a window such as ``90s``, ``15m``, ``1h``, ``24h``, ``7d``.

    Raises:
        ValueError: not a number followed by s, m, h or d.
    """
    match = _WINDOW_RE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window must look like 1h, 24h or 7d, not {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _events(client: Any, key: str, start_ms: int) -> Iterator[dict[str, str]]:
    cursor = f"{start_ms}-0"
    while True:
        chunk = client.xrange(key, min=cursor, max="+", count=READ_CHUNK)
        for _, fields in chunk:
            yield {k.decode(): v.decode() for k, v in fields.items()}
        if len(chunk) < READ_CHUNK:
            return
        cursor = "(" + chunk[-1][0].decode()


def _latency(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), **{f"p{p}": percentile(values, p) for p in (50, 95, 99)}}


def build_report(client: Any, key_prefix: str, window_seconds: int, now: float | None = None) -> dict[str, Any]:
    """Numbers of the last ``window_seconds`` from the stats stream and the cost ledger.

    Args:
        client: a Redis client.
        key_prefix: Redis key prefix (``redis.key_prefix``).
        window_seconds: how far back to look.
        now: the window's end (unix seconds; default now).

    Returns:
        A JSON-friendly dict: window, calls, latency_ms (successful calls; overall and by model),
        errors by type, fallbacks, breaker_opens, cost_usd (total, by model, by tenant; decimal
        strings), tokens, cache_hit_rate (cached / prompt tokens).
    """
    from llm_orchestrator.cost_tracker import TOKEN_FIELDS
    from llm_orchestrator.ledger import RedisLedger

    end = time.time() if now is None else now
    start_ms = int((end - window_seconds) * 1000)
    key = STATS_EVENTS.format(prefix=key_prefix)
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    opens: Counter[str] = Counter()
    latencies: list[float] = []
    by_model_latency: dict[str, list[float]] = defaultdict(list)
    for e in _events(client, key, start_ms):
        model = f"{e.get('provider')}/{e.get('model')}"
        if e["kind"] == "call":
            calls[e["outcome"]] += 1
            if e["outcome"] == OK:
                latencies.append(float(e["latency_ms"]))
                by_model_latency[model].append(float(e["latency_ms"]))
            else:
                errors[e.get("error", "unknown")] += 1
        elif e["kind"] == "fallback":
            fallbacks[e.get("error", "unknown")] += 1
        elif e["kind"] == "breaker" and e.get("state") == "open":
            opens[model] += 1
    first = client.xrange(key, count=1)
    oldest_ms = int(first[0][0].decode().split("-")[0]) if first else None
    truncated = bool(oldest_ms and oldest_ms > start_ms and client.xlen(key) >= MAX_EVENTS * 0.9)

    cost_by_model: dict[str, Decimal] = defaultdict(Decimal)
    cost_by_tenant: dict[str, Decimal] = defaultdict(Decimal)
    tokens = dict.fromkeys(TOKEN_FIELDS, 0)
    unpriced = 0
    for row in RedisLedger(client, key_prefix).rows(since=start_ms / 1000, until=end):
        for f in TOKEN_FIELDS:
            tokens[f] += int(row.get(f) or 0)
        if not row.get("cost_usd"):
            unpriced += 1
            continue
        cost = Decimal(row["cost_usd"])
        cost_by_model[f"{row['provider']}/{row['model']}"] += cost
        cost_by_tenant[row.get("tenant") or "(none)"] += cost

    return {
        "window": {
            "seconds": window_seconds,
            "since": start_ms / 1000,
            "until": end,
            "truncated": truncated,
            "oldest_event": None if oldest_ms is None else oldest_ms / 1000,
        },
        "calls": {"total": sum(calls.values()), "ok": calls[OK], "error": sum(calls.values()) - calls[OK]},
        "latency_ms": _latency(latencies),
        "latency_ms_by_model": {m: _latency(v) for m, v in sorted(by_model_latency.items())},
        "errors": dict(errors.most_common()),
        "fallbacks": {"total": sum(fallbacks.values()), "by_reason": dict(fallbacks.most_common())},
        "breaker_opens": {"total": sum(opens.values()), "by_model": dict(sorted(opens.items()))},
        "cost_usd": {
            "total": str(sum(cost_by_model.values(), Decimal(0))),
            "by_model": {k: str(v) for k, v in sorted(cost_by_model.items())},
            "by_tenant": {k: str(v) for k, v in sorted(cost_by_tenant.items())},
            "unpriced_calls": unpriced,
        },
        "tokens": {f.removesuffix("_tokens"): n for f, n in tokens.items()},
        "cache_hit_rate": tokens["cached_tokens"] / tokens["prompt_tokens"] if tokens["prompt_tokens"] else 0.0,
    }


def print_report(report: dict[str, Any], console: Any) -> None:
    """Print ``report`` as tables on a rich ``console``."""
    from rich.table import Table

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    w, calls, lat = report["window"], report["calls"], report["latency_ms"]
    title = f"last {_human(w['seconds'])}" + (" (stream trimmed: covers less)" if w["truncated"] else "")
    summary = Table("metric", "value", title=title)
    summary.add_row("provider calls", f"{calls['total']} ({calls['ok']} ok, {calls['error']} errors)")
    summary.add_row("latency p50 / p95 / p99 ms", f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])}")
    summary.add_row("fallbacks", str(report["fallbacks"]["total"]))
    summary.add_row("breaker opens", str(report["breaker_opens"]["total"]))
    summary.add_row("cache hit rate", f"{report['cache_hit_rate']:.1%} of prompt tokens")
    summary.add_row(
        "cost usd",
        report["cost_usd"]["total"]
        + (f" ({report['cost_usd']['unpriced_calls']} unpriced calls)" if report["cost_usd"]["unpriced_calls"] else ""),
    )
    console.print(summary)

    models = Table("model", "calls ok", "p50 ms", "p95 ms", "p99 ms", "cost usd", title="by model")
    names = sorted(set(report["latency_ms_by_model"]) | set(report["cost_usd"]["by_model"]))
    for name in names:
        m = report["latency_ms_by_model"].get(name, {"count": 0, "p50": None, "p95": None, "p99": None})
        models.add_row(
            name,
            str(m["count"]),
            ms(m["p50"]),
            ms(m["p95"]),
            ms(m["p99"]),
            report["cost_usd"]["by_model"].get(name, "0"),
        )
    console.print(models)

    tenants = Table("tenant", "cost usd", title="by tenant")
    for tenant, cost in report["cost_usd"]["by_tenant"].items():
        tenants.add_row(tenant, cost)
    console.print(tenants)

    problems = Table("kind", "name", "count", title="errors, fallbacks, breaker opens")
    for name, n in report["errors"].items():
        problems.add_row("error", name, str(n))
    for name, n in report["fallbacks"]["by_reason"].items():
        problems.add_row("fallback", name, str(n))
    for name, n in report["breaker_opens"]["by_model"].items():
        problems.add_row("breaker open", name, str(n))
    console.print(problems)


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
