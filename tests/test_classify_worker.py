"""Classification through real Celery workers: ``llm.classify_batch`` and ``classify --via worker``."""

from __future__ import annotations

import json
from decimal import Decimal

import redis

from llm_orchestrator.cli import main
from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from tests.conftest import ROOT
from tests.worker_fixtures import stack  # noqa: F401 - fixture


def test_batch_job_answers_every_signal_and_its_cost_matches_the_ledger(stack, sim, redis_url):
    rows = [json.loads(line) for line in (ROOT / "data" / "signals_sample.jsonl").read_text().splitlines()[:40]]
    signals = [{"id": r["id"], "text": r["text"]} for r in rows]
    handle = stack["producer"].submit_classification_batch(signals, tenant="acme")
    result = handle.get(timeout=120)
    assert result["status"] == "succeeded", result
    assert [r["id"] for r in result["results"]] == [s["id"] for s in signals]
    llm = [r for r in result["results"] if r["stage"] == "llm"]
    assert llm and sim.count(status=200) < len(llm)  # several signals per call
    assert sum(Decimal(r["cost_usd"]) for r in result["results"]) == Decimal(result["cost"]["usd"])
    rows_of_job = [r for r in CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url))
                   .records() if r.job_id.startswith(handle.id + ":")]
    assert len(rows_of_job) == len(result["call_latencies_ms"]) == sim.count(status=200)
    assert sum(r.cost_usd for r in rows_of_job) == Decimal(result["cost"]["usd"])
    assert {r.tenant for r in rows_of_job} == {"acme"}
    assert 0 <= result["cache_hit_rate"] <= 1


def test_cli_via_worker_classifies_the_sample_file(stack, sim, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    sample = ROOT / "data" / "signals_sample.jsonl"
    assert main(["--config", str(stack["config"]), "classify", str(sample), "--output", str(out),
                 "--via", "worker"]) == 0
    text = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and len({r["id"] for r in rows}) == 80
    assert "accuracy" in text and "per 1,000 signals" in text
    assert main(["--config", str(stack["config"]), "classify", str(sample), "--output", str(out),
                 "--via", "worker"]) == 0  # resumed: nothing left to do
    assert "80 already in" in capsys.readouterr().out


def test_a_bad_batch_payload_fails_clearly(stack):
    result = stack["producer"].submit_classification_batch([{"text": "x", "provider": "openai"}]).get(timeout=30)
    assert result["status"] == "failed" and result["error"]["type"] == "InvalidPayload"
    assert "signals.0.provider" in result["error"]["message"]


def test_batch_lane_job_polls_the_provider_batch_with_countdowns(stack, sim, redis_url):
    sim.set_batch_delay(1500)  # the first look finds the provider batch still running
    signals = [{"id": "v1", "text": "The dashboard looks different today"},
               {"id": "v2", "text": "Saw the new colours on the landing page"}]
    result = stack["producer"].submit_classification_batch(signals, lane="batch").get(timeout=120)
    assert result["status"] == "succeeded", result
    assert [r["id"] for r in result["results"]] == ["v1", "v2"]
    assert sim.count(batch=True) >= 1 and sim.count(batch=False) == 0
    rows = [r for r in CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url)).records()
            if r.job_id.startswith(result["job_id"])]
    assert rows and all(r.batch for r in rows)
    assert sum(r.cost_usd for r in rows) == Decimal(result["cost"]["usd"])
