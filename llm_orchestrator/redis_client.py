"""The Redis client for shared state: a single server, or a Redis Cluster (``redis.cluster: true``).

On a cluster every multi-key script keeps its keys in one hash slot (see ``resilience/keys.py``);
operations that span slots run as separate commands (the call gate runs each component's own
script instead of the composed one). Nothing connects until the first command.
"""

from __future__ import annotations

from typing import Any

SOCKET_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 2}


def build(url: str, cluster: bool = False, **options: Any) -> Any:
    """A lazily-connecting client for ``url`` (the seed node when ``cluster``)."""
    import redis

    kwargs = {**SOCKET_TIMEOUTS, **options}
    if cluster:
        from redis.cluster import RedisCluster

        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster (sync or asyncio)."""
    if client is None:
        return False
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster | AsyncRedisCluster)


def unreachable_errors() -> tuple[type[Exception], ...]:
    """Errors that mean the state Redis cannot serve a command now (not a bug in the command).

    A single server: a connection error or timeout. A cluster also: a master down or the cluster
    state failed (``CLUSTERDOWN``), or a slot moving (``TRYAGAIN``).
    """
    import redis
    from redis.exceptions import ClusterDownError, TryAgainError

    return (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError)
