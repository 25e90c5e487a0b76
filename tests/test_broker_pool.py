"""kombu's Redis transport keeps at most ``max_connections`` (default 10) connections per channel.

A gevent or threads worker acks from many task slots at once; past 10 the ack fails with
"Couldn't ack … Too many connections" (celery/celery#1350), the worker drops its broker
connection and the jobs it held wait for the visibility timeout. Seen in `make bench` with
``-P gevent -c 500``: a run stalled for 300 s.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import Celery

from tests.worker_fixtures import WorkerProcess, worker_env, write_config
from worker import settings
from worker.app import size_the_broker_pool


def _app(broker_url: str) -> Celery:
    app = Celery("broker_pool_test")
    app.conf.update(settings.celery_config())
    app.conf.broker_url = broker_url
    return app


@pytest.mark.slow
def test_a_threads_worker_runs_with_a_broker_pool_as_large_as_its_concurrency(sim, redis_url, tmp_path):
    app = _app(redis_url)
    config = write_config(tmp_path / "config.yaml", sim, redis_url)
    worker = WorkerProcess(worker_env(config, redis_url), tmp_path, concurrency=64, pool="threads").start(app)
    try:
        [conf] = app.control.inspect(timeout=10).conf().values()
        assert conf["broker_transport_options"]["max_connections"] >= 64
    finally:
        worker.stop()


def test_the_pool_never_shrinks_below_kombus_default_and_amqp_is_left_alone(redis_url):
    small = _app(redis_url)
    small.conf.broker_transport_options = {**small.conf.broker_transport_options, "max_connections": 50}
    size_the_broker_pool(SimpleNamespace(app=small, concurrency=2))
    assert small.conf.broker_transport_options["max_connections"] == 50  # an operator's larger cap stays
    amqp = _app("amqp://guest:guest@127.0.0.1:5672//")
    size_the_broker_pool(SimpleNamespace(app=amqp, concurrency=500))
    assert "max_connections" not in amqp.conf.broker_transport_options
