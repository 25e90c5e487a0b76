"""A Redis lease per job id, so a redelivered job never runs in parallel with itself."""

from __future__ import annotations

import uuid
from typing import Any

from worker.keys import JOB_LEASE

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class JobLease:
    """``SET NX PX`` with a random token; released only by its holder (compare-and-delete)."""

    def __init__(self, client: Any, job_id: str, ttl_seconds: float) -> None:
        self._client = client
        self.key = JOB_LEASE.format(job_id=job_id)
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl_seconds * 1000)
        self._release = client.register_script(RELEASE)

    def acquire(self) -> bool:
        return bool(self._client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def ttl_left(self) -> float:
        """Seconds until the current holder's lease lapses (0 if none)."""
        return max(0, self._client.pttl(self.key)) / 1000

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
