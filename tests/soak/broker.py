"""The soak's Celery broker: the state Redis (``--broker redis``, the default) or RabbitMQ (``--broker amqp``).

With ``amqp`` the workers and the producer use ``CELERY_BROKER_URL=amqp://…/<vhost>`` on the
RabbitMQ at 127.0.0.1:5672, in a vhost created for this run and deleted at its end (the server is
shared by the machine: nothing else on it is touched). State, leases, the outbox and results stay
in the soak's own Redis either way. The broker's own fault is a cut of every connection to the
vhost (``rabbitmqctl close_all_connections --vhost``), not a server restart.
"""

from __future__ import annotations

import os
import re
from typing import Any

REDIS, AMQP = "redis", "amqp"
KINDS = (REDIS, AMQP)
CUT_REASON = "soak: connections cut on purpose"


class BrokerMissing(RuntimeError):
    """``--broker amqp`` and no RabbitMQ to run on (the message says why)."""


class SoakBroker:
    """Where the soak's jobs queue; ``url`` after :meth:`start`."""

    def __init__(self, kind: str = REDIS) -> None:
        if kind not in KINDS:
            raise ValueError(f"--broker must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.url: str | None = None
        self.vhost: Any = None

    @property
    def amqp(self) -> bool:
        return self.kind == AMQP

    def start(self, redis_url: str) -> SoakBroker:
        """Pick the broker URL and export it (before ``worker.app`` is imported: the producer's broker).

        Raises:
            BrokerMissing: ``amqp`` and RabbitMQ is not there (the reason says why).
        """
        if not self.amqp:
            os.environ.pop("CELERY_BROKER_URL", None)
            self.url = redis_url
            return self
        from tests.worker_fixtures import RabbitVhost, rabbitmq_unavailable

        reason = rabbitmq_unavailable()
        if reason:
            raise BrokerMissing(reason)
        try:
            self.vhost = RabbitVhost(prefix="llmorch-soak").create()
        except RuntimeError as e:
            raise BrokerMissing(f"cannot create a RabbitMQ vhost: {e}") from None
        self.url = os.environ["CELERY_BROKER_URL"] = self.vhost.url
        return self

    def worker_env(self) -> dict[str, str]:
        """What the workers' environment needs on top of ``worker_env`` (which drops an inherited broker)."""
        return {"CELERY_BROKER_URL": self.url} if self.amqp and self.url else {}

    def describe(self) -> str:
        return f"amqp (RabbitMQ vhost {self.vhost.name})" if self.amqp else "redis (the state Redis)"

    def queued(self, app: Any, client: Any) -> int:
        """Messages waiting in the task queues (Redis lists, or RabbitMQ's ready messages)."""
        from worker import outbox, settings

        if not self.amqp:
            return sum(
                client.llen(settings.KEY_PREFIX + q + (f"{outbox.PRIORITY_SEPARATOR}{p}" if p else ""))
                for q in settings.QUEUES
                for p in outbox.PRIORITY_STEPS
            )
        from tests.worker_fixtures import ready_messages

        return sum(ready_messages(app, q) for q in settings.QUEUES)

    def cut_connections(self) -> int:
        """Close every connection to the vhost (workers' and producer's); how many the broker closed."""
        out = self.vhost.close_connections(CUT_REASON) if self.amqp else ""
        closed = re.search(r"Closed (\d+) connection", out)
        return int(closed[1]) if closed else 0

    def messages_left(self) -> str:
        """RabbitMQ: messages (ready + unacked) left in the task queues and in the delay queues."""
        from worker import settings

        queues = self.vhost.queues()
        tasks = {q: queues.get(q, ("", False, 0))[2] for q in settings.QUEUES}
        delayed = sum(n for name, (_, _, n) in queues.items() if name.startswith("celery_delayed_"))
        return f"{tasks}, delayed {delayed}"

    def stop(self) -> None:
        if self.vhost is not None:
            self.vhost.delete()
            self.vhost = None
