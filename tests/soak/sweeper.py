"""Beat's ``jobs.sweep_outbox`` played in the soak's own process, on a short period.

It calls ``worker.outbox.sweep`` as ``tasks.jobs.sweep_once`` does, with production's restore
(``tasks.jobs.restore_unacked``: kombu's ``restore_by_tag``) and the workers' job lease as the hold
grace, so it both re-sends a job the broker lost and puts back on its queue a job whose holder is
gone (SIGKILLed, or it lost the ack with its connection when Redis restarted). With production's
1,800 s visibility timeout nothing else brings such a job back during the soak.

With ``--broker amqp`` it sweeps as ``sweep_once`` does on RabbitMQ: it must never re-send or restore
(RabbitMQ keeps and redelivers its messages); it only closes finished jobs' records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.soak.stack import soak_job_lease_seconds

SWEEP_SECONDS = 5.0  # production: settings.OUTBOX_SWEEP_SECONDS (30)
STALE_SECONDS = 30.0  # production: settings.OUTBOX_STALE_SECONDS (120); here two soak job leases


class Sweeper:
    """One outbox sweep every ``SWEEP_SECONDS``; keeps the ids it re-sent and restored."""

    def __init__(
        self, client: Any, publish: Callable[..., None], restore: Callable[[str], None], broker: str = "redis"
    ) -> None:
        self.client, self.publish, self.restore, self.broker = client, publish, restore, broker
        self.with_broker = 0  # amqp: old open jobs the last sweep left to RabbitMQ
        self.hold_grace = soak_job_lease_seconds()
        self.next_at = time.monotonic() + SWEEP_SECONDS
        self.sweeps = 0
        self.failed_sweeps = 0  # Redis away
        self.republished: list[str] = []
        self.restored: list[str] = []

    def maybe_sweep(self, event: Callable[[str], None]) -> None:
        from kombu.exceptions import OperationalError

        from llm_orchestrator.redis_client import unreachable_errors
        from worker import outbox, settings

        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + SWEEP_SECONDS
        try:
            report = outbox.sweep(
                self.client,
                self.publish,
                settings.QUEUES,
                settings.KEY_PREFIX,
                older_than=STALE_SECONDS,
                confirm_after=SWEEP_SECONDS - 1,
                restore=self.restore,
                hold_grace=self.hold_grace,
                broker=self.broker,
            )
        except (*unreachable_errors(), OperationalError):
            self.failed_sweeps += 1
            return
        self.sweeps += 1
        self.with_broker = report.with_broker
        if report.restored:
            self.restored += report.restored
            event(
                f"outbox sweep restored {len(report.restored)} unacked jobs whose holder was gone "
                f"(no lease {self.hold_grace:g} s after delivery): {report.restored[:3]}"
            )
        if report.republished:
            self.republished += report.republished
            event(f"outbox sweep re-sent {len(report.republished)} jobs the broker lost: {report.republished[:3]}")

    def summary(self) -> str:
        unique = len(set(self.restored))
        return (
            f"{self.sweeps} ({self.failed_sweeps} met Redis away) / {len(self.restored)} restored "
            f"({unique} jobs) / {len(self.republished)} re-sent; hold grace {self.hold_grace:g} s"
            + (" (amqp: must stay 0 / 0)" if self.broker == "amqp" else "")
        )
