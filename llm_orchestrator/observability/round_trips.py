"""Counts Redis round trips at the connection (benchmarks and tests; never on by default).

A round trip is one ``send_packed_command`` on a connection: a single command, a whole pipeline or
a script call each send once. ``RoundTrips`` patches the sync and asyncio connection classes while
it is active and counts, separately, sync sends made while an event loop was running in that
thread (a blocking call on the loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class RoundTrips:
    """Counters: ``sync``, ``sync_on_loop`` (sync sends while a loop runs in the thread), ``aio``."""

    def __init__(self) -> None:
        self.sync = 0
        self.sync_on_loop = 0
        self.aio = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self.sync + self.aio

    def reset(self) -> None:
        with self._lock:
            self.sync = self.sync_on_loop = self.aio = 0

    @contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        import redis.asyncio.connection as aconn
        import redis.connection as conn

        sync_cls = _definer(conn.Connection, "send_packed_command")
        aio_cls = _definer(aconn.Connection, "send_packed_command")
        sync_orig, aio_orig = sync_cls.send_packed_command, aio_cls.send_packed_command
        probe = self

        def sync_send(self: Any, *args: Any, **kwargs: Any) -> Any:
            with probe._lock:
                probe.sync += 1
                if _loop_running():
                    probe.sync_on_loop += 1
            return sync_orig(self, *args, **kwargs)

        async def aio_send(self: Any, *args: Any, **kwargs: Any) -> Any:
            with probe._lock:
                probe.aio += 1
            return await aio_orig(self, *args, **kwargs)

        sync_cls.send_packed_command = sync_send
        aio_cls.send_packed_command = aio_send
        try:
            yield self
        finally:
            sync_cls.send_packed_command = sync_orig
            aio_cls.send_packed_command = aio_orig


def _definer(cls: type, name: str) -> Any:
    return next(c for c in cls.__mro__ if name in c.__dict__)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
