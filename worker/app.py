"""``celery_app``: ``celery -A worker.app worker|beat|flower``.

Importing this module builds the app object from settings; it connects to nothing and builds
no orchestrator (that happens per worker process, after fork: see ``worker.resources``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init

from worker import kombu_fix, settings

log = logging.getLogger(__name__)
DECLARE_CONNECT_RETRIES = 3
KOMBU_REDIS_POOL_DEFAULT = 10  # kombu.transport.redis.Channel.max_connections
BROKER_POOL_HEADROOM = 10  # the consumer, heartbeats and the pidbox beside one connection per task slot

kombu_fix.apply()  # kombu 5.7.0: a Redis restart must not exit the worker (see worker/kombu_fix.py)
celery_app = Celery("llm_orchestrator")
try:
    celery_app.conf.update(settings.celery_config())
except ValueError as e:  # a bad CELERY_BROKER_URL or REDIS_CLUSTER: one line at start, not a traceback
    raise SystemExit(f"worker settings: {e}") from None
celery_app.conf.include = ["tasks.llm", "tasks.costs", "tasks.jobs"]
app = celery_app  # `celery -A worker.app` finds either name


@worker_init.connect
def declare_every_queue(sender: Any = None, **_: Any) -> None:
    """RabbitMQ only: declare every task queue when a worker starts, also those it does not consume.

    Celery's native delayed delivery binds each task queue to its delay exchange at worker start,
    and a queue nobody declared yet cannot be bound ("Failed to setup delayed delivery"); a
    countdown/retry for a queue left unbound is dropped by the broker (celery/celery#9960).
    Declaring is idempotent. With RabbitMQ down the worker still starts (its consumer retries the
    connection) and this says so; a queue declared with other arguments (e.g. a classic queue of the
    same name) raises PRECONDITION_FAILED here, before any work is taken.
    """
    from kombu.exceptions import OperationalError

    app = getattr(sender, "app", None) or celery_app
    if settings.broker_kind(app.conf.broker_url) != settings.AMQP:
        return
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=DECLARE_CONNECT_RETRIES)
            channel = conn.channel()
            for queue in app.amqp.queues.values():
                queue(channel).declare()
            channel.close()
    except OperationalError as e:
        log.warning(
            "could not declare the task queues at start (%s): a queue no worker has declared gets no "
            "delayed-delivery binding until a worker starts with RabbitMQ up",
            e,
        )


@worker_init.connect
def size_the_broker_pool(sender: Any = None, **_: Any) -> None:
    """Redis broker only: let kombu's connection pool hold one connection per task slot.

    kombu keeps at most 10 connections per channel; a threads or gevent worker acks from many
    slots at once, and past 10 an ack fails with "Too many connections" (celery/celery#1350): the
    worker drops its broker connection and the jobs it held wait for the visibility timeout.
    Connections are opened on demand, so the larger cap costs nothing until it is used.
    """
    app = getattr(sender, "app", None) or celery_app
    concurrency = getattr(sender, "concurrency", None)
    if settings.broker_kind(app.conf.broker_url) != settings.REDIS or not isinstance(concurrency, int):
        return
    wanted = concurrency + BROKER_POOL_HEADROOM
    options = dict(app.conf.broker_transport_options or {})
    if wanted > options.get("max_connections", KOMBU_REDIS_POOL_DEFAULT):
        options["max_connections"] = wanted
        app.conf.broker_transport_options = options
