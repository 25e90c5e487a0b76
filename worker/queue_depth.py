"""``llm_orch_queue_depth{queue}`` on a RabbitMQ broker: each queue's ready messages, read at scrape time.

The Redis broker's depth is a list length (``llm_orchestrator.observability.metrics.QueueDepthCollector``);
RabbitMQ answers a passive ``queue.declare`` with the queue's ``message_count`` (ready messages,
not the ones delivered and unacked — the same meaning as the Redis list's length). One
connection is kept between scrapes and opened again after an error; with the broker away the
scrape has no sample (no false zero), as with Redis.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

CONNECT_TIMEOUT_SECONDS = 2


class AmqpQueueDepthCollector:
    """A Prometheus collector of the Celery queues' depth on an amqp broker.

    Args:
        url: the broker URL (``amqp://…``).
        queues: the queue names.
    """

    def __init__(self, url: str, queues: tuple[str, ...]) -> None:
        self.url = url
        self.queues = queues
        self._conn: Any = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("llm_orch_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        with self._lock:
            try:
                counts = [self._ready(queue) for queue in self.queues]
            except Exception:  # broker away or the connection broken: no sample rather than a wrong zero
                self._drop()
                return
        for queue, count in zip(self.queues, counts, strict=True):
            family.add_metric([queue], count)
        yield family

    def _ready(self, queue: str) -> int:
        from amqp.exceptions import NotFound

        channel = self._connection().channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except NotFound:  # not declared yet (no worker has started): nothing waits in it
            return 0
        finally:
            if channel.is_open:
                channel.close()

    def _connection(self) -> Any:
        if self._conn is None:
            from kombu import Connection

            self._conn = Connection(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            self._conn.ensure_connection(max_retries=1)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken; nothing to close
                self._conn.release()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()
