"""The job worker with its state on a real Redis Cluster (``REDIS_CLUSTER=1``) and RabbitMQ as the broker.

The cluster (three masters, started by the suite) holds the breaker, limiter, ledger, leases, the
outbox and every job's result; Celery has no result backend there (it cannot use a cluster), and
the broker is a RabbitMQ vhost of this run's own (skipped, saying why, without RabbitMQ). Real
worker processes, real SDKs against the simulator.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from llm_orchestrator.redis_client import build
from tests.conftest import ROOT
from tests.worker_fixtures import (  # noqa: F401 - fixtures
    WorkerProcess,
    amqp_app,
    amqp_vhost,
    worker_env,
    write_config,
)
from worker import outbox, settings
from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_MSG, OUTBOX_OPEN


@pytest.fixture(scope="module")
def cluster_stack(simulator, redis_cluster_url, amqp_vhost, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One worker with REDIS_URL = the cluster's seed node and REDIS_CLUSTER=1, its broker on RabbitMQ;
    the in-process producer switched to the same cluster and broker for the module."""
    import os

    from worker import producer

    tmp = tmp_path_factory.mktemp("worker-cluster")
    config = write_config(tmp / "config.yaml", simulator, redis_cluster_url)
    text = config.read_text().replace(f"url: {redis_cluster_url}", f"url: {redis_cluster_url}\n  cluster: true")
    config.write_text(text)
    saved_env = {k: os.environ.get(k) for k in ("REDIS_URL", settings.CLUSTER_ENV)}
    os.environ.update(REDIS_URL=redis_cluster_url, **{settings.CLUSTER_ENV: "1"})
    app = amqp_app(amqp_vhost.url)
    shared_app, shared_clients = producer.celery_app, dict(producer._client)
    producer.celery_app = app
    producer._client.clear()
    env = worker_env(config, redis_cluster_url, CELERY_BROKER_URL=amqp_vhost.url, **{settings.CLUSTER_ENV: "1"})
    client = build(redis_cluster_url, cluster=True)
    worker = None
    try:
        worker = WorkerProcess(env, tmp, queues="llm.interactive,llm.batch").start(app)
        yield {
            "producer": producer,
            "app": app,
            "worker": worker,
            "env": env,
            "tmp": tmp,
            "client": client,
            "url": redis_cluster_url,
        }
    finally:
        if worker is not None:
            worker.stop()
        producer.celery_app = shared_app
        producer._client.clear()
        producer._client.update(shared_clients)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        client.close()


def ledger_rows(client: Any, job_id: str) -> list[Any]:
    tracker = CostTracker(CostTrackingConfig(log_path=None), redis=client)
    return [r for r in tracker.records() if r.job_id == job_id]


# -- settings ----------------------------------------------------------------------------------------


def test_on_a_cluster_celery_has_no_result_backend_and_the_cluster_cannot_be_the_broker(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:7000/0")
    monkeypatch.setenv(settings.CLUSTER_ENV, "1")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    assert settings.celery_config()["result_backend"] is None
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")  # a separate, plain Redis: fine
    assert settings.celery_config()["broker_url"] == "redis://127.0.0.1:6379/2"
    monkeypatch.delenv("CELERY_BROKER_URL")
    with pytest.raises(ValueError, match="a Redis Cluster cannot be Celery's broker"):
        settings.celery_config()


def test_a_worker_whose_config_says_cluster_without_redis_cluster_set_refuses_to_start(tmp_path, simulator, redis_url):
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    config.write_text(config.read_text().replace(f"url: {redis_url}", f"url: {redis_url}\n  cluster: true"))
    env = worker_env(config, redis_url)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "worker",
            "-P",
            "solo",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert f"redis.cluster: true but {settings.CLUSTER_ENV} is not set" in proc.stderr + proc.stdout


# -- jobs end to end with the state on the cluster ------------------------------------------------------


def test_completion_jobs_store_results_and_one_ledger_row_each_on_the_cluster(cluster_stack, sim):
    p, client = cluster_stack["producer"], cluster_stack["client"]
    providers = ["openai", "anthropic", "gemini"]
    jobs = [p.submit_completion(f"cluster question {i}", provider=providers[i % 3], tenant="acme") for i in range(12)]
    results = [j.get(timeout=120) for j in jobs]
    assert all(r["status"] == "succeeded" for r in results), [r for r in results if r["status"] != "succeeded"][:2]
    assert all(j.status == "SUCCESS" for j in jobs)
    # A record the producer wrote after its job had finished (allowed on a cluster: another slot)
    # is closed by the next sweep, and the worker's close follows its result write: sweep, then wait.
    outbox.sweep(
        client, p.publish, settings.QUEUES, settings.KEY_PREFIX, older_than=0, confirm_after=0, broker=settings.AMQP
    )
    until = time.monotonic() + 10
    while any(client.zscore(OUTBOX_OPEN, j.id) is not None for j in jobs) and time.monotonic() < until:
        time.sleep(0.05)
    for j in jobs:
        assert client.exists(JOB_RESULT.format(job_id=j.id)) and not client.exists(JOB_LEASE.format(job_id=j.id))
        assert client.zscore(OUTBOX_OPEN, j.id) is None and client.hget(OUTBOX_MSG, j.id) is None
        assert len(ledger_rows(client, j.id)) == 1


def test_streaming_and_classify_batch_jobs_on_the_cluster(cluster_stack, sim):
    p = cluster_stack["producer"]
    job = p.submit_completion("stream through the cluster", provider="anthropic", stream=True)
    items = list(p.stream_job(job.id, timeout=30))
    assert isinstance(items[-1], dict) and items[-1]["status"] == "succeeded"
    signals = [
        {"id": "c1", "text": "The app crashes every time I open settings"},
        {"id": "c2", "text": "We would like to add 200 more seats next quarter"},
    ]
    result = p.submit_classification_batch(signals, tenant="acme").get(timeout=60)
    assert result["status"] == "succeeded" and [r["id"] for r in result["results"]] == ["c1", "c2"]


def test_a_duplicate_delivery_on_the_cluster_runs_the_provider_once(cluster_stack, sim):
    sim.set_latency("openai", 1500)
    app, job_id, client = cluster_stack["app"], str(uuid.uuid4()), cluster_stack["client"]
    payload = {"payload": {"prompt": "only once on the cluster", "max_tokens": 64}}
    app.send_task("llm.complete", kwargs=payload, task_id=job_id)
    time.sleep(0.5)
    app.send_task("llm.complete", kwargs=payload, task_id=job_id)  # its twin finds the lease, then the result
    result = cluster_stack["producer"].JobHandle(job_id).get(timeout=60)
    assert result["status"] == "succeeded"
    # the twin found the lease and went back to the broker (a countdown of the lease's life)
    cluster_stack["worker"].wait_for_log(f"llm.complete[{job_id}] retry: Retry in")
    assert len(ledger_rows(client, job_id)) == 1
    assert sim.count(provider="openai", status=200) == 1


def test_an_outbox_record_of_a_job_that_finished_first_is_closed_by_the_sweep_never_resent(cluster_stack, sim):
    """On a cluster the producer records the job without checking for its result (another slot): a
    record written after the job finished is closed by the next sweep, which finds the result."""
    p, client = cluster_stack["producer"], cluster_stack["client"]
    job = p.submit_completion("finish before the record", provider="gemini")
    assert job.get(timeout=60)["status"] == "succeeded"
    # On a cluster the worker closes the producer's record in a second command after the result:
    # wait for that close, or it would delete the record planted below.
    until = time.monotonic() + 10
    while client.zscore(OUTBOX_OPEN, job.id) is not None and time.monotonic() < until:
        time.sleep(0.05)
    pipe = client.pipeline()
    outbox.record(pipe, job.id, "llm.complete", {"prompt": "x"}, None, "<summary>", now=time.time() - 600, cluster=True)
    pipe.execute()
    report = outbox.sweep(
        client, p.publish, settings.QUEUES, settings.KEY_PREFIX, older_than=60, confirm_after=0, broker=settings.AMQP
    )
    assert report.finished >= 1 and not report.republished
    assert client.zscore(OUTBOX_OPEN, job.id) is None and client.hget(OUTBOX_MSG, job.id) is None
