"""Alerts: thresholds from config, a log event per alert, a webhook POST that never hurts the call.

A real local HTTP server receives the webhook; Redis and the simulator are real.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.alerts import (
    BREAKER_OPEN,
    BUDGET_EXHAUSTED,
    BUDGET_WARNING,
    COSTLY_REQUEST,
    ERROR_RATE,
    LATENCY_P99,
    LATENCY_SAMPLES,
    MANY_RETRIES,
    SLOW_CALL,
    WINDOW_KINDS,
    Alerts,
)
from llm_orchestrator.config.manager import AlertsConfig
from llm_orchestrator.exceptions import AllFallbacksFailedError, BudgetExceededError, ConfigError
from llm_orchestrator.observability.events import ERROR, OK, CallEvent
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.resilience.budgets import TOKENS_LIMIT, TenantBudgets, TenantLimit
from tests.conftest import ROOT, make_config

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 0.5}
PROMPT = "my confidential prompt about Jane Doe, jane@example.com"
P, M = "openai", "gpt-6-luna"


class Hook:
    """A tiny webhook receiver: records every JSON body POSTed to it."""

    def __init__(self, delay: float = 0.0, status: int = 204) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(delay)
                hook.raw.append(body)
                hook.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-in-path?sig=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self) -> list[str]:
        return [b["alert"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def orch(sim, alerts: dict, redis_url: str | None = None, **extra) -> LLMOrchestrator:
    extra.setdefault("retry", FAST_RETRY)
    if redis_url:
        extra["redis"] = {"url": redis_url}
    return LLMOrchestrator(ConfigManager.from_dict(make_config(sim, P, alerts=alerts, **extra)).config)


def alert_records(caplog, kinds: tuple[str, ...] | None = None) -> list[logging.LogRecord]:
    """Alert log records of ``kinds``; by default all but window alerts.

    Window alerts judge every call of the process, so an orchestrator of an earlier test that is
    still alive may send one whenever a window ends: tests of other kinds leave them out.
    """
    return [
        r
        for r in caplog.records
        if r.name == "llm_orchestrator.alerts"
        and hasattr(r, "alert")
        and (r.alert in kinds if kinds else r.alert not in WINDOW_KINDS)
    ]


# -- config -------------------------------------------------------------------------------------


def test_alerts_block_defaults_and_validation():
    cfg = AlertsConfig()
    assert (cfg.latency_seconds, cfg.max_retries, str(cfg.job_cost_usd), cfg.budget_warn_ratio, cfg.webhook_url) == (
        10.0,
        2,
        "1.00",
        0.8,
        None,
    )
    assert (cfg.error_rate, cfg.latency_p99_seconds, cfg.window_seconds, cfg.window_min_calls) == (0.05, 10.0, 300, 20)
    base = make_config(_NoSim(), P)
    for bad, field in [
        ({"budget_warn_ratio": 1.5}, "alerts.budget_warn_ratio"),
        ({"webhook_url": "ftp://x"}, "alerts.webhook_url: must be an http"),
        ({"job_cost_usd": "abc"}, "alerts.job_cost_usd"),
        ({"error_rate": 1.5}, "alerts.error_rate"),
        ({"latency_p99_seconds": 0}, "alerts.latency_p99_seconds"),
        ({"window_seconds": 0}, "alerts.window_seconds"),
        ({"window_min_calls": 0}, "alerts.window_min_calls"),
        ({"latency": 3}, "alerts.latency: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=field):
            ConfigManager.from_dict({**base, "alerts": bad})


def test_webhook_url_is_never_shown(hook):
    cfg = ConfigManager.from_dict({**make_config(_NoSim(), P), "alerts": {"webhook_url": hook.url}}).config
    assert "T0KEN" not in repr(cfg) and "T0KEN" not in str(cfg.alerts)


class _NoSim:
    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:9/{provider}"


# -- call-path alerts, to the log and the webhook --------------------------------------------------


def test_slow_call_many_retries_and_cost_reach_log_and_webhook_without_prompt_text(sim, hook, caplog):
    sim.set_latency(P, ms=150)
    sim.add_fault(provider=P, model=M, status=503)  # first model fails twice, then the next answers
    o = orch(sim, {"latency_seconds": 0.1, "max_retries": 1, "job_cost_usd": "0.000001", "webhook_url": hook.url})
    with caplog.at_level(logging.DEBUG):
        r = o.send_request(PROMPT, max_tokens=64, tenant="acme", job_id="job-1")
    assert o._parts.alerts.flush(5)
    assert sorted(hook.kinds()) == sorted([SLOW_CALL, MANY_RETRIES, COSTLY_REQUEST])
    by_kind = {b["alert"]: b for b in hook.bodies}
    assert by_kind[MANY_RETRIES]["retries"] == 2 and by_kind[MANY_RETRIES]["threshold"] == 1
    assert by_kind[COSTLY_REQUEST]["cost_usd"] == str(r.cost_usd) and by_kind[COSTLY_REQUEST]["job_id"] == "job-1"
    assert by_kind[SLOW_CALL]["latency_seconds"] > 0.1 and by_kind[SLOW_CALL]["tenant"] == "acme"
    assert {rec.alert for rec in alert_records(caplog)} == {SLOW_CALL, MANY_RETRIES, COSTLY_REQUEST}
    sent = b"".join(hook.raw).decode()
    for secret in ("confidential", "Jane", "jane@example.com", "sk-test-", "T0KEN", r.content[:20]):
        assert secret not in sent
        assert secret not in caplog.text


def test_below_thresholds_nothing_is_sent(sim, hook, caplog):
    o = orch(sim, {"webhook_url": hook.url})  # defaults: 10 s, 2 retries, $1.00
    with caplog.at_level(logging.WARNING):
        o.send_request("hello", max_tokens=16)
    assert o._parts.alerts.flush(5) and hook.bodies == [] and alert_records(caplog) == []


def test_disabled_alerts_send_nothing(sim, hook, caplog):
    o = orch(sim, {"enabled": False, "latency_seconds": 0.000001, "webhook_url": hook.url})
    with caplog.at_level(logging.WARNING):
        o.send_request("hello", max_tokens=16)
    time.sleep(0.1)
    assert hook.bodies == [] and alert_records(caplog) == []


def test_breaker_opening_alerts_once(sim, hook, redis_url, redis_client, caplog):
    cfg = make_config(
        sim,
        P,
        fallbacks=[],
        alerts={"webhook_url": hook.url},
        redis={"url": redis_url},
        breaker={"min_calls": 3, "failure_rate": 0.5},
        retry={**FAST_RETRY, "max_attempts": 1},
    )
    o = LLMOrchestrator(ConfigManager.from_dict(cfg).config)
    sim.add_fault(provider=P, status=503)
    with caplog.at_level(logging.WARNING):
        for _ in range(6):
            with pytest.raises(AllFallbacksFailedError):
                o.send_request("hello", max_tokens=8)
    assert o._parts.alerts.flush(5)
    assert hook.kinds() == [BREAKER_OPEN]
    assert hook.bodies[0]["provider"] == P and hook.bodies[0]["model"] == M


# -- webhook failures never reach the call path -------------------------------------------------------


def test_unreachable_webhook_is_logged_and_never_raises(sim, caplog):
    o = orch(sim, {"latency_seconds": 0.000001, "webhook_url": "http://127.0.0.1:9/hooks/S3CRET"})
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        o.send_request("hello", max_tokens=8)
        assert o._parts.alerts.flush(5)
    failed = [r.getMessage() for r in caplog.records if "webhook failed" in r.getMessage()]
    assert failed and "S3CRET" not in caplog.text


def test_slow_webhook_does_not_slow_the_call(sim):
    slow = Hook(delay=1.0)
    try:
        o = orch(sim, {"latency_seconds": 0.000001, "webhook_url": slow.url, "webhook_timeout_seconds": 0.2})
        started = time.monotonic()
        o.send_request("hello", max_tokens=8)
        assert time.monotonic() - started < 0.9
        assert o._parts.alerts.flush(5)  # gave up after its 0.2 s timeout
    finally:
        slow.close()


def test_webhook_error_status_is_logged(sim, caplog):
    bad = Hook(status=500)
    try:
        o = orch(sim, {"latency_seconds": 0.000001, "webhook_url": bad.url})
        with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
            o.send_request("hello", max_tokens=8)
            assert o._parts.alerts.flush(5)
        assert any("answered HTTP 500" in r.getMessage() for r in caplog.records)
    finally:
        bad.close()


# -- budget levels: once at 80 %, once at 100 %, across processes -------------------------------------


def _response(tokens: int) -> LLMResponse:
    return LLMResponse(
        content="",
        provider=P,
        model=M,
        finish_reason="stop",
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
    )


def test_budget_alerts_fire_once_at_80_and_once_at_100_percent(redis_url, redis_client, hook, caplog):
    config = AlertsConfig(webhook_url=hook.url)
    # two "processes": each its own Alerts and budgets, sharing Redis
    fleet = []
    for _ in range(2):
        alerts = Alerts(config, redis=redis.Redis.from_url(redis_url))
        fleet.append(
            (
                alerts,
                TenantBudgets(
                    {"acme": TenantLimit(tokens_per_day=1000)},
                    redis=redis.Redis.from_url(redis_url),
                    on_usage=alerts.budget_usage,
                ),
            )
        )
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for i in range(10):  # 7 × 100 tokens: below 80 %; then 800, 900, 1000 → 100 %
            alerts, budgets = fleet[i % 2]
            try:
                hold = budgets.reserve("acme", P, M, 100, 50)
            except BudgetExceededError:
                continue
            budgets.settle(hold, _response(100))
        for alerts, _ in fleet:
            assert alerts.flush(5)
    assert hook.kinds() == [BUDGET_WARNING, BUDGET_EXHAUSTED]
    warn, full = hook.bodies
    assert (warn["tenant"], warn["limit"], warn["used"], warn["cap"], warn["ratio"]) == (
        "acme",
        TOKENS_LIMIT,
        800,
        1000,
        0.8,
    )
    assert full["used"] == 1000 and full["day"] == fleet[0][1].day()
    assert [r.alert for r in alert_records(caplog)] == [BUDGET_WARNING, BUDGET_EXHAUSTED]


def test_refusal_counts_as_exhausted_when_estimates_stop_short_of_100(redis_client, hook):
    alerts = Alerts(AlertsConfig(webhook_url=hook.url), redis=redis_client)
    budgets = TenantBudgets(
        {"acme": TenantLimit(tokens_per_day=1000)}, redis=redis_client, on_usage=alerts.budget_usage
    )
    for _ in range(3):
        budgets.settle(budgets.reserve("acme", P, M, 300, 100), _response(290))  # 870 used
    for _ in range(2):
        with pytest.raises(BudgetExceededError):
            budgets.reserve("acme", P, M, 300, 100)
    assert alerts.flush(5)
    assert hook.kinds() == [BUDGET_WARNING, BUDGET_EXHAUSTED]
    assert hook.bodies[1]["refused"] is True and hook.bodies[1]["used"] == 870


def test_budget_alert_dedupe_falls_back_to_memory_without_redis(hook):
    alerts = Alerts(AlertsConfig(webhook_url=hook.url))
    budgets = TenantBudgets({"acme": TenantLimit(tokens_per_day=100)}, on_usage=alerts.budget_usage)
    for _ in range(5):
        try:
            budgets.settle(budgets.reserve("acme", P, M, 20, 10), _response(20))
        except BudgetExceededError:
            pass
    assert alerts.flush(5)
    assert hook.kinds() == [BUDGET_WARNING, BUDGET_EXHAUSTED]


# -- window alerts: error rate and p99 latency, once per window, never per call ------------------------


class Clock:
    """A wall clock the test moves (window alerts read it to place each call in its window).

    Each clock starts an hour after the last one: a window alert is sent once per process, so two
    tests must never judge the same window.
    """

    _next_start = 1_800_000_000.0  # a multiple of every window length used here

    def __init__(self) -> None:
        Clock._next_start += 3600
        self.now = self.start = Clock._next_start

    def __call__(self) -> float:
        return self.now

    def iso(self, minutes: int = 0) -> str:
        return datetime.fromtimestamp(self.start + 60 * minutes, tz=timezone.utc).isoformat()


def _window_alerts(clock: Clock, redis_client: Any = None, **fields: Any) -> Alerts:
    fields = {"window_seconds": 60, "window_min_calls": 10, **fields}
    return Alerts(AlertsConfig(**fields), redis=redis_client, clock=clock)


def _call(model: str = M, ok: bool = True, seconds: float = 0.2, error_type: str = "ServerError") -> CallEvent:
    return CallEvent(
        provider=P,
        model=model,
        outcome=OK if ok else ERROR,
        latency_ms=seconds * 1000,
        prompt_hash="abc123",
        attempt=0,
        try_number=1,
        retries=0,
        error_type=None if ok else error_type,
    )


def test_error_rate_alert_once_the_window_ends_never_per_call(caplog):
    clock = Clock()
    alerts = _window_alerts(clock)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for i in range(20):  # 2 of 20 failed: 10 % > 5 %
            alerts.call_ended(_call(ok=i not in (3, 7)))
            assert alert_records(caplog, WINDOW_KINDS) == []  # nothing while the window runs
        clock.now += 60
        for _ in range(30):  # the next window: the first call judges the last one, once
            alerts.call_ended(_call())
    [record] = alert_records(caplog, WINDOW_KINDS)
    assert record.alert == ERROR_RATE
    assert (record.provider, record.model, record.calls, record.errors, record.error_rate, record.threshold) == (
        P,
        M,
        20,
        2,
        0.1,
        0.05,
    )
    assert record.error_types == {"ServerError": 2} and record.window_seconds == 60
    assert record.window_start == clock.iso()


def test_error_rate_at_the_threshold_or_below_min_calls_is_not_alerted(caplog):
    clock = Clock()
    alerts = _window_alerts(clock)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for i in range(20):
            alerts.call_ended(_call(ok=i != 0))  # 1 of 20: exactly 5 %, not above
        for _ in range(9):
            alerts.call_ended(_call(model="gpt-6-sol", ok=False))  # all failed, but 9 calls < 10
        clock.now += 60
        alerts.call_ended(_call())
    assert alert_records(caplog, WINDOW_KINDS) == []


def test_p99_latency_alert_is_of_successful_calls_per_model(caplog):
    clock = Clock()
    alerts = _window_alerts(clock, error_rate=None)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for i in range(100):
            alerts.call_ended(_call(seconds=12.0 if i < 2 else 1.0))  # 2 % over 10 s: p99 = 12 s
            alerts.call_ended(_call(model="gpt-6-sol", seconds=12.0 if i < 1 else 1.0))  # 1 %: p99 = 1 s
            alerts.call_ended(_call(model="gpt-6-sol", ok=False, seconds=30.0))  # failures do not count
        clock.now += 60
        alerts.call_ended(_call())
    [record] = alert_records(caplog, WINDOW_KINDS)
    assert (record.alert, record.model, record.calls, record.p99_seconds, record.threshold) == (
        LATENCY_P99,
        M,
        100,
        12.0,
        10.0,
    )


def test_p99_of_a_busy_window_comes_from_a_bounded_sample(caplog):
    clock = Clock()
    alerts = _window_alerts(clock, error_rate=None)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for i in range(3 * LATENCY_SAMPLES):  # a third fast, then two thirds slow: any fair sample's p99 is slow
            alerts.call_ended(_call(seconds=1.0 if i < LATENCY_SAMPLES else 12.0))
        clock.now += 60
        alerts.call_ended(_call())
    [record] = alert_records(caplog, WINDOW_KINDS)
    assert (record.alert, record.calls, record.p99_seconds) == (LATENCY_P99, 3 * LATENCY_SAMPLES, 12.0)


def test_each_window_is_judged_on_its_own(caplog):
    clock = Clock()
    alerts = _window_alerts(clock)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for window in range(3):  # failing, healthy, failing
            for i in range(10):
                alerts.call_ended(_call(ok=window == 1 or i % 2 == 0))
            clock.now += 60
        alerts.call_ended(_call())
    assert [(r.alert, r.window_start) for r in alert_records(caplog, WINDOW_KINDS)] == [
        (ERROR_RATE, clock.iso(0)),
        (ERROR_RATE, clock.iso(2)),
    ]


_OTHER_PROCESS = """
import logging, sys
import redis
from llm_orchestrator.alerts import Alerts
from llm_orchestrator.config.manager import AlertsConfig
from llm_orchestrator.observability.events import ERROR, OK, CallEvent
url, start = sys.argv[1], float(sys.argv[2])
class Sent(logging.Handler):
    kinds = []
    def emit(self, record):
        self.kinds.append(record.alert)
logging.getLogger("llm_orchestrator.alerts").addHandler(Sent())
now = [start]
alerts = Alerts(AlertsConfig(window_seconds=60, window_min_calls=10), redis=redis.Redis.from_url(url),
                clock=lambda: now[0])
def call(outcome):
    return CallEvent(provider="openai", model="gpt-6-luna", outcome=outcome, latency_ms=200.0, prompt_hash="abc123",
                     attempt=0, try_number=1, retries=0, error_type="ServerError" if outcome == ERROR else None)
for _ in range(10):
    alerts.call_ended(call(ERROR))
now[0] += 60
alerts.call_ended(call(OK))
print(",".join(Sent.kinds))
"""


def _other_process(redis_url: str, start: float) -> str:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, redis_url, str(start)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return done.stdout.strip()


def test_a_window_is_alerted_once_across_processes(redis_url, redis_client, caplog):
    """This process and another one both see a failing window: the first to judge it sends it."""
    clock = Clock()
    alerts = _window_alerts(clock, redis_client)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for _ in range(10):
            alerts.call_ended(_call(ok=False))
        clock.now += 60
        alerts.call_ended(_call())
    assert [r.alert for r in alert_records(caplog, WINDOW_KINDS)] == [ERROR_RATE]
    assert _other_process(redis_url, clock.start) == ""  # same window: already sent
    assert _other_process(redis_url, Clock().start) == ERROR_RATE  # a window nobody sent yet


def test_orchestrators_of_one_process_send_a_window_alert_once_without_redis(caplog):
    clock = Clock()
    pair = [_window_alerts(clock) for _ in range(2)]  # e.g. a worker's openai and anthropic orchestrators
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for _ in range(10):
            for alerts in pair:
                alerts.call_ended(_call(ok=False))
        clock.now += 60
        for alerts in pair:
            alerts.call_ended(_call())
    assert [r.alert for r in alert_records(caplog, WINDOW_KINDS)] == [ERROR_RATE]


def test_window_alerts_off(caplog):
    clock = Clock()
    quiet = [
        _window_alerts(clock, error_rate=None, latency_p99_seconds=None),
        Alerts(AlertsConfig(enabled=False, window_seconds=60, window_min_calls=1), clock=clock),
    ]
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for alerts in quiet:
            for _ in range(10):
                alerts.call_ended(_call(ok=False, seconds=30.0))
        clock.now += 60
        for alerts in quiet:
            alerts.call_ended(_call())
    assert alert_records(caplog, WINDOW_KINDS) == []


def test_orchestrator_calls_feed_window_alerts_through_the_real_call_path(sim, hook, redis_url, redis_client, caplog):
    """Real SDK calls to the simulator: the first model fails twice per request, the next answers slowly."""
    clock = Clock()
    cfg = ConfigManager.from_dict(
        make_config(
            sim,
            P,
            retry=FAST_RETRY,
            redis={"url": redis_url},
            alerts={
                "webhook_url": hook.url,
                "window_seconds": 60,
                "window_min_calls": 5,
                "latency_p99_seconds": 0.1,
                "latency_seconds": None,
                "max_retries": None,
            },
        )
    ).config
    alerts = Alerts(cfg.alerts, redis=redis_client, clock=clock)
    o = LLMOrchestrator(cfg, alerts=alerts)
    sim.add_fault(provider=P, model=M, status=503)
    sim.set_latency(P, ms=150)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.alerts"):
        for _ in range(5):  # gpt-6-luna: 10 calls, all 503; gpt-6-sol: 5 answers of ~150 ms
            assert o.send_request(PROMPT, max_tokens=16).model == "gpt-6-sol"
        assert alert_records(caplog, WINDOW_KINDS) == []
        clock.now += 60
        sim.reset()
        o.send_request("hello", max_tokens=8)
        assert alerts.flush(5)
    got = {(b["alert"], b["model"]): b for b in hook.bodies}
    assert set(got) == {(ERROR_RATE, M), (LATENCY_P99, "gpt-6-sol")}
    assert (got[ERROR_RATE, M]["calls"], got[ERROR_RATE, M]["errors"]) == (10, 10)
    assert got[ERROR_RATE, M]["error_types"] == {"ServerError": 10}
    assert got[LATENCY_P99, "gpt-6-sol"]["calls"] == 5 and got[LATENCY_P99, "gpt-6-sol"]["p99_seconds"] >= 0.15
    sent = b"".join(hook.raw).decode()
    for secret in ("confidential", "Jane", "jane@example.com", "sk-test-", "T0KEN"):
        assert secret not in sent and secret not in caplog.text


def test_alert_and_failure_lines_say_what_and_where_without_extra(sim, caplog):
    """A plain formatter (no `extra`) still shows which provider/model and why."""
    from llm_orchestrator import ConfigManager, LLMOrchestrator
    from tests.conftest import make_config

    cfg = make_config(
        sim,
        "openai",
        fallbacks=["gpt-6-sol"],
        alerts={"enabled": True, "latency_seconds": 0.001},
        retry={"max_attempts": 1},
    )
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503, count=1)
    o = LLMOrchestrator(ConfigManager.from_dict(cfg).config)
    with caplog.at_level(logging.INFO):
        o.send_request("hello", max_tokens=8)
    lines = [r.getMessage() for r in caplog.records]
    assert any("openai/gpt-6-luna call failed: ServerError" in m and "HTTP 503" in m for m in lines), lines
    assert any(m.startswith("alert slow_call: ") and "provider=openai" in m and "model=gpt-6-" in m for m in lines), (
        lines
    )
