"""Redis outages: a worker started before Redis, a restart mid-run, degraded breaker and limiter.

Each test has its own ``redis-server`` with AOF (``appendonly yes``, ``appendfsync everysec``, as
production should run it) and its own Celery app object bound to it, so nothing here touches the
session's Redis or the shared ``worker.app`` connection pool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from llm_orchestrator.exceptions import LLMOrchestratorError
from tests.conftest import make_config
from tests.redis_server import RedisServer
from tests.worker_fixtures import WorkerProcess, worker_env, write_config
from worker import outbox, settings
from worker.keys import JOB_RESULT


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server with AOF on a free port; not started (tests decide when)."""
    server = RedisServer(appendonly=True, appendfsync="everysec")
    try:
        yield server
    finally:
        server.cleanup()


def celery_app_for(url: str) -> Celery:
    """A producer-side Celery app with the worker's settings, bound to ``url``."""
    app = Celery("llm_orchestrator_outage_test")
    app.conf.update(settings.celery_config())
    app.conf.broker_url = app.conf.result_backend = url
    return app


def wait_for_log(worker: WorkerProcess, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = worker.log_path.read_text(errors="replace")
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the worker log:\n{worker.log()}")


def wait_results(client: redis.Redis, job_ids: list[str], timeout: float) -> list[dict]:
    """Every job's result dict, read from its result key (fails with what is still in flight)."""
    keys = [JOB_RESULT.format(job_id=i) for i in job_ids]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        values = client.mget(keys)
        if all(v is not None for v in values):
            return [json.loads(v) for v in values]
        time.sleep(0.5)
    missing = [i for i, v in zip(job_ids, client.mget(keys)) if v is None]
    state = {k: client.type(k).decode() for k in client.keys("llmorch:unacked*")}
    raise AssertionError(
        f"{len(missing)} jobs without a result after {timeout}s: {missing[:3]}; "
        f"unacked keys {state}, unacked={client.hlen('llmorch:unacked')}, "
        f"mutex ttl={client.ttl('llmorch:unacked_mutex')}, "
        f"queued={client.llen('llmorch:llm.interactive')}"
    )


def complete(app: Celery, prompt: str, provider: str = "openai") -> object:
    return app.send_task("llm.complete", kwargs={"payload": {"prompt": prompt, "provider": provider, "max_tokens": 32}})


def complete_recorded(app: Celery, client: redis.Redis, prompt: str, provider: str) -> str:
    """As ``worker.producer`` submits a job: published, then recorded in the outbox."""
    payload = {"prompt": prompt, "provider": provider, "max_tokens": 32}
    job_id = app.send_task("llm.complete", kwargs={"payload": payload}).id
    pipe = client.pipeline()
    outbox.record(pipe, job_id, "llm.complete", payload, None, "<prompt>")
    pipe.execute()
    return job_id


def sweeping(app: Celery, client: redis.Redis, stop: threading.Event, republished: list[str]) -> threading.Thread:
    """Beat's outbox sweep every second, with the clock 10 minutes ahead (a job counts as stale at once)."""

    def publish(job_id: str, task: str, payload: dict, queue: str | None, summary: str) -> None:
        republished.append(job_id)
        app.send_task(task, kwargs={"payload": payload}, task_id=job_id, queue=queue)

    def run() -> None:
        while not stop.wait(1.0):
            try:
                outbox.sweep(
                    client,
                    publish,
                    settings.QUEUES,
                    settings.KEY_PREFIX,
                    older_than=60,
                    confirm_after=30,
                    now=time.time() + 600,
                )
            except redis.RedisError:
                pass  # Redis is restarting; beat would log and try at the next tick

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_worker_started_while_redis_is_down_waits_then_serves_jobs(sim, aof_redis, tmp_path):
    config = write_config(tmp_path / "config.yaml", sim, aof_redis.url)
    worker = WorkerProcess(worker_env(config, aof_redis.url), tmp_path, concurrency=1).launch()
    try:
        log = wait_for_log(worker, "Cannot connect to redis://", 60)
        assert "Trying again in" in log  # the clear line: where it tried, and that it keeps trying
        time.sleep(1)
        assert worker.proc is not None and worker.proc.poll() is None  # still alive, still waiting
        aof_redis.start()
        app = celery_app_for(aof_redis.url)
        worker.wait_ready(app, timeout=90)
        result = complete(app, "served after the outage").get(timeout=60)
        assert result["status"] == "succeeded"
    finally:
        worker.stop()


@pytest.mark.slow
def test_redis_restart_mid_run_loses_nothing(sim, aof_redis, tmp_path):
    aof_redis.start()
    app = celery_app_for(aof_redis.url)
    config = write_config(tmp_path / "config.yaml", sim, aof_redis.url)
    worker = WorkerProcess(worker_env(config, aof_redis.url), tmp_path, concurrency=2).start(app)
    client = redis.Redis.from_url(aof_redis.url)
    stop, republished = threading.Event(), []
    try:
        sim.set_latency("*", 200)  # jobs are queued and in flight when Redis goes away
        providers = ("openai", "anthropic", "gemini")
        ids = [complete_recorded(app, client, f"through a restart {i}", providers[i % 3]) for i in range(40)]
        jobs = [app.AsyncResult(i) for i in ids]
        deadline = time.monotonic() + 60
        while sum(client.exists(JOB_RESULT.format(job_id=j.id)) for j in jobs) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Deployed as the README says, beat sweeps the outbox: kombu's Redis transport can lose a message
        # popped just before Redis stops (BRPOP, then the unacked write); the sweep sends it again.
        sweeping(app, client, stop, republished)
        aof_redis.restart(down_seconds=3)
        results = wait_results(client, [j.id for j in jobs], timeout=120)
        assert len(republished) <= 2, republished  # at most the messages in transit at the stop
        assert [r["status"] for r in results] == ["succeeded"] * len(jobs), [
            r for r in results if r["status"] != "succeeded"
        ][:2]
        rows = CostTracker(CostTrackingConfig(log_path=None), redis=client).records()
        per_job = Counter(r.job_id for r in rows)
        assert per_job == Counter(j.id for j in jobs)  # exactly one ledger row per job, none lost
        # A call answered while Redis was away could not be written to the ledger; its job ran again once
        # Redis returned, so the provider billed it twice (at most one per child in flight), the ledger once.
        assert len(jobs) <= sim.count(status=200) <= len(jobs) + 2
        assert not client.keys("llmorch:job:*:lease")
    finally:
        stop.set()
        worker.stop()


def test_breaker_and_limiter_degrade_to_local_mode_while_redis_is_away(sim, aof_redis, caplog):
    aof_redis.start()
    cfg = make_config(
        sim,
        "openai",
        breaker={"min_calls": 2, "failure_rate": 0.5, "open_seconds": 30, "window_seconds": 60},
        retry={"max_attempts": 1, "base_delay": 0, "max_delay": 0, "deadline": 10, "max_inline_wait": 1},
    )
    cfg["providers"]["openai"]["rate_limit"] = {"rpm": 1000}
    cfg["redis"] = {"url": aof_redis.url}
    # Here only the breaker and the limiter are under test (the ledger's spool: tests/test_ledger_spool.py).
    cfg["cost_tracking"] = {"enabled": False, "log_path": None}
    client = redis.Redis.from_url(aof_redis.url, socket_connect_timeout=0.2, socket_timeout=0.5)
    orch = LLMOrchestrator(ConfigManager.from_dict(cfg).config, redis=client)
    assert orch.send_request("with redis").content
    aof_redis.stop()
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator"):
        for i in range(3):
            assert orch.send_request(f"redis away {i}").content  # limiter and breaker run in memory
        sim.add_fault(provider="openai", status=503)  # every model fails from now on
        for _ in range(3):
            with pytest.raises(LLMOrchestratorError):
                orch.send_request("failing")
        calls = sim.count()
        with pytest.raises(LLMOrchestratorError):  # every model's in-memory breaker is open: fail fast
            orch.send_request("fails fast")
        assert sim.count() == calls  # no provider call while open
    degraded = [r.message for r in caplog.records if "Redis unreachable" in r.message]
    assert any("call gate" in m for m in degraded)  # breaker, limiter, budgets and ledger: one gate
    assert len(degraded) <= 4  # one line per component per interval, not one per request
    aof_redis.start()
    assert redis.Redis.from_url(aof_redis.url).ping()


def test_an_answer_paid_for_while_redis_went_away_is_reused_not_bought_again(sim, aof_redis):
    """Redis stops during the provider call: the answer is returned and its row spooled; a second run
    of the same job and attempt (Redis back) takes the kept answer: one bill, one ledger row."""
    aof_redis.start()
    cfg = make_config(
        sim, "openai", retry={"max_attempts": 1, "base_delay": 0, "max_delay": 0, "deadline": 10, "max_inline_wait": 1}
    )
    cfg["redis"] = {"url": aof_redis.url}
    client = redis.Redis.from_url(aof_redis.url, socket_connect_timeout=0.2, socket_timeout=0.5)
    orch = LLMOrchestrator(ConfigManager.from_dict(cfg).config, redis=client)
    sim.set_latency("*", 600)
    stopper = threading.Timer(0.2, aof_redis.stop)
    stopper.start()
    first = orch.send_request("paid while redis stops", job_id="job-kept", attempt=0)
    stopper.join()
    assert first.content and sim.count() == 1  # the paid answer is returned, its row spooled
    aof_redis.start()
    again = orch.send_request("paid while redis stops", job_id="job-kept", attempt=0)
    assert again.content and sim.count() == 1  # no second call
    rows = [r for r in CostTracker(CostTrackingConfig(log_path=None), redis=client).records() if r.job_id == "job-kept"]
    assert len(rows) == 1 and rows[0].cost_usd == again.cost_usd
    orch.send_request("paid while redis stops", job_id="job-kept", attempt=1)
    assert sim.count() == 2  # another attempt is a new call (the worker decides when to retry)
