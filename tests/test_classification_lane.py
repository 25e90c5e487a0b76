"""The classification batch lane on the simulator's batch endpoints, through the real SDKs."""

from __future__ import annotations

import pytest

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.classification.lane import LaneJob, Wait
from llm_orchestrator.classification.pipeline import SignalClassifier
from llm_orchestrator.pricing import from_micros, to_micros
from tests.conftest import make_config
from tests.test_classification_pipeline import CASCADE, CLEAR, VAGUE, pairs

PROVIDER_CASCADES = {
    "openai": CASCADE["openai"],
    "anthropic": [{"model": "claude-haiku-5-5", "accept_at": 0.8}, {"model": "claude-sonnet-5-5"}],
    "gemini": [{"model": "gemini-3.5-flash-lite", "accept_at": 0.8}, {"model": "gemini-3.8-flash"}],
}


def make(sim, provider="openai", redis_url=None) -> SignalClassifier:
    cfg = make_config(
        sim,
        provider,
        fallbacks=[],
        classification={
            "keyword_stage": False,
            "cache_ttl_seconds": 0,
            "cascade": {provider: PROVIDER_CASCADES[provider]},
        },
    )
    if redis_url:
        cfg["redis"] = {"url": redis_url}
    return SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config))


def drive(job: LaneJob, signals, steps: int = 20):
    waits = 0
    for _ in range(steps):
        out = job.step(signals)
        if not isinstance(out, Wait):
            return out, waits
        waits += 1
    raise AssertionError("the lane job did not finish")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_lane_gives_the_live_answers_at_the_batch_price(sim, provider):
    sim.set_batch_delay(0)
    signals = pairs(CLEAR + VAGUE)
    live = make(sim, provider).classify(signals)
    classifier = make(sim, provider)
    run, waits = drive(LaneJob(classifier, f"lane-{provider}", poll_seconds=0), signals)
    assert waits == 2  # one provider batch per cascade stage
    assert [(r.category, r.confidence, r.models) for r in run.results] == [
        (r.category, r.confidence, r.models) for r in live.results
    ]
    tracker = classifier.orch.cost_tracker
    for r in run.responses:  # every call billed at the batch price of its own usage
        assert r.cost_usd == from_micros(to_micros(tracker.price(r.usage, provider, r.model, batch=True)))
        assert r.cost_usd < tracker.price(r.usage, provider, r.model)
    assert sum(r.cost_usd for r in run.results) == sum(r.cost_usd for r in run.responses) > 0
    assert sim.count(provider=provider, batch=True) == 2  # one item per stage: 4 signals, then the 2 escalated


def test_lane_state_lives_in_redis_so_any_worker_takes_the_next_step(sim, redis_client, redis_url):
    sim.set_batch_delay(0)
    signals = pairs(CLEAR + VAGUE)
    assert isinstance(LaneJob(make(sim, redis_url=redis_url), "job-r", poll_seconds=0).step(signals), Wait)
    run, waits = drive(LaneJob(make(sim, redis_url=redis_url), "job-r", poll_seconds=0), signals)
    assert waits == 1 and len(run.results) == 4
    ledger = make(sim, redis_url=redis_url).orch.cost_tracker.records()
    assert len(ledger) == 2 and all(r.batch for r in ledger)
    assert sum(r.cost_usd for r in ledger) == sum(r.cost_usd for r in run.results)


def test_an_item_the_batch_failed_is_sent_live(sim):
    sim.set_batch_delay(0)
    sim.add_fault("openai", "gpt-6-luna", status=500, count=1)
    run, _ = drive(LaneJob(make(sim), "job-f", poll_seconds=0), pairs(CLEAR[:1] + VAGUE[:1]))
    assert all(r.category for r in run.results)
    assert sim.count(batch=False, status=200) == 1  # the failed batch item, asked live


def test_while_the_provider_batch_runs_a_step_only_asks_to_wait(sim):
    sim.set_batch_delay(60_000)
    job = LaneJob(make(sim), "job-w", poll_seconds=7)
    first = job.step(pairs(VAGUE))
    second = job.step(pairs(VAGUE))
    assert isinstance(first, Wait) and second == first and first.seconds == 7
