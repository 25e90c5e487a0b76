"""``jobs.sweep_outbox``: re-send jobs whose message the broker lost (beat runs it every minute).

See ``worker.outbox`` for why a message can vanish and how the sweep finds it.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from worker import outbox, producer, resources, settings
from worker.app import celery_app


def sweep_once() -> dict[str, Any]:
    """One sweep with the configured thresholds (the chaos soak calls ``outbox.sweep`` with shorter ones)."""
    report = outbox.sweep(resources.redis_client(), producer.publish, settings.QUEUES, settings.KEY_PREFIX,
                          older_than=settings.OUTBOX_STALE_SECONDS, confirm_after=settings.OUTBOX_SWEEP_SECONDS,
                          restore=restore_unacked, hold_grace=settings.JOB_LEASE_SECONDS)
    return report.as_dict()


def restore_unacked(tag: str) -> None:
    """Put an unacked message back on its queue now (kombu's own restore, as after the visibility timeout)."""
    with celery_app.connection_for_write() as conn:
        conn.default_channel.qos.restore_by_tag(tag)


@celery_app.task(name="jobs.sweep_outbox", bind=True, acks_late=True, soft_time_limit=120, time_limit=150)
def sweep_outbox(self: Task) -> dict[str, Any]:
    """Re-publish open jobs that are in no queue, not running and have no result (see ``worker.outbox``)."""
    return {"job_id": self.request.id, "status": "succeeded", **sweep_once()}
