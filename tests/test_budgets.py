"""Tenant limits: rpm, tokens/day and cost/day, reserved before the call and settled after it.

Real Redis, real SDKs against the simulator; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import redis

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.exceptions import (
    BudgetExceededError,
    ConfigError,
    InvalidRequestError,
    LocalRateLimitError,
    on_error,
)
from llm_orchestrator.pricing import load_prices, to_micros
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.resilience.budgets import COST_LIMIT, TOKENS_LIMIT, TenantBudgets, TenantLimit
from llm_orchestrator.resilience.keys import tenant_keys
from tests.conftest import STATES, make_config
from tests.conftest import state_of as _state
from tests.redis_server import RedisServer

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 0.5}
P, M = "openai", "gpt-6-luna"


def orch(sim, redis_url=None, tenants=None, **extra) -> LLMOrchestrator:
    extra.setdefault("retry", FAST_RETRY)
    if redis_url:
        extra["redis"] = {"url": redis_url}
    return LLMOrchestrator(ConfigManager.from_dict(make_config(sim, P, tenants=tenants or {}, **extra)).config)


@pytest.fixture(params=STATES)
def backend(request):
    """The same tests on memory, a single Redis and a Redis Cluster."""
    return _state(request)


def response(tokens_in: int, tokens_out: int, model: str = M) -> LLMResponse:
    return LLMResponse(
        content="",
        provider=P,
        model=model,
        finish_reason="stop",
        prompt_tokens=tokens_in,
        completion_tokens=tokens_out,
        total_tokens=tokens_in + tokens_out,
    )


# -- config -------------------------------------------------------------------------------------


def test_tenants_block_is_typed_with_a_default_entry():
    cfg = ConfigManager.from_dict(
        make_config(
            _NoSim(),
            P,
            tenants={
                "acme": {"rpm": 60, "tokens_per_day": 1_000_000, "cost_per_day_usd": "5.00"},
                "default": {"cost_per_day_usd": "0.50"},
            },
        )
    ).config
    assert cfg.tenants["acme"].cost_per_day_micros == 5_000_000
    assert cfg.tenant_limits("acme").rpm == 60
    assert cfg.tenant_limits("someone-else").cost_per_day_usd == Decimal("0.50")
    assert cfg.tenant_limits(None) is None


@pytest.mark.parametrize(
    ("tenants", "expected"),
    [
        ({"acme": {"rpm": "sixty"}}, "tenants.acme.rpm"),
        ({"acme": {"rpm": 0}}, "tenants.acme.rpm"),
        ({"acme": {"tokens_per_day": 1.5}}, "tenants.acme.tokens_per_day"),
        ({"acme": {"cost_per_day_usd": "5.0000001"}}, "more than 6 decimal places"),
        ({"acme": {"cost_per_day_usd": "-1"}}, "tenants.acme.cost_per_day_usd: must be more than 0"),
        ({"acme": {"cost_per_day_usd": "five"}}, 'must be a USD amount such as "5.00"'),
        ({"acme": {"cost_per_day": "5"}}, "tenants.acme.cost_per_day: unknown key"),
        ({"bad name!": {"rpm": 1}}, "tenant name 'bad name!'"),
        ({"acme": "5.00"}, "tenants.acme"),
    ],
)
def test_bad_tenant_config_names_the_field(tenants, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        ConfigManager.from_dict(make_config(_NoSim(), P, tenants=tenants))


class _NoSim:
    """make_config only needs base URLs to validate a config."""

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:9/{provider}"


# -- refusals before any provider call -----------------------------------------------------------


@pytest.mark.parametrize("limit", [TOKENS_LIMIT, COST_LIMIT])
def test_exhausted_budget_raises_before_any_provider_call(sim, redis_url, redis_client, limit):
    tenants = {"acme": {"tokens_per_day": 100} if limit == TOKENS_LIMIT else {"cost_per_day_usd": "0.000040"}}
    o = orch(sim, redis_url, tenants)
    served = 0
    with pytest.raises(BudgetExceededError) as info:
        for _ in range(20):
            o.send_request("hello", max_tokens=16, tenant="acme", job_id=f"j{served}")
            served += 1
    assert 1 <= served < 20
    assert info.value.tenant == "acme" and info.value.limit == limit and not info.value.retryable
    assert sim.count() == served  # the refused request reached no model: no call, no fallback
    assert o.cost_tracker.pending(older_than=0) == {}
    sim.reset_stats()
    with pytest.raises(BudgetExceededError):
        o.send_request("hello", max_tokens=16, tenant="acme")
    assert sim.stats()["requests"] == []
    o.send_request("hello", max_tokens=16, tenant="other")  # other tenants are not limited
    o.send_request("hello", max_tokens=16)  # nor are requests without a tenant


def test_budget_error_is_final_typed_and_picklable():
    assert on_error(BudgetExceededError("acme", COST_LIMIT)).stops_request  # never a fallback to another model
    err = BudgetExceededError("acme", COST_LIMIT)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.tenant, copy.limit, str(copy)) == ("acme", COST_LIMIT, str(err))
    assert "acme" in str(err) and COST_LIMIT in str(err)


def test_async_request_over_budget_is_refused(sim, redis_url, redis_client):
    o = orch(sim, redis_url, {"acme": {"tokens_per_day": 10}})

    async def go():
        await o.asend_request("hello", max_tokens=16, tenant="acme")

    with pytest.raises(BudgetExceededError):
        asyncio.run(go())
    assert sim.count() == 0


def test_default_entry_applies_to_each_unlisted_tenant_separately(sim, redis_client, redis_url):
    o = orch(sim, redis_url, {"default": {"tokens_per_day": 40}, "big": {}})
    for tenant in ("t1", "t2"):
        o.send_request("hello", max_tokens=16, tenant=tenant)
        with pytest.raises(BudgetExceededError):
            for _ in range(5):
                o.send_request("hello", max_tokens=16, tenant=tenant)
    for _ in range(5):
        o.send_request("hello", max_tokens=16, tenant="big")  # its own (empty) entry: no limits


# -- rpm ----------------------------------------------------------------------------------------


def test_rpm_over_limit_raises_local_rate_limit_with_retry_after(sim, redis_url, redis_client):
    o = orch(sim, redis_url, {"acme": {"rpm": 2}})
    o.send_request("hello", max_tokens=8, tenant="acme")
    o.send_request("hello", max_tokens=8, tenant="acme")
    with pytest.raises(LocalRateLimitError) as info:
        o.send_request("hello", max_tokens=8, tenant="acme")
    assert info.value.scope == "tenant:acme" and 55 < info.value.retry_after <= 60  # the worker's countdown
    assert sim.count() == 2  # no other model was tried for it
    o.send_request("hello", max_tokens=8, tenant="other")


def test_rpm_is_shared_by_every_process_through_redis(redis_url, redis_client):
    a = TenantBudgets({"acme": TenantLimit(rpm=3)}, redis=redis.Redis.from_url(redis_url))
    b = TenantBudgets({"acme": TenantLimit(rpm=3)}, redis=redis.Redis.from_url(redis_url))
    a.reserve("acme", P, M, 10, 5)
    b.reserve("acme", P, M, 10, 5)
    a.reserve("acme", P, M, 10, 5)
    with pytest.raises(LocalRateLimitError):
        b.reserve("acme", P, M, 10, 5)


def test_refused_call_gives_its_request_slot_back(backend):
    budgets = TenantBudgets({"acme": TenantLimit(rpm=1, tokens_per_day=1000)}, redis=backend)
    hold = budgets.reserve("acme", P, M, 10, 5)
    budgets.release(hold, called=False)  # e.g. the provider limiter refused after us
    assert budgets.usage("acme").held_tokens == 0
    budgets.reserve("acme", P, M, 10, 5)


# -- reserve, settle, release ---------------------------------------------------------------------


def test_settle_replaces_the_estimate_with_actual_tokens_and_cost(sim, redis_url, redis_client):
    o = orch(sim, redis_url, {"acme": {"tokens_per_day": 100_000, "cost_per_day_usd": "1.00"}})
    r1 = o.send_request("hello there", max_tokens=64, tenant="acme")
    r2 = "".join(c.text for c in o.send_streaming_request("hello again", max_tokens=32, tenant="acme"))
    assert r2
    used = o._parts.budgets.usage("acme")
    rows = [r for r in o.cost_tracker.records() if r.tenant == "acme"]
    assert used.tokens == sum(r.total_tokens for r in rows) and r1.total_tokens in [r.total_tokens for r in rows]
    assert used.micros == sum(r.cost_micros for r in rows)  # the ledger and the budget agree exactly
    assert used.held_tokens == used.held_micros == 0


def test_failed_call_releases_its_hold(sim, redis_url, redis_client):
    sim.add_fault(provider=P, status=400)
    o = orch(sim, redis_url, {"acme": {"tokens_per_day": 1000, "cost_per_day_usd": "1.00"}})
    with pytest.raises(InvalidRequestError):
        o.send_request("hello", max_tokens=16, tenant="acme")
    used = o._parts.budgets.usage("acme")
    assert (used.tokens, used.micros, used.held_tokens, used.held_micros) == (0, 0, 0, 0)


def test_cost_estimate_uses_max_tokens_at_the_output_rate():
    budgets = TenantBudgets({"acme": TenantLimit(micros_per_day=10**6)}, prices=load_prices())
    price = load_prices()[(P, M)]
    # 100 prompt tokens at $0.10/M + 1000 output tokens at $0.50/M = $0.00051
    assert (
        budgets.estimate_micros(P, M, 1100, 1000)
        == 510
        == to_micros((100 * price.rates.input + 1000 * price.rates.output) / 1_000_000)
    )


@pytest.mark.parametrize("limit", [TOKENS_LIMIT, COST_LIMIT])
def test_concurrent_reservations_from_threads_never_overspend(redis_url, redis_client, limit):
    prices = load_prices()
    per_call = TenantBudgets(prices=prices).estimate_micros(P, M, 1000, 200)
    lim = TenantLimit(tokens_per_day=37_500) if limit == TOKENS_LIMIT else TenantLimit(micros_per_day=per_call * 37 + 5)
    granted: list[int] = []
    lock, barrier = threading.Lock(), threading.Barrier(8)

    def worker() -> None:
        budgets = TenantBudgets({"acme": lim}, redis=redis.Redis.from_url(redis_url), prices=prices)
        barrier.wait()
        mine = 0
        while True:
            try:
                budgets.reserve("acme", P, M, 1000, 200)
            except BudgetExceededError:
                break
            mine += 1
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(granted) == 37  # exactly what fits, never one more, across 8 racing threads
    used = TenantBudgets({"acme": lim}, redis=redis_client).usage("acme")
    assert used.held_tokens == 37_000 and used.held_micros == (37 * per_call if limit == COST_LIMIT else 0)


def test_memory_backend_is_thread_safe_too():
    budgets = TenantBudgets({"acme": TenantLimit(tokens_per_day=5_000)})
    granted = []

    def worker() -> None:
        for _ in range(20):
            try:
                granted.append(budgets.reserve("acme", P, M, 100, 10))
            except BudgetExceededError:
                return

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(granted) == 50


def test_unsettled_hold_is_reclaimed_after_it_expires(backend):
    budgets = TenantBudgets({"acme": TenantLimit(tokens_per_day=100)}, redis=backend, hold_seconds=0.05)
    budgets.reserve("acme", P, M, 100, 10)  # a worker that dies mid-call never settles this
    with pytest.raises(BudgetExceededError):
        budgets.reserve("acme", P, M, 100, 10)
    time.sleep(0.1)
    hold = budgets.reserve("acme", P, M, 100, 10)
    budgets.settle(hold, response(60, 30))
    assert budgets.usage("acme").tokens == 90


def test_days_are_utc_and_keys_expire(redis_client):
    now = [datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone.utc).timestamp()]
    budgets = TenantBudgets(
        {"acme": TenantLimit(rpm=100, tokens_per_day=100)}, redis=redis_client, clock=lambda: now[0]
    )
    hold = budgets.reserve("acme", P, M, 100, 10)
    assert hold.day == "20260301"
    with pytest.raises(BudgetExceededError):
        budgets.reserve("acme", P, M, 100, 10)
    now[0] += 2  # 00:00:01 UTC: a new day, a new budget
    assert budgets.reserve("acme", P, M, 100, 10).day == "20260302"
    budgets.settle(hold, response(50, 10))  # a call is settled on the day it was reserved on
    assert budgets.usage("acme", "20260301").tokens == 60
    requests, day, _holds = tenant_keys(budgets.prefix, "acme", "20260301")
    assert 0 < redis_client.ttl(requests) <= 120 and 0 < redis_client.ttl(day) <= 2 * 86400
    assert 0 < redis_client.ttl(tenant_keys(budgets.prefix, "acme", "20260302")[2]) <= 2 * 86400


# -- Redis away ---------------------------------------------------------------------------------


def test_redis_down_degrades_to_local_mode_with_one_log_line(caplog):
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        budgets = TenantBudgets({"acme": TenantLimit(rpm=100, tokens_per_day=300)}, redis=client)
        first = budgets.reserve("acme", P, M, 100, 10)
        assert first.backend == "redis"
        server.stop()
        with caplog.at_level(logging.WARNING, logger="llm_orchestrator.resilience.budgets"):
            holds = [budgets.reserve("acme", P, M, 100, 10) for _ in range(3)]
            with pytest.raises(BudgetExceededError):  # limits still hold, counted in this process
                budgets.reserve("acme", P, M, 100, 10)
            budgets.settle(first, response(50, 10))  # its Redis hold cannot be settled: counted here
            for h in holds:
                budgets.release(h)
        assert {h.backend for h in holds} == {"memory"}
        degraded = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(degraded) == 1 and "tenant budgets" in degraded[0].getMessage()
    finally:
        server.cleanup()


def test_orchestrator_keeps_serving_tenants_while_redis_is_down(sim, caplog):
    dead = RedisServer()  # never started: nothing listens on its port
    try:
        o = orch(sim, dead.url, {"acme": {"rpm": 100, "tokens_per_day": 10_000}}, cost_tracking={"enabled": False})
        with caplog.at_level(logging.WARNING):
            o.send_request("hello", max_tokens=16, tenant="acme")
            o.send_request("hello", max_tokens=16, tenant="acme")
    finally:
        dead.cleanup()
    assert o._parts.budgets.usage("acme").tokens > 0
    assert sum("tenant budgets" in r.getMessage() for r in caplog.records) == 1
