"""Running on while Redis is away: which errors mean "unreachable", and logging that politely."""

from __future__ import annotations

import logging
import time

DEGRADED_LOG_INTERVAL_SECONDS = 30.0


def redis_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean Redis is unreachable (imported lazily: no redis import at start).

    On a cluster also a cluster that cannot be reached or is down. (``RedisClusterException`` also
    covers a cross-slot command, a bug: the cluster tests run every path to keep that out.)
    """
    import redis
    from redis.exceptions import ClusterDownError, RedisClusterException

    return (redis.ConnectionError, redis.TimeoutError, OSError, ClusterDownError, RedisClusterException)


class DegradedLog:
    """Logs "Redis unreachable, using X" at most once per interval per component."""

    def __init__(self, logger: logging.Logger, what: str, meanwhile: str = "using this process's memory") -> None:
        self._logger = logger
        self._what = what
        self._meanwhile = meanwhile
        self._last = -DEGRADED_LOG_INTERVAL_SECONDS

    def warn(self, err: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= DEGRADED_LOG_INTERVAL_SECONDS:
            self._last = now
            self._logger.warning(
                "Redis unreachable for the %s (%s); %s until it returns",
                self._what,
                type(err).__name__,
                self._meanwhile,
            )
