"""The hot path's Redis cost, counted at the connection: two round trips per successful request,
and nothing blocking on the event loop in the async path."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.observability.round_trips import RoundTrips
from tests.conftest import make_config

TENANTS = {"acme": {"rpm": 100_000, "tokens_per_day": 10**9, "cost_per_day_usd": "1000"}}


def _orchestrator(sim, redis_url: str) -> LLMOrchestrator:
    """Everything on: breaker, provider and model limits, a tenant budget, the ledger, the stats stream."""
    cfg = make_config(sim, "openai", redis={"url": redis_url}, tenants=TENANTS)
    cfg["providers"]["openai"]["rate_limit"] = {"rpm": 100_000, "tpm": 10**9}
    cfg["providers"]["openai"]["model_rate_limits"] = {"gpt-6-luna": {"rpm": 100_000}}
    return LLMOrchestrator(ConfigManager.from_dict(cfg).config)


@pytest.mark.parametrize("stream", [False, True])
def test_a_successful_request_makes_two_round_trips(sim, redis_client, redis_url, stream):
    o = _orchestrator(sim, redis_url)
    o.send_request("warm up", max_tokens=8, tenant="acme", job_id="warm")  # connection, scripts, registry
    probe = RoundTrips()
    run = uuid.uuid4().hex[:8]
    with probe.counting():
        for i in range(5):
            if stream:
                list(o.send_streaming_request("count me", max_tokens=8, tenant="acme", job_id=f"{run}-{i}"))
            else:
                o.send_request("count me", max_tokens=8, tenant="acme", job_id=f"{run}-{i}")
    assert probe.total == 2 * 5
    rows = [r for r in o.cost_tracker.records() if r.job_id.startswith(run)]
    assert len(rows) == 5 and all(r.cost_micros for r in rows)  # billed: the ledger is in those two
    assert o.cost_tracker.pending(older_than=0) == {}
    assert redis_client.xlen("llmorch:stats:events") >= 6  # and the stats entries


def test_concurrent_async_requests_never_block_the_event_loop(sim, redis_client, redis_url):
    o = _orchestrator(sim, redis_url)
    probe = RoundTrips()

    async def requests() -> list[str]:
        first = await asyncio.gather(
            *(o.asend_request("a", max_tokens=8, tenant="acme", job_id=f"a{i}") for i in range(25))
        )
        streamed = []
        for i in range(5):
            chunks = [c async for c in o.asend_streaming_request("b", max_tokens=8, tenant="acme", job_id=f"b{i}")]
            streamed.append(chunks[-1].response)
        return [r.content for r in [*first, *streamed]]

    with probe.counting():  # from the very first call of a fresh orchestrator
        answers = asyncio.run(requests())
    assert len(answers) == 30 and all(answers)
    assert probe.sync_on_loop == 0 and probe.aio > 0
    assert len(o.cost_tracker.records()) == 30
