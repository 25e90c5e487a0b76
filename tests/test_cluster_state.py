"""Library state on a real Redis Cluster: the call gate, the ledger, tenant budgets, the registry.

On a cluster the gate runs each component's own script (one hash slot each); the behaviour must be
the single Redis's: same answers, the ledger written once per (job_id, attempt), budgets enforced
across two orchestrators (two processes' worth of state), the model cache shared.
"""

from __future__ import annotations

import asyncio

import pytest

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.exceptions import BudgetExceededError
from tests.conftest import make_config

TENANTS = {"acme": {"rpm": 1000, "cost_per_day_usd": "0.001"}}


def _orch(sim, url: str) -> LLMOrchestrator:
    cfg = make_config(sim, "openai", redis={"url": url, "cluster": True}, tenants=TENANTS)
    cfg["providers"]["openai"]["rate_limit"] = {"rpm": 1000, "tpm": 10**8}
    return LLMOrchestrator(ConfigManager.from_dict(cfg).config)


def test_every_path_works_on_a_cluster_and_bills_once(sim, cluster_client, redis_cluster_url):
    o = _orch(sim, redis_cluster_url)
    assert o._call.gate.cluster
    r = o.send_request("hello", max_tokens=16, job_id="c1", session_id="cs")
    streamed = list(o.send_streaming_request("hello", max_tokens=16, job_id="c2", session_id="cs"))[-1].response
    asynced = asyncio.run(o.asend_request("hello", max_tokens=16, job_id="c3", session_id="cs"))
    again = o.send_request("hello", max_tokens=16, job_id="c1", session_id="cs")  # same job and attempt
    assert r.content and streamed.content and asynced.content and again.content
    rows = o.cost_tracker.records()
    assert sorted(x.job_id for x in rows) == ["c1", "c2", "c3"]  # the repeat of c1 is not billed twice
    assert o.cost_tracker.get_session_cost("cs") == sum(x.cost_usd for x in rows)
    assert o.cost_tracker.pending(older_than=0) == {}


def test_a_tenant_budget_holds_across_orchestrators_on_a_cluster(sim, cluster_client, redis_cluster_url):
    first, second = _orch(sim, redis_cluster_url), _orch(sim, redis_cluster_url)
    spent = 0
    with pytest.raises(BudgetExceededError):
        for i in range(200):
            (first if i % 2 else second).send_request("hello " * 50, max_tokens=64, tenant="acme")
            spent += 1
    assert 0 < spent < 200
    assert sim.count(provider="openai", status=200) == spent  # refused before any provider call


def test_the_breaker_is_shared_on_a_cluster(sim, cluster_client, redis_cluster_url):
    from llm_orchestrator.exceptions import AllFallbacksFailedError

    cfg = make_config(
        sim,
        "openai",
        fallbacks=[],
        redis={"url": redis_cluster_url, "cluster": True},
        breaker={"min_calls": 2, "failure_rate": 0.5, "open_seconds": 30},
        retry={"max_attempts": 1},
    )
    one, two = (LLMOrchestrator(ConfigManager.from_dict(cfg).config) for _ in range(2))
    sim.add_fault(provider="openai", status=503, count=2)
    for o in (one, two):
        with pytest.raises(AllFallbacksFailedError):
            o.send_request("fail")
    calls = sim.count()
    with pytest.raises(AllFallbacksFailedError) as info:
        one.send_request("fails fast")
    assert info.value.attempts[-1]["error_type"] == "CircuitOpenError" and sim.count() == calls


def test_the_model_registry_is_shared_on_a_cluster(sim, cluster_client, redis_cluster_url):
    o = _orch(sim, redis_cluster_url)
    o.registry.refresh_models("openai")
    other = _orch(sim, redis_cluster_url)
    assert {m.id for m in other.registry.list_models("openai")} == {m.id for m in o.registry.list_models("openai")}
