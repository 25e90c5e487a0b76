"""Where the soak's state lives: one ``redis-server`` (``--state redis``, the default) or a Redis Cluster.

Either way with AOF on (``appendfsync everysec``), so the restart in the middle of the run loses
nothing that was written before it. With ``cluster`` the run starts three masters
(``tests/redis_cluster.py``), the workers and the producer get ``REDIS_CLUSTER=1``, and the fault
is a restart of one master (its slots are unavailable meanwhile); Celery's broker must then be
RabbitMQ (a cluster cannot be Celery's broker).
"""

from __future__ import annotations

import os
from typing import Any

REDIS, CLUSTER = "redis", "cluster"
KINDS = (REDIS, CLUSTER)
RESTARTED_MASTER = 0  # the seed node's master: the producer's and workers' first contact


class SoakState:
    """The state store of one soak run; ``url`` after :meth:`start`."""

    def __init__(self, kind: str = REDIS) -> None:
        if kind not in KINDS:
            raise ValueError(f"--state must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.server: Any = None

    @property
    def cluster(self) -> bool:
        return self.kind == CLUSTER

    @property
    def url(self) -> str:
        return str(self.server.url)

    def start(self) -> SoakState:
        """Start the server(s) and export REDIS_URL (and REDIS_CLUSTER) before ``worker.app`` is imported."""
        from worker.settings import CLUSTER_ENV

        if self.cluster:
            from tests.redis_cluster import RedisCluster

            self.server = RedisCluster().start()
            os.environ[CLUSTER_ENV] = "1"
        else:
            from tests.redis_server import RedisServer

            self.server = RedisServer(appendonly=True, appendfsync="everysec").start()
            os.environ.pop(CLUSTER_ENV, None)
        os.environ["REDIS_URL"] = self.url
        return self

    def client(self) -> Any:
        from llm_orchestrator.redis_client import build

        return build(self.url, cluster=self.cluster, socket_connect_timeout=1, socket_timeout=5)

    def worker_env(self) -> dict[str, str]:
        from worker.settings import CLUSTER_ENV

        return {CLUSTER_ENV: "1"} if self.cluster else {}

    def restart(self, down_seconds: float) -> None:
        """A clean stop and start on the same port(s) with the same AOF: the whole server, or one master."""
        if self.cluster:
            self.server.restart_node(RESTARTED_MASTER, down_seconds=down_seconds)
        else:
            self.server.restart(down_seconds=down_seconds)

    def describe(self) -> str:
        if self.cluster:
            return f"Redis Cluster, 3 masters {self.server.ports} (AOF everysec)"
        return f"redis {self.url} (AOF everysec)"

    def restart_text(self) -> str:
        return f"cluster master {self.server.ports[RESTARTED_MASTER]}" if self.cluster else "redis"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.cleanup()
