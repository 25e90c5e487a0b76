"""Redis configured but down: a paid answer is returned, its cost row spooled and replayed once.

What a user hits: ``redis.url`` set, Redis stopped, ``send_request`` (plain, stream, async; with
and without ``job_id``) must return the answer the provider billed, log the degradation once, and
once Redis is back the spooled rows land in the ledger exactly once per ``(job_id, attempt)`` —
on a later call or with ``llm-orch costs replay`` — and session totals are right.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import redis
import yaml

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.gate import SKIP_SECONDS
from llm_orchestrator.ledger_spool import LedgerSpool
from tests.conftest import ROOT, make_config
from tests.redis_server import RedisServer


@pytest.fixture
def down_redis(tmp_path):
    """A redis-server (AOF) on a free port, started and stopped by the test."""
    server = RedisServer(appendonly=True)
    try:
        yield server
    finally:
        server.cleanup()


def orchestrator(sim, server: RedisServer, spool) -> LLMOrchestrator:
    cfg = make_config(
        sim,
        "openai",
        redis={"url": server.url},
        cost_tracking={"enabled": True, "log_path": None, "spool_path": str(spool)},
    )
    return LLMOrchestrator(ConfigManager.from_dict(cfg).config)


def _calls(o: LLMOrchestrator, session: str) -> list[Decimal]:
    costs = [
        o.send_request("one", max_tokens=16, session_id=session).cost_usd,
        o.send_request("two", max_tokens=16, session_id=session, job_id="job-1", attempt=0).cost_usd,
    ]
    chunks = list(o.send_streaming_request("three", max_tokens=16, session_id=session, job_id="job-2"))
    costs.append(chunks[-1].response.cost_usd)
    costs.append(asyncio.run(o.asend_request("four", max_tokens=16, session_id=session, job_id="job-3")).cost_usd)
    return costs


def test_calls_with_redis_down_return_their_answers_and_spool_the_rows(sim, down_redis, tmp_path, caplog):
    spool = tmp_path / "spool.jsonl"
    o = orchestrator(sim, down_redis, spool)  # Redis never started: configured but down
    with caplog.at_level(logging.WARNING):
        costs = _calls(o, "s1")
    assert all(c is not None and c > 0 for c in costs)
    assert sim.count(provider="openai", status=200) == 4  # paid for, and returned
    assert len(LedgerSpool(spool).rows()) == 4
    degraded = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(degraded) == len(set(degraded)) <= 4, degraded  # once per component per interval, never per call

    down_redis.start()
    time.sleep(SKIP_SECONDS)  # after a Redis error the gate stays on memory this long
    o.send_request("five", max_tokens=16, session_id="s1")  # the first call with Redis back replays
    rows = o.cost_tracker.records()
    assert len(rows) == 5 and LedgerSpool(spool).rows() == []
    assert {(r.job_id, r.attempt) for r in rows if r.job_id} == {("job-1", 0), ("job-2", 0), ("job-3", 0)}
    assert o.cost_tracker.get_session_cost("s1") == sum(r.cost_usd for r in rows)


def test_a_session_total_read_after_redis_is_back_includes_this_processs_spooled_rows(sim, down_redis, tmp_path):
    """A job that re-runs after an outage (its answer now cached, no new call to trigger a replay)
    reads its total from the ledger: it must not miss the row its first run spooled. With Redis
    still away the total is an error, never a short figure."""
    spool = tmp_path / "spool.jsonl"
    o = orchestrator(sim, down_redis, spool)
    paid = o.send_request("one", max_tokens=16, session_id="job-9", job_id="job-9:0").cost_usd
    assert paid > 0 and len(LedgerSpool(spool).rows()) == 1
    with pytest.raises(redis.ConnectionError):
        o.cost_tracker.get_session_cost("job-9")
    down_redis.start()
    assert o.cost_tracker.get_session_cost("job-9") == paid
    assert LedgerSpool(spool).rows() == []


def test_a_session_total_includes_rows_another_orchestrator_on_this_host_spooled(sim, down_redis, tmp_path):
    """The worker's classifier and its completion orchestrator are separate objects, and pool children
    are separate processes; all share the host's spool file. A job re-run by another one must still
    count the row its first run spooled (the cluster soak saw a classify result of 0 USD for a job
    whose 110 micro-dollar row was in the spool of the process that ran it first)."""
    spool = tmp_path / "spool.jsonl"
    first, second = orchestrator(sim, down_redis, spool), orchestrator(sim, down_redis, spool)
    paid = first.send_request("one", max_tokens=16, session_id="job-7", job_id="job-7:0").cost_usd
    down_redis.start()
    assert second.cost_tracker.get_session_cost("job-7") == paid
    assert LedgerSpool(spool).rows() == []


def test_a_replay_interrupted_and_run_again_writes_each_row_once(sim, down_redis, tmp_path):
    spool = tmp_path / "spool.jsonl"
    o = orchestrator(sim, down_redis, spool)
    _calls(o, "s2")
    entries = LedgerSpool(spool).rows()
    down_redis.start()
    client = redis.Redis.from_url(down_redis.url)
    tracker = o.cost_tracker
    tracker.ledger.commit(entries[0]["row"], entries[0]["session_micros"])  # a replay cut after one row
    assert tracker.replay_spool() == 4
    assert tracker.replay_spool() == 0
    assert len(tracker.records()) == 4
    assert tracker.get_session_cost("s2") == sum(r.cost_usd for r in tracker.records())
    # a second answer for the same (job_id, attempt), e.g. a job re-run after the outage: not billed twice
    assert tracker.ledger.commit({**entries[1]["row"], "row_id": "another"}, 1)[0] is False
    client.close()


def test_costs_replay_command(sim, down_redis, tmp_path):
    spool = tmp_path / "spool.jsonl"
    cfg = make_config(
        sim,
        "openai",
        redis={"url": down_redis.url},
        cost_tracking={"enabled": True, "log_path": None, "spool_path": str(spool)},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    o = LLMOrchestrator(ConfigManager.load(path).config)
    o.send_request("spooled", max_tokens=16, job_id="job-cli")
    cli = [sys.executable, "-m", "llm_orchestrator.cli", "--config", str(path), "costs", "replay"]
    down = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert down.returncode != 0 and "Traceback" not in down.stderr and "unreachable" in down.stderr
    assert len(LedgerSpool(spool).rows()) == 1  # nothing lost
    down_redis.start()
    up = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert up.returncode == 0, up.stderr
    assert "replayed 1" in up.stdout
    assert [r.job_id for r in o.cost_tracker.records()] == ["job-cli"]
