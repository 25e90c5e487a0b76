"""The cost ledger: one row per provider call, written exactly once per (job_id, attempt).

``RedisLedger`` is shared by every worker and is the source of truth; ``MemoryLedger`` serves the
library used without Redis. The protocol for a job:

1. ``begin(job_id, attempt)`` before the provider call puts a *pending* marker;
2. ``commit(record)`` after it appends the row — only if that (job_id, attempt) has no row yet —
   and clears the marker, atomically (one Lua script);
3. ``abandon(job_id, attempt)`` clears the marker when the call failed (nothing to bill).

A process that dies between the call and the commit leaves its marker behind: ``pending()``
lists such markers, so a lost write is visible rather than silent.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from llm_orchestrator.resilience.keys import LEDGER_DONE, LEDGER_INDEX, LEDGER_PENDING, LEDGER_ROW, SESSION_COST

DEFAULT_RETENTION_DAYS = 35

# KEYS: row, index, done, pending, session (all in the {ledger} slot; done/session are placeholders
# when the row has no job/session). ARGV: row id, timestamp, ttl s, pending field, session micros
# ('' = none), the row (a JSON object of strings), has a job ('1'/'0').
# A row id already stored, or a (job_id, attempt) that already has a row, is not written again
# (so a spool replayed twice changes nothing).
COMMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[4] ~= '' then redis.call('HDEL', KEYS[4], ARGV[4]) end
  return {0, ARGV[1]}
end
if ARGV[7] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then
    redis.call('HDEL', KEYS[4], ARGV[4])
    return {0, existing}
  end
end
local fields = {}
for k, v in pairs(cjson.decode(ARGV[6])) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if ARGV[7] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[4], ARGV[4]) end
if ARGV[5] ~= '' then
  redis.call('INCRBY', KEYS[5], ARGV[5])
  redis.call('EXPIRE', KEYS[5], ARGV[3])
end
return {1, ARGV[1]}
"""


def _pending_field(job_id: str, attempt: int) -> str:
    return f"{job_id}:{attempt}"


class MemoryLedger:
    """The ledger in this process's memory (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, str]] = {}
        self._done: dict[str, str] = {}
        self._pending: dict[str, float] = {}
        self._sessions: dict[str, int] = {}

    def begin(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self._pending.setdefault(_pending_field(job_id, attempt), time.time())

    def abandon(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self._pending.pop(_pending_field(job_id, attempt), None)

    def commit(self, row: dict[str, str], session_micros: int | None) -> tuple[bool, str]:
        """Store ``row`` unless its (job_id, attempt) already has one. Returns (new, row id)."""
        with self._lock:
            if row["row_id"] in self._rows:
                return False, row["row_id"]
            done_key = _pending_field(row["job_id"], int(row["attempt"])) if row["job_id"] else ""
            if done_key and done_key in self._done:
                self._pending.pop(done_key, None)
                return False, self._done[done_key]
            self._rows[row["row_id"]] = row
            if done_key:
                self._done[done_key] = row["row_id"]
                self._pending.pop(done_key, None)
            if row["session_id"] and session_micros is not None:
                self._sessions[row["session_id"]] = self._sessions.get(row["session_id"], 0) + session_micros
            return True, row["row_id"]

    def rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, str]]:
        with self._lock:
            rows = list(self._rows.values())
        return sorted((r for r in rows if _in_range(float(r["ts"]), since, until)), key=lambda r: float(r["ts"]))

    def session_micros(self, session_id: str) -> int:
        with self._lock:
            return self._sessions.get(session_id, 0)

    def pending(self, older_than: float = 0.0) -> dict[str, float]:
        cutoff = time.time() - older_than
        with self._lock:
            return {k: v for k, v in self._pending.items() if v <= cutoff}


class RedisLedger:
    """The ledger in Redis (see module docstring for the protocol and keys)."""

    def __init__(self, client: Any, prefix: str = "llmorch:", retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self._r = client
        self.prefix = prefix
        self.ttl = retention_days * 86400
        self._commit = client.register_script(COMMIT)
        self._index = LEDGER_INDEX.format(prefix=prefix)
        self._pending = LEDGER_PENDING.format(prefix=prefix)

    def begin(self, job_id: str, attempt: int) -> None:
        self._r.hsetnx(self._pending, _pending_field(job_id, attempt), time.time())

    def abandon(self, job_id: str, attempt: int) -> None:
        self._r.hdel(self._pending, _pending_field(job_id, attempt))

    def commit(self, row: dict[str, str], session_micros: int | None) -> tuple[bool, str]:
        keys, args = self.commit_parts(row, session_micros)
        new, row_id = self._commit(keys=keys, args=args)
        return bool(new), row_id.decode() if isinstance(row_id, bytes) else row_id

    def commit_parts(self, row: dict[str, str], session_micros: int | None) -> tuple[list[str], list[Any]]:
        """COMMIT's keys and args (also composed into the gate's settlement script)."""
        job_id, attempt, session_id = row["job_id"], int(row["attempt"]), row["session_id"]
        # placeholders keep every key in the {ledger} slot (Redis Cluster); the flags say what is real
        done = LEDGER_DONE.format(prefix=self.prefix, job_id=job_id or "-", attempt=attempt)
        session = SESSION_COST.format(prefix=self.prefix, session_id=session_id or "-")
        return (
            [LEDGER_ROW.format(prefix=self.prefix, row_id=row["row_id"]), self._index, done, self._pending, session],
            [
                row["row_id"],
                row["ts"],
                self.ttl,
                _pending_field(job_id, attempt) if job_id else "",
                "" if session_micros is None or not session_id else session_micros,
                json.dumps(row, separators=(",", ":")),
                "1" if job_id else "0",
            ],
        )

    def begin_parts(self, job_id: str, attempt: int) -> tuple[list[str], list[Any]]:
        """The pending mark as script keys/args (the gate folds it into admission)."""
        return [self._pending], [_pending_field(job_id, attempt), time.time()]

    def rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, str]]:
        ids = self._r.zrangebyscore(
            self._index, "-inf" if since is None else since, "+inf" if until is None else f"({until}"
        )
        out: list[dict[str, str]] = []
        for chunk in _chunks(ids, 500):
            pipe = self._r.pipeline(transaction=False)
            for row_id in chunk:
                pipe.hgetall(LEDGER_ROW.format(prefix=self.prefix, row_id=row_id.decode()))
            out += [{k.decode(): v.decode() for k, v in h.items()} for h in pipe.execute() if h]
        return out

    def session_micros(self, session_id: str) -> int:
        return int(self._r.get(SESSION_COST.format(prefix=self.prefix, session_id=session_id)) or 0)

    def pending(self, older_than: float = 0.0) -> dict[str, float]:
        cutoff = time.time() - older_than
        marks = {k.decode(): float(v) for k, v in self._r.hgetall(self._pending).items()}
        return {k: v for k, v in marks.items() if v <= cutoff}


def new_row_id() -> str:
    return uuid.uuid4().hex


def _in_range(ts: float, since: float | None, until: float | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
