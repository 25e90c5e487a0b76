"""``jobs.sweep_outbox``: re-send jobs whose message the broker lost (beat runs it every minute).

See ``worker.outbox`` for why a message can vanish and how the sweep finds it. Per broker: on
Redis it scans the broker's queues (in REDIS_URL's Redis, or CELERY_BROKER_URL's when that is
another one), re-sends and restores; on RabbitMQ it never re-sends or restores (the broker keeps
its confirmed messages until they are acked) and only closes finished jobs' records.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from worker import outbox, producer, resources, settings
from worker.app import celery_app

_broker_clients: dict[str, Any] = {}


def sweep_once() -> dict[str, Any]:
    """One sweep with the configured thresholds (the chaos soak calls ``outbox.sweep`` with shorter ones)."""
    url = celery_app.conf.broker_url
    broker = settings.broker_kind(url)
    report = outbox.sweep(
        resources.redis_client(),
        producer.publish,
        settings.QUEUES,
        settings.KEY_PREFIX,
        older_than=settings.OUTBOX_STALE_SECONDS,
        confirm_after=settings.OUTBOX_SWEEP_SECONDS,
        restore=restore_unacked,
        hold_grace=settings.JOB_LEASE_SECONDS,
        broker=broker,
        broker_client=broker_redis(url) if broker == settings.REDIS else None,
    )
    return report.as_dict()


def broker_redis(url: str) -> Any:
    """A client on the broker's Redis when it is not REDIS_URL's (None when it is: the same client)."""
    if url == settings.redis_url():
        return None
    if url not in _broker_clients:
        from llm_orchestrator.redis_client import build

        _broker_clients[url] = build(url, socket_connect_timeout=5, socket_timeout=30)
    return _broker_clients[url]


def restore_unacked(tag: str, app: Any = None) -> None:
    """Put an unacked message back on its queue now (kombu's own restore, as after the visibility timeout).

    Redis broker only: RabbitMQ returns an unacked message to its queue itself when the holder's
    channel closes (the sweep never calls this on an amqp broker).
    """
    with (app or celery_app).connection_for_write() as conn:
        conn.default_channel.qos.restore_by_tag(tag)


@celery_app.task(name="jobs.sweep_outbox", bind=True, acks_late=True, soft_time_limit=120, time_limit=150)
def sweep_outbox(self: Task) -> dict[str, Any]:
    """Re-publish open jobs that are in no queue, not running and have no result (see ``worker.outbox``)."""
    return {"job_id": self.request.id, "status": "succeeded", **sweep_once()}
