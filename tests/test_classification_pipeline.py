"""The classifier end to end on the simulator: cascade, batching, result cache, checkpoints, cost."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis as redis_lib

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.classification.categories import LABELS
from llm_orchestrator.classification.pipeline import SignalClassifier, classify_signal
from llm_orchestrator.classification.prompt import system_prompt
from llm_orchestrator.exceptions import AllFallbacksFailedError
from llm_orchestrator.simulator.responder import GARBLE_IN_BATCH
from tests.conftest import ROOT, make_config

CHEAP, TOP = "gpt-6-luna", "gpt-6-sol"
# The simulator answers by its own keyword table (see simulator/responder.py): these two are
# clear to it (confidence 0.95 on every model), the vague ones get 0.6 (0.45 from a cheap model).
CLEAR = ["The export has an error and the page is broken", "We will cancel and move to a competitor"]
VAGUE = ["The dashboard looks different today", "Saw the new colours on the landing page"]
CASCADE = {"openai": [{"model": CHEAP, "accept_at": 0.8}, {"model": TOP}]}


def classifier(sim, redis_url=None, fallbacks=None, **classification) -> SignalClassifier:
    settings = {"keyword_stage": False, "cascade": CASCADE, **classification}
    cfg = make_config(sim, "openai", fallbacks=fallbacks if fallbacks is not None else [], classification=settings)
    if redis_url:
        cfg["redis"] = {"url": redis_url}
    return SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config))


def pairs(texts):
    return [(f"id{i}", t) for i, t in enumerate(texts)]


def test_cascade_keeps_confident_cheap_answers_and_escalates_the_rest(sim):
    run = classifier(sim).classify(pairs(CLEAR + VAGUE))
    by_id = {r.id: r for r in run.results}
    assert [by_id[f"id{i}"].models for i in range(4)] == [[CHEAP], [CHEAP], [CHEAP, TOP], [CHEAP, TOP]]
    assert by_id["id0"].category == "bug_report" and by_id["id1"].category == "churn_risk"
    assert by_id["id2"].confidence == 0.6 and all(r.stage == "llm" for r in run.results)
    # one batch of four on the cheap model, one batch of two on the top model: never another provider
    assert sim.count(model=CHEAP) == 1 and sim.count(model=TOP) == 1 and sim.count() == 2


def test_costs_add_up_exactly_across_stages_and_batch_shares(sim):
    orch_classifier = classifier(sim)
    run = orch_classifier.classify(pairs(CLEAR + VAGUE))
    calls = sum(r.cost_usd for r in run.responses)
    assert calls > 0 and sum(r.cost_usd for r in run.results) == calls
    ledger = sum(rec.cost_usd for rec in orch_classifier.orch.cost_tracker.records())
    assert ledger == calls
    escalated = [r for r in run.results if len(r.models) == 2]
    assert all(r.cost_usd > max(x.cost_usd for x in run.results if len(x.models) == 1) for r in escalated)


def test_each_result_carries_its_latency_token_share_and_a_timestamp(sim):
    from datetime import datetime, timedelta, timezone

    sim.set_latency("openai", 40)
    run = classifier(sim).classify(pairs(CLEAR + VAGUE + CLEAR[:1]))  # the last one repeats the first
    calls = sum(r.prompt_tokens + r.completion_tokens for r in run.responses)
    cached = sum(r.cached_tokens for r in run.responses)
    asked = [r for r in run.results if r.stage == "llm"]
    assert calls > 0 and sum(r.tokens_used for r in asked) == calls and sum(r.cached_tokens for r in asked) == cached
    escalated = [r for r in asked if len(r.models) == 2]
    assert all(r.latency_ms >= 80 for r in escalated) and all(r.latency_ms >= 40 for r in asked)  # 2 calls, 1 call
    repeat = run.results[-1]
    assert repeat.stage == "cache" and (repeat.latency_ms, repeat.tokens_used, repeat.cached_tokens) == (0, 0, 0)
    now = datetime.now(timezone.utc)
    for r in run.results:
        assert now - timedelta(seconds=60) < datetime.fromisoformat(r.timestamp) <= now
        assert {"latency_ms", "tokens_used", "cached_tokens", "timestamp"} <= set(r.answer())


def test_a_garbled_batch_item_is_asked_again_alone_and_its_neighbours_keep_their_answers(sim):
    texts = [CLEAR[0], f"{GARBLE_IN_BATCH} {CLEAR[1]}", VAGUE[0]]
    run = classifier(sim, cascade={}).classify(pairs(texts))
    assert [r.batched for r in run.results] == [True, False, True]
    assert run.results[1].category == "churn_risk" and run.results[1].parse_error is None
    assert sim.count() == 2  # the batch, then the garbled item alone
    assert sum(r.cost_usd for r in run.results) == sum(r.cost_usd for r in run.responses)


def test_a_malformed_http_body_is_a_provider_error_not_a_parse_failure(sim):
    sim.add_fault("openai", "*", kind="malformed")
    with pytest.raises(AllFallbacksFailedError):
        classifier(sim, cascade={}).classify(pairs(CLEAR))


def test_batch_size_bounds_signals_per_call(sim):
    texts = [f"{CLEAR[0]} number {i}" for i in range(7)]
    classifier(sim, cascade={}, batch_size=3).classify(pairs(texts))
    assert sim.count() == 3  # 3 + 3 + 1


def test_result_cache_answers_repeats_without_a_call_and_at_zero_cost(sim, redis_client, redis_url):
    first = classifier(sim, redis_url).classify(pairs(VAGUE))
    calls = sim.count()
    again = classifier(sim, redis_url).classify(pairs(["  THE dashboard   looks different today ", VAGUE[1]]))
    assert sim.count() == calls  # another classifier (another worker) found both in Redis
    assert [r.stage for r in again.results] == ["cache", "cache"]
    assert [r.category for r in again.results] == [r.category for r in first.results]
    assert all(r.cost_usd == 0 for r in again.results) and again.responses == []


def test_duplicates_within_a_run_are_asked_once(sim):
    run = classifier(sim, cascade={}).classify(pairs([VAGUE[0], VAGUE[0].upper(), CLEAR[0]]))
    assert [r.stage for r in run.results] == ["llm", "cache", "llm"]
    assert run.results[1].category == run.results[0].category and run.results[1].cost_usd == 0
    assert sim.count() == 1


def test_cache_off_asks_every_time(sim):
    for _ in range(2):
        classifier(sim, cascade={}, cache_ttl_seconds=0).classify(pairs(VAGUE[:1]))
    assert sim.count() == 2


def test_a_retried_job_replays_its_successful_calls_and_never_pays_twice(sim, redis_client, redis_url):
    sim.add_fault("openai", TOP, status=500)
    clf = classifier(sim, redis_url, cache_ttl_seconds=0)
    with pytest.raises(AllFallbacksFailedError):
        clf.classify(pairs(CLEAR + VAGUE), job_id="job-1", attempt=0)
    assert sim.count(model=CHEAP, status=200) == 1
    sim.clear_faults()
    run = classifier(sim, redis_url, cache_ttl_seconds=0).classify(pairs(CLEAR + VAGUE), job_id="job-1", attempt=1)
    assert sim.count(model=CHEAP, status=200) == 1  # replayed from the checkpoint, not sent again
    assert sim.count(model=TOP, status=200) == 1
    ledger = clf.orch.cost_tracker.records()
    assert len(ledger) == 2 and sum(r.cost_usd for r in ledger) == sum(r.cost_usd for r in run.results)
    assert sorted((r.job_id, r.attempt) for r in ledger) == [("job-1:0", 0), ("job-1:1", 1)]


def test_cascade_is_per_provider_and_defaults_to_the_active_model(sim):
    cfg = make_config(sim, "anthropic", classification={"keyword_stage": False, "cascade": CASCADE})
    clf = SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config))
    assert [s.model for s in clf.stages] == ["claude-haiku-5-5"]
    clf.classify(pairs(VAGUE))
    assert sim.count(provider="openai") == 0 and sim.count(provider="anthropic") == 1


def test_keyword_stage_is_free_and_records_no_model(sim):
    cfg = make_config(sim, "openai")
    r = classify_signal(
        LLMOrchestrator(ConfigManager.from_dict(cfg).config), "The app crashes every time I open the settings page"
    )
    assert r.stage == "keyword" and r.category == "bug_report"
    assert r.cost_usd == Decimal(0) and r.models == [] and sim.count() == 0


def test_every_adversarial_item_gets_a_valid_label_and_no_prompt_leak(sim):
    rows = [json.loads(line) for line in (ROOT / "data" / "signals_adversarial.jsonl").read_text().splitlines()]
    cfg = make_config(sim, "openai", classification={"cascade": CASCADE})
    run = SignalClassifier(LLMOrchestrator(ConfigManager.from_dict(cfg).config)).classify(
        [(str(r.get("id", i)), r["text"]) for i, r in enumerate(rows)]
    )
    secret_lines = [line for line in system_prompt().splitlines() if len(line) > 40]
    for result in run.results:
        assert result.category in LABELS and 0 <= result.confidence <= 1
        assert not any(line in result.evidence for line in secret_lines)
        assert json.dumps(result.answer())


def test_redis_going_away_degrades_the_cache_not_the_run(sim):
    dead = "redis://127.0.0.1:1/0"
    clf = classifier(sim, cascade={})
    clf.cache._redis = redis_lib.Redis.from_url(dead, socket_connect_timeout=0.2)
    run = clf.classify(pairs(VAGUE[:1]))
    assert run.results[0].stage == "llm"
    assert clf.classify(pairs(VAGUE[:1])).results[0].stage == "cache"  # this process's memory meanwhile


def test_a_deadline_bounds_the_whole_run_not_each_call(sim):
    """A worker without Celery time limits (threads) bounds a job by this: three 0.6 s calls under a
    1 s budget stop after the second, not after 1.8 s of calls each within its own deadline."""
    from llm_orchestrator.exceptions import LLMOrchestratorError

    texts = [f"{CLEAR[0]} number {i}" for i in range(9)]
    sim.set_latency("*", 600)
    try:
        with pytest.raises(LLMOrchestratorError) as caught:
            classifier(sim, cascade={}, batch_size=3).classify(pairs(texts), deadline=1.0)
    finally:
        sim.set_latency("*", 0)
    assert caught.value.retryable  # the job layer tries again later (its answered calls are checkpointed)
    assert sim.count(status=200) <= 2
