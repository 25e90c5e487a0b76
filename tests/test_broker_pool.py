"""kombu's Redis transport keeps at most ``max_connections`` (default 10) connections per channel.

A gevent or threads worker acks from many task slots at once; past 10 the ack fails with
"Couldn't ack … Too many connections" (celery/celery#1350), the worker drops its broker
connection and the jobs it held wait for the visibility timeout. Seen in `make bench` with
``-P gevent -c 500``: a run stalled for 300 s.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from tests.worker_fixtures import WorkerProcess, amqp_app, worker_env, write_config
from worker.app import size_the_broker_pool
from worker.keys import JOB_RESULT


@pytest.mark.slow
def test_the_deployed_threads_worker_sizes_its_broker_pool_and_runs_jobs(sim, redis_url, redis_client, tmp_path):
    """The Procfile's interactive worker (-P threads -c 64), 100 jobs at once."""
    app = amqp_app(redis_url)
    config = write_config(tmp_path / "config.yaml", sim, redis_url)
    worker = WorkerProcess(worker_env(config, redis_url), tmp_path, concurrency=64, pool="threads").start(app)
    sim.set_latency("*", 200)
    try:
        [conf] = app.control.inspect(timeout=10).conf().values()
        assert conf["broker_transport_options"]["max_connections"] >= 64
        payload = {"prompt": "threads pool", "provider": "openai", "max_tokens": 16}
        ids = [app.send_task("llm.complete", kwargs={"payload": payload}).id for _ in range(100)]
        keys = [JOB_RESULT.format(job_id=i) for i in ids]
        deadline = time.monotonic() + 90
        while None in (values := redis_client.mget(keys)):
            assert time.monotonic() < deadline, f"{values.count(None)} of 100 jobs unfinished"
            time.sleep(0.2)
        assert {json.loads(v)["status"] for v in values} == {"succeeded"}
        assert "Too many connections" not in worker.log()
    finally:
        sim.set_latency("*", 0)
        worker.stop()


def test_the_pool_never_shrinks_below_kombus_default_and_amqp_is_left_alone(redis_url):
    small = amqp_app(redis_url)
    small.conf.broker_transport_options = {**small.conf.broker_transport_options, "max_connections": 50}
    size_the_broker_pool(SimpleNamespace(app=small, concurrency=2))
    assert small.conf.broker_transport_options["max_connections"] == 50  # an operator's larger cap stays
    amqp = amqp_app("amqp://guest:guest@127.0.0.1:5672//")
    size_the_broker_pool(SimpleNamespace(app=amqp, concurrency=500))
    assert "max_connections" not in amqp.conf.broker_transport_options
