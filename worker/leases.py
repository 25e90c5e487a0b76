"""A job's own state in Redis: its lease (a redelivered job never runs beside itself) and its result.

Two scripts, one round trip each, so a job costs Redis two round trips of its own (on a Redis
Cluster, where the outbox's keys are in another slot, each is followed by a second command that
closes the outbox record):

CLAIM   at start: the job's result if it already has one (then its outbox record is closed), else
        the lease (re-entrant for its holder), else who holds it and for how long.
FINISH  at the end: store the result (first writer wins), close the outbox record, release the
        lease if still ours — and return the result that is stored.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from llm_orchestrator.redis_client import is_cluster
from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_MSG, OUTBOX_OPEN, OUTBOX_SUSPECT
from worker.outbox import close

# Closing the job's outbox record (KEYS 3-5: outbox open, msg, suspect; ARGV[1]: job id).
_CLOSE_OUTBOX = """
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
"""


def _claim(close_outbox: str) -> str:
    """KEYS: result, lease[, outbox keys]. ARGV: job id, token, lease ms.
    Returns {'done', result} | {'ok', ''} | {'busy', lease ms left}."""
    return f"""
local done = redis.call('GET', KEYS[1])
if done then
{close_outbox}
  return {{'done', done}}
end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[2] then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {{'ok', ''}}
end
if holder then return {{'busy', redis.call('PTTL', KEYS[2])}} end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {{'ok', ''}}
"""


def _finish(close_outbox: str) -> str:
    """KEYS: result, lease[, outbox keys]. ARGV: job id, result JSON, ttl s, token.
    Returns the stored result (an earlier writer's, if any)."""
    return f"""
local stored = redis.call('GET', KEYS[1])
if not stored then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  stored = ARGV[2]
end
{close_outbox}
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return stored
"""


CLAIM, FINISH = _claim(_CLOSE_OUTBOX), _finish(_CLOSE_OUTBOX)
# On a Redis Cluster the job's keys ({job_id}) and the outbox's ({outbox}) are in different slots:
# the job part runs alone (same answers), and the outbox record is closed by a second command.
CLAIM_JOB, FINISH_JOB = _claim(""), _finish("")

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Claim:
    """What CLAIM found: ``done`` (the stored result), or the lease taken, or a twin's ``busy_for``."""

    done: dict[str, Any] | None = None
    leased: bool = False
    busy_for: float = 0.0


class JobLease:
    """A job's lease with a random token; released only by its holder (compare-and-delete).

    Re-entrant: claiming again with the same object succeeds while it still holds the lease (a
    job run again in the same process after Redis went away finds its own lease, not a twin's).
    """

    def __init__(self, client: Any, job_id: str, ttl_seconds: float) -> None:
        self._client = client
        self.job_id = job_id
        self.key = JOB_LEASE.format(job_id=job_id)
        self.token = uuid.uuid4().hex
        self.ttl_ms = int(ttl_seconds * 1000)
        self._split = is_cluster(client)  # a cluster: the outbox part is a second command
        self._claim = client.register_script(CLAIM_JOB if self._split else CLAIM)
        self._finish = client.register_script(FINISH_JOB if self._split else FINISH)
        self._release = client.register_script(RELEASE)

    def _keys(self) -> list[str]:
        job_keys = [JOB_RESULT.format(job_id=self.job_id), self.key]
        return job_keys if self._split else [*job_keys, OUTBOX_OPEN, OUTBOX_MSG, OUTBOX_SUSPECT]

    def claim(self) -> Claim:
        """The job's result if it has one, else the lease (see module docstring)."""
        kind, value = self._claim(keys=self._keys(), args=[self.job_id, self.token, self.ttl_ms])
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "done":
            self._close_outbox()
            return Claim(done=json.loads(value))
        if kind == "busy":
            return Claim(busy_for=max(0, int(value)) / 1000)
        return Claim(leased=True)

    def finish(self, result: dict[str, Any], ttl_seconds: int) -> dict[str, Any]:
        """Store ``result`` unless one is stored, close the outbox record, release the lease; the stored result."""
        stored = self._finish(keys=self._keys(), args=[self.job_id, json.dumps(result), ttl_seconds, self.token])
        self._close_outbox()
        return json.loads(stored)

    def _close_outbox(self) -> None:
        """On a cluster, after the job's own script: forget the job in the outbox (its result is stored
        first, so a crash in between leaves a record the next sweep closes, never re-sends)."""
        if self._split:
            pipe = self._client.pipeline(transaction=False)
            close(pipe, self.job_id)
            pipe.execute()

    def acquire(self) -> bool:
        """Take the lease (True) unless a twin holds it; a stored result also counts as taken."""
        return self.claim().leased

    def ttl_left(self) -> float:
        """Seconds until the current holder's lease lapses (0 if none)."""
        return max(0, self._client.pttl(self.key)) / 1000

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
