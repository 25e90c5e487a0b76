"""Seed 000's toolkit surface: in-process metrics, a public cost calculator, cost tiers."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from llm_orchestrator import ConfigManager, LLMOrchestrator, calculate_cost
from llm_orchestrator.pricing import cost_tiers, load_prices
from tests.conftest import make_config


def test_get_metrics_counts_calls_cost_latency_cache_and_errors_without_redis(sim):
    o = LLMOrchestrator(
        ConfigManager.from_dict(make_config(sim, "openai", fallbacks=["gpt-6-sol"], retry={"max_attempts": 1})).config
    )
    assert o.get_metrics().total_requests == 0
    responses = [o.send_request("hello", max_tokens=16) for _ in range(3)]
    responses.append(asyncio.run(o.asend_request("hello", max_tokens=16)))
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503, count=1)
    responses.append(o.send_request("hello", max_tokens=16))  # one 503, then the fallback answers
    m = o.get_metrics()
    assert (m.total_requests, m.successful_requests, m.failed_requests) == (6, 5, 1)
    assert m.errors_by_type == {"ServerError": 1}
    assert m.total_cost_usd == sum(r.cost_usd for r in responses)
    assert m.total_tokens == sum(r.total_tokens for r in responses)
    assert 0 < m.p50_latency_ms <= m.p95_latency_ms <= m.p99_latency_ms
    d = m.to_dict()
    assert d["total_cost_usd"] == str(m.total_cost_usd) and d["total_requests"] == 6
    assert 0.0 <= d["cache_hit_rate"] <= 1.0


def test_calculate_cost_is_exact_and_prices_snapshots_at_their_family():
    cost = calculate_cost("anthropic", "claude-haiku-5-5", prompt_tokens=1000, completion_tokens=500, cached_tokens=900)
    rates = load_prices()[("anthropic", "claude-haiku-5-5")].rates
    expected = (100 * rates.input + 900 * rates.cached_input + 500 * rates.output) / Decimal(1_000_000)
    assert cost == expected.quantize(Decimal("0.000001"))
    assert calculate_cost("openai", "gpt-6-luna-2026-09-22", 1000, 100) == calculate_cost(
        "openai", "gpt-6-luna", 1000, 100
    )
    assert calculate_cost("openai", "no-such-model", 10, 10) is None


def test_cost_tiers_come_from_the_price_table():
    prices = load_prices()
    tiers = cost_tiers(prices)
    for provider in ("openai", "anthropic", "gemini"):
        mine = {m: t for (p, m), t in tiers.items() if p == provider}
        cheapest = min(mine, key=lambda m: prices[(provider, m)].rates.input + prices[(provider, m)].rates.output)
        dearest = max(mine, key=lambda m: prices[(provider, m)].rates.input + prices[(provider, m)].rates.output)
        assert mine[cheapest] == "cheap" and mine[dearest] == "top"
