"""A Redis lease per job id, so a redelivered job never runs in parallel with itself."""

from __future__ import annotations

import uuid
from typing import Any

from worker.keys import JOB_LEASE

ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class JobLease:
    """A lease with a random token; released only by its holder (compare-and-delete).

    Re-entrant: acquiring again with the same object succeeds while it still holds the lease (a
    job run again in the same process after Redis went away finds its own lease, not a twin's).
    """

    def __init__(self, client: Any, job_id: str, ttl_seconds: float) -> None:
        self._client = client
        self.key = JOB_LEASE.format(job_id=job_id)
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl_seconds * 1000)
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)

    def acquire(self) -> bool:
        return bool(self._acquire(keys=[self.key], args=[self.token, self.ttl_ms]))

    def ttl_left(self) -> float:
        """Seconds until the current holder's lease lapses (0 if none)."""
        return max(0, self._client.pttl(self.key)) / 1000

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
