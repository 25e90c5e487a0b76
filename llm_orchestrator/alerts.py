"""Alerts: a structured log event, and optionally a JSON POST to a webhook, when something needs a human.

Kinds (``extra["alert"]`` on the ``llm_orchestrator.alerts`` logger, ``"alert"`` in the JSON):

- ``slow_call``: a provider call took longer than ``alerts.latency_seconds``;
- ``many_retries``: a request needed more than ``alerts.max_retries`` tries after its first;
- ``costly_request``: one request cost more than ``alerts.job_cost_usd``;
- ``budget_warning`` / ``budget_exhausted``: a tenant's day crossed ``budget_warn_ratio`` / 100 %
  of a limit (or a call was refused by it) — once per tenant, UTC day, limit and level, across
  every process (``SET NX`` in Redis);
- ``breaker_open``: a circuit breaker opened;
- ``error_rate`` / ``latency_p99``: over one window of ``alerts.window_seconds``, more than
  ``alerts.error_rate`` of a provider/model's calls failed / the p99 latency of its successful
  calls exceeded ``alerts.latency_p99_seconds`` — judged once the window has ended, at most once
  per kind, provider/model and window across every process (``SET NX`` in Redis), never per call.

Window alerts count the provider calls of this process (every orchestrator in it: they listen to
:mod:`llm_orchestrator.observability.events`); with several worker processes each judges its own
share, and the first one over a threshold sends the window's alert. A window is judged on the
first call of the process after it ends (a process with no calls has nothing to judge).

A payload holds identifiers and numbers only (provider, model, tenant, job id, request id, the
prompt's hash, thresholds): never prompt or answer text, keys, or the webhook URL. The webhook is
POSTed from one background thread per process with a short timeout; a slow or failing webhook
is logged and never reaches the call path.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from llm_orchestrator.observability import events
from llm_orchestrator.observability.events import OK, CallEvent
from llm_orchestrator.resilience.budgets import COST_LIMIT, TOKENS_LIMIT, DayUsage
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import ALERT_ONCE

log = logging.getLogger(__name__)

SLOW_CALL = "slow_call"
MANY_RETRIES = "many_retries"
COSTLY_REQUEST = "costly_request"
BUDGET_WARNING = "budget_warning"
BUDGET_EXHAUSTED = "budget_exhausted"
BREAKER_OPEN = "breaker_open"
ERROR_RATE = "error_rate"
LATENCY_P99 = "latency_p99"
WINDOW_KINDS = (ERROR_RATE, LATENCY_P99)
ONCE_TTL_SECONDS = 2 * 86400  # a budget level's dedupe marker outlives its UTC day
WEBHOOK_QUEUE_SIZE = 1000  # alerts waiting for the webhook; more are dropped (and logged)
LATENCY_SAMPLES = 10_000  # latencies kept per model and window for its p99 (a uniform sample beyond)
# A window alert sent once per kind, provider/model and window across all processes.
# STRING "1", SET NX; TTL 2 windows. (Belongs with the other keys in resilience/keys.py.)
WINDOW_ONCE = "{prefix}alert:window:{kind}:{{{provider}/{model}}}:{window}"


class Alerts:
    """Checks thresholds and sends alerts.

    Args:
        config: the ``alerts`` config block (None: alerts off).
        redis: a client for the once-per-day and once-per-window markers, or None (this process only).
        key_prefix: Redis key prefix.
        clock: wall clock placing each provider call in its window.
    """

    def __init__(
        self,
        config: Any = None,
        redis: Any = None,
        key_prefix: str = "llmorch:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled: bool = config is not None and config.enabled
        self.config = config
        self.prefix = key_prefix
        self._redis = redis
        self._clock = clock
        self._sent_once: set[str] = set()
        self._lock = threading.Lock()
        self._degraded = DegradedLog(log, "alerts' once-per-day markers").warn
        url = config.webhook_url.get_secret_value() if self.enabled and config.webhook_url else None
        self.webhook = _Webhook(url, config.webhook_timeout_seconds) if url else None
        self._windows: dict[tuple[str, str], _Window] = {}  # (provider, model) → the window being filled
        self._window_id: int | None = None
        if self.enabled and (config.error_rate is not None or config.latency_p99_seconds is not None):
            _watch_calls(self)

    # -- hooks --------------------------------------------------------------------------------

    def request_finished(self, response: Any, req: Any) -> None:
        """After a request succeeded: slow calls, many retries, high cost (``response.attempts`` set)."""
        if not self.enabled:
            return
        cfg = self.config
        ids = {
            "provider": response.provider,
            "model": response.model,
            "tenant": req.tenant,
            "job_id": req.job_id,
            "request_id": response.request_id,
            "prompt_hash": req.prompt_hash,
        }
        attempts: Sequence[dict[str, Any]] = response.attempts or []
        if cfg.latency_seconds is not None and attempts:
            slowest = max(attempts, key=lambda a: a.get("latency_ms") or 0.0)
            seconds = (slowest.get("latency_ms") or 0.0) / 1000
            if seconds > cfg.latency_seconds:
                self.emit(
                    SLOW_CALL,
                    **{**ids, "model": slowest.get("model")},
                    latency_seconds=round(seconds, 3),
                    threshold=cfg.latency_seconds,
                )
        retries = len(attempts) - 1
        if cfg.max_retries is not None and retries > cfg.max_retries:
            self.emit(
                MANY_RETRIES,
                **ids,
                retries=retries,
                threshold=cfg.max_retries,
                tries=[f"{a.get('model')}:{a.get('error_type') or 'ok'}" for a in attempts],
            )
        cost = response.cost_usd
        if cfg.job_cost_usd is not None and cost is not None and Decimal(cost) > cfg.job_cost_usd:
            self.emit(COSTLY_REQUEST, **ids, cost_usd=str(cost), threshold=str(cfg.job_cost_usd))

    def breaker_opened(self, provider: str, model: str) -> None:
        """A breaker has just opened (called once per transition)."""
        if self.enabled:
            self.emit(BREAKER_OPEN, provider=provider, model=model)

    def budget_usage(self, usage: DayUsage, refused: str | None) -> None:
        """A tenant's day after a settle, or after a refusal by limit ``refused``."""
        if not self.enabled:
            return
        ratio = Decimal(str(self.config.budget_warn_ratio))
        for limit, used, cap, unit in (
            (TOKENS_LIMIT, usage.tokens, usage.limit.tokens_per_day, "tokens"),
            (COST_LIMIT, usage.micros, usage.limit.micros_per_day, "micro_usd"),
        ):
            if cap is None:
                continue
            levels = []
            if used >= ratio * cap:
                levels.append((BUDGET_WARNING, "warn"))
            if used >= cap or refused == limit:
                levels.append((BUDGET_EXHAUSTED, "full"))
            for kind, level in levels:
                if self._first(usage.tenant, usage.day, limit, level):
                    self.emit(
                        kind,
                        tenant=usage.tenant,
                        day=usage.day,
                        limit=limit,
                        used=used,
                        cap=cap,
                        unit=unit,
                        ratio=round(used / cap, 4),
                        refused=refused == limit,
                    )

    def call_ended(self, event: CallEvent) -> None:
        """Count one provider call in its window; judge the windows that have ended (once each)."""
        if not self.enabled:
            return
        window_id = int(self._clock() // self.config.window_seconds)
        with self._lock:
            ended: dict[tuple[str, str], _Window] = {}
            if window_id != self._window_id:
                ended, self._windows, self._window_id = self._windows, {}, window_id
            window = self._windows.get((event.provider, event.model))
            if window is None:
                window = self._windows[(event.provider, event.model)] = _Window(window_id)
            window.add(event)
        for (provider, model), done in ended.items():
            self._judge(provider, model, done)

    def _judge(self, provider: str, model: str, window: _Window) -> None:
        cfg = self.config
        start = datetime.fromtimestamp(window.id * cfg.window_seconds, tz=timezone.utc).isoformat()
        where = {"provider": provider, "model": model, "window_start": start, "window_seconds": cfg.window_seconds}
        if cfg.error_rate is not None and window.calls >= cfg.window_min_calls:
            rate = window.errors / window.calls
            if rate > cfg.error_rate and self._first_in_window(ERROR_RATE, provider, model, window.id):
                self.emit(
                    ERROR_RATE,
                    **where,
                    calls=window.calls,
                    errors=window.errors,
                    error_rate=round(rate, 4),
                    threshold=cfg.error_rate,
                    error_types=dict(window.error_types),
                )
        if cfg.latency_p99_seconds is not None and window.ok >= cfg.window_min_calls:
            p99 = window.p99()
            if p99 > cfg.latency_p99_seconds and self._first_in_window(LATENCY_P99, provider, model, window.id):
                self.emit(
                    LATENCY_P99, **where, calls=window.ok, p99_seconds=round(p99, 3), threshold=cfg.latency_p99_seconds
                )

    # -- sending ------------------------------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        """Log the alert and queue it for the webhook. Never raises into the caller."""
        payload = {"alert": kind, "at": datetime.now(timezone.utc).isoformat(), **fields}
        log.warning("alert %s: %s", kind, _summary(fields), extra=payload)
        if self.webhook is not None:
            self.webhook.send(payload)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until queued webhook POSTs are done (tests, shutdown). True if none is left."""
        return self.webhook.flush(timeout) if self.webhook is not None else True

    def _first(self, tenant: str, day: str, limit: str, level: str) -> bool:
        """True exactly once per (tenant, day, limit, level) across the fleet (this process when Redis is away)."""
        key = ALERT_ONCE.format(prefix=self.prefix, tenant=tenant, day=day, limit=limit, level=level)
        with self._lock:
            if key in self._sent_once:  # decided before (here or elsewhere): no Redis round trip
                return False
            self._sent_once.add(key)
        return self._first_in_redis(key, ONCE_TTL_SECONDS)

    def _first_in_window(self, kind: str, provider: str, model: str, window_id: int) -> bool:
        """True once per (kind, provider/model, window): across the fleet, and across this process's orchestrators."""
        key = WINDOW_ONCE.format(prefix=self.prefix, kind=kind, provider=provider, model=model, window=window_id)
        seconds = self.config.window_seconds
        if not _window_sent.add(key, start=window_id * seconds, forget_at=(window_id + 2) * seconds):
            return False
        return self._first_in_redis(key, 2 * self.config.window_seconds)

    def _first_in_redis(self, key: str, ttl_seconds: int) -> bool:
        if self._redis is not None:
            try:
                return bool(self._redis.set(key, 1, nx=True, ex=ttl_seconds))
            except redis_errors() as e:
                self._degraded(e)
        return True


@dataclass
class _Window:
    """One provider/model's calls in one window of this process."""

    id: int  # start // window_seconds
    calls: int = 0
    errors: int = 0
    ok: int = 0
    error_types: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls (a sample past the cap)

    def add(self, event: CallEvent) -> None:
        self.calls += 1
        if event.outcome != OK:
            self.errors += 1
            self.error_types[event.error_type or "unknown"] += 1
            return
        self.ok += 1
        seconds = event.latency_ms / 1000
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(seconds)
        else:  # reservoir sampling: every successful call equally likely to be kept
            slot = random.randrange(self.ok)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = seconds

    def p99(self) -> float:
        """The 99th percentile (nearest rank) of the successful calls' latency, in seconds."""
        ordered = sorted(self.latencies)
        return ordered[(99 * len(ordered) + 99) // 100 - 1]  # rank ceil(0.99 n), in integers


class _SentWindows:
    """Window alert keys already sent by this process (any orchestrator), forgotten two windows on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, float] = {}  # key → when it may be forgotten (unix seconds)

    def add(self, key: str, start: float, forget_at: float) -> bool:
        """False if ``key`` (of a window starting at ``start``) was sent before."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys = {k: t for k, t in self._keys.items() if t > start}
            self._keys[key] = forget_at
            return True


_window_sent = _SentWindows()
_watchers_lock = threading.Lock()
_watchers: tuple[weakref.ref[Alerts], ...] = ()  # Alerts with window alerts on; read without the lock


def _watch_calls(alerts: Alerts) -> None:
    """Give ``alerts`` every provider call of this process (held weakly: a dropped orchestrator stops)."""
    global _watchers
    with _watchers_lock:
        if not _watchers:  # the first watcher of the process (dropped ones stay until the next is added)
            events.add_listener(_on_event)
        _watchers = (*(w for w in _watchers if w() is not None), weakref.ref(alerts))


def _on_event(event: events.Event) -> None:
    if isinstance(event, CallEvent):
        for ref in _watchers:
            alerts = ref()
            if alerts is not None:
                alerts.call_ended(event)


class _Webhook:
    """POSTs alert payloads as JSON from one daemon thread (re-created after a fork)."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(WEBHOOK_QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def send(self, payload: dict[str, Any]) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
            self._queue, self._thread, self._pid = queue.Queue(WEBHOOK_QUEUE_SIZE), None, os.getpid()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning("alert webhook queue full; alert %s dropped", payload["alert"])
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="llm-orch-alert-webhook", daemon=True)
            self._thread.start()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        import httpx

        # Sent through a transport, not an httpx.Client: the client logs every URL at INFO, and a
        # webhook URL usually carries its token.
        timeout = httpx.Timeout(self._timeout).as_dict()
        with httpx.HTTPTransport() as transport:
            while True:
                payload = self._queue.get()
                try:
                    request = httpx.Request("POST", self._url, json=payload, extensions={"timeout": timeout})
                    response = transport.handle_request(request)
                    response.read()
                    response.close()
                    if response.status_code >= 300:
                        log.warning("alert webhook answered HTTP %d for %s", response.status_code, payload["alert"])
                except Exception as e:
                    log.warning("alert webhook failed for %s (%s)", payload["alert"], type(e).__name__)
                finally:
                    self._queue.task_done()


SUMMARY_FIELDS = (
    "provider",
    "model",
    "tenant",
    "limit",
    "latency_seconds",
    "threshold",
    "retries",
    "cost_usd",
    "error_rate",
    "p99_seconds",
    "ratio",
    "job_id",
)


def _summary(fields: dict[str, Any]) -> str:
    """The alert's key facts in the message itself, readable without a structured formatter."""
    return ", ".join(f"{k}={fields[k]}" for k in SUMMARY_FIELDS if fields.get(k) is not None) or "-"
