"""Keep the worker alive when Redis restarts under kombu 5.7.0 + celery 5.7.0.

The bug: when the broker connection breaks, celery 5.7.0's
``Consumer.on_connection_error_after_connected`` calls ``connection.collect()`` and then
``connection.close()`` (added by celery PR #10242, commit feb789acc, "prevent graceful shutdown
regression in connection recovery (GH-9705)"). ``collect()`` closes the channels and then
detaches the transport (``transport.client = None``, kombu ``Connection._do_close_transport``).
If the default channel's close was cut short there (a BRPOP was pending and reading its reply
raised ``ConnectionError``) and closing another channel raised too (the remote-control
channel's fanout queue cannot be deleted while Redis is down), the default channel is left
half-closed. ``close()`` then closes it again: the channel restores its unacked messages,
needs a Redis client, and ``Channel._connparams`` (kombu/transport/redis.py) reads
``self.connection.client.hostname`` of the detached transport::

    AttributeError: 'NoneType' object has no attribute 'hostname'

``ignore_errors`` ignores connection errors only, so the ``AttributeError`` escapes and celery
logs ``Unrecoverable error`` and exits the worker. It needs tasks in flight and a pending BRPOP
(the worker had spare capacity), and the pub/sub socket's EOF handled before the BRPOP one. The
same unguarded ``_connparams`` read was reported long ago through another path
(celery/kombu#582, "Error on restarting Gossip"). No upstream fix: kombu's main branch
(snapshot at 9ee8595b) and the newest release, 5.7.0, still read ``self.connection.client``
unguarded, and celery's main still calls ``close()`` after ``collect()``.

The workaround: a Redis channel whose transport has been detached from its connection (or that
has no transport left) raises ``redis.exceptions.ConnectionError`` from ``_connparams`` instead
of ``AttributeError``. That is a connection error of the Redis transport, which the callers on
this path already ignore (``Connection.maybe_close_channel``, ``ignore_errors``) or treat as
recoverable (celery's consumer reconnects). Nothing is lost: an unacked message stays in
Redis's unacked hash and is restored after the visibility timeout, exactly as when the restore
attempt meets Redis down. Such a channel could never reach Redis anyway, so only the type of an
already-failing call changes.

Applied only to kombu versions known to have the bug: 5.7.0 (celery 5.7.0 requires
kombu>=5.7.0, and 5.7.0 is the newest release). A later kombu is left alone; if the worker
dies on a Redis restart again, ``tests/test_worker_redis_restart.py`` fails, and the range
below should be extended after checking the new release.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

# Inclusive range of kombu releases checked to have the bug (see the module docstring).
FIRST_AFFECTED_KOMBU = (5, 7, 0)
LAST_AFFECTED_KOMBU = (5, 7, 0)
DETACHED_MESSAGE = "the Redis channel's kombu connection is already closed (transport detached)"
_MARKER = "_llmorch_detached_guard"


def affected(version: tuple[int, ...]) -> bool:
    """Whether kombu ``version`` (major, minor, micro) is one known to have the bug."""
    return FIRST_AFFECTED_KOMBU <= tuple(version[:3]) <= LAST_AFFECTED_KOMBU


def apply() -> bool:
    """Patch ``kombu.transport.redis.Channel._connparams`` once, if the installed kombu is affected.

    Returns:
        True when the guard is in place (now or from an earlier call), False when this kombu
        version is not known to have the bug (nothing is changed).
    """
    import kombu
    from kombu.transport import redis as kombu_redis

    channel_cls = kombu_redis.Channel
    if getattr(channel_cls._connparams, _MARKER, False):
        return True
    version = tuple(int(part) for part in kombu.VERSION[:3])
    if not affected(version):
        log.debug("kombu %s is not known to have the detached-transport bug; not patched", kombu.__version__)
        return False
    channel_cls._connparams = _guarded(channel_cls._connparams)
    return True


def _guarded(original: Any) -> Any:
    import redis

    @functools.wraps(original)
    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError(DETACHED_MESSAGE)
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _MARKER, True)
    return _connparams
