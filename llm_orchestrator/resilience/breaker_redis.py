"""The breaker's state machine in Redis, shared by every process on every host.

Each operation is one Lua script, so a transition is atomic; time is Redis server time
(``TIME``), never a worker's clock. The semantics are those of :mod:`breaker_memory`.
"""

from __future__ import annotations

import random
from typing import Any

from llm_orchestrator.resilience.breaker_types import BreakerSettings, Permit
from llm_orchestrator.resilience.keys import breaker_keys

# KEYS: state, window, probes. ARGV: probes allowed, lease ms, ttl s.
# Returns {allowed (0/1), gen, lease or "", retry_after_ms}.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'state', 'gen', 'open_until')
local state, gen, open_until = st[1] or 'closed', tonumber(st[2] or '0'), tonumber(st[3] or '0')
local ttl = tonumber(ARGV[3])
if state == 'open' then
  if now < open_until then return {0, gen, '', open_until - now} end
  -- open time is over: half-open, new generation, no probes yet
  gen = gen + 1
  state = 'half_open'
  redis.call('HSET', KEYS[1], 'state', state, 'gen', gen, 'probes_ok', 0)
  redis.call('DEL', KEYS[3])
  redis.call('EXPIRE', KEYS[1], ttl)
end
if state == 'half_open' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)       -- expired leases free their slot
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[1]) then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {0, gen, '', math.max(1, tonumber(first[2]) - now)}
  end
  local lease = gen .. ':' .. redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), lease)
  redis.call('EXPIRE', KEYS[3], ttl)
  return {1, gen, lease, 0}
end
return {1, gen, '', 0}
"""

# KEYS: state, window, probes. ARGV: gen, lease, outcome (1 ok, 0 fail, -1 release), window s,
# min calls, failure rate, open ms, max open ms, jitter factor (0.9–1.1), probes needed, ttl s.
# Returns the state after the report, or 'stale'.
RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'state', 'gen', 'reopen', 'probes_ok')
local state, gen = st[1] or 'closed', tonumber(st[2] or '0')
local reopen, probes_ok = tonumber(st[3] or '0'), tonumber(st[4] or '0')
local outcome, ttl = tonumber(ARGV[3]), tonumber(ARGV[11])
if tonumber(ARGV[1]) ~= gen then return 'stale' end

local function open(times)
  local ms = math.min(tonumber(ARGV[8]), tonumber(ARGV[7]) * (2 ^ times)) * tonumber(ARGV[9])
  redis.call('HSET', KEYS[1], 'state', 'open', 'gen', gen + 1, 'reopen', times,
             'open_until', now + math.floor(ms), 'probes_ok', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('EXPIRE', KEYS[1], ttl)
  return 'open'
end

if state == 'closed' and outcome >= 0 then
  local sec = math.floor(now / 1000)
  redis.call('HINCRBY', KEYS[2], 'c:' .. sec, 1)
  if outcome == 0 then redis.call('HINCRBY', KEYS[2], 'f:' .. sec, 1) end
  local oldest = sec - tonumber(ARGV[4])
  local calls, fails = 0, 0
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local b = tonumber(string.sub(fields[i], 3))
    if b <= oldest then
      redis.call('HDEL', KEYS[2], fields[i])
    elseif string.sub(fields[i], 1, 1) == 'c' then
      calls = calls + tonumber(fields[i + 1])
    else
      fails = fails + tonumber(fields[i + 1])
    end
  end
  redis.call('EXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen)
  end
  redis.call('EXPIRE', KEYS[1], ttl)
  if calls >= tonumber(ARGV[5]) and fails >= tonumber(ARGV[6]) * calls then return open(0) end
  return 'closed'
end

if state == 'half_open' and ARGV[2] ~= '' and redis.call('ZREM', KEYS[3], ARGV[2]) == 1 then
  if outcome == 0 then return open(reopen + 1) end
  if outcome == 1 then
    probes_ok = probes_ok + 1
    if probes_ok >= tonumber(ARGV[10]) then
      redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen + 1, 'reopen', 0, 'probes_ok', 0)
      redis.call('DEL', KEYS[2], KEYS[3])
      redis.call('EXPIRE', KEYS[1], ttl)
      return 'closed'
    end
    redis.call('HSET', KEYS[1], 'probes_ok', probes_ok)
  end
end
return state
"""


class RedisBreaker:
    """All breakers, state in Redis. Raises redis errors: :class:`Breakers` handles them."""

    def __init__(self, settings: BreakerSettings, client: Any, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self._acquire = client.register_script(ACQUIRE)
        self._record = client.register_script(RECORD)
        self._client = client
        self.ttl = int(settings.window_seconds + settings.max_open_seconds * (1 + settings.jitter) + 60)

    def acquire(self, provider: str, model: str) -> Permit:
        keys, args = self.acquire_parts(provider, model)
        allowed, gen, lease, wait_ms = self._acquire(keys=keys, args=args)
        return permit(provider, model, allowed, gen, lease, wait_ms)

    def record(self, permit: Permit, outcome: int) -> str:
        keys, args = self.record_parts(permit, outcome)
        state = self._record(keys=keys, args=args)
        return state.decode() if isinstance(state, bytes) else state

    # -- the scripts' keys and arguments (also composed into the gate's scripts) -----------------

    def acquire_parts(self, provider: str, model: str) -> tuple[list[str], list[object]]:
        s = self.settings
        return breaker_keys(self.prefix, provider, model), [
            s.half_open_probes,
            int(s.probe_lease_seconds * 1000),
            self.ttl,
        ]

    def record_constants(self) -> list[object]:
        """RECORD's arguments after (gen, lease, outcome): the settings, a fresh jitter, the TTL."""
        s = self.settings
        jitter = 1 + random.uniform(-s.jitter, s.jitter)
        return [
            s.window_seconds,
            s.min_calls,
            s.failure_rate,
            int(s.open_seconds * 1000),
            int(s.max_open_seconds * 1000),
            jitter,
            s.half_open_probes,
            self.ttl,
        ]

    def record_parts(self, permit: Permit, outcome: int) -> tuple[list[str], list[object]]:
        return (
            breaker_keys(self.prefix, permit.provider, permit.model),
            [permit.gen, permit.lease or "", outcome, *self.record_constants()],
        )

    def snapshot(self, provider: str, model: str) -> dict[str, object]:
        key = breaker_keys(self.prefix, provider, model)[0]
        state, gen, open_until = self._client.hmget(key, "state", "gen", "open_until")
        now_s, now_us = self._client.time()
        now_ms = now_s * 1000 + now_us // 1000
        left = max(0, int(open_until or 0) - now_ms) / 1000 if state == b"open" else 0.0
        return {"state": (state or b"closed").decode(), "gen": int(gen or 0), "open_for": left}


def permit(provider: str, model: str, allowed: Any, gen: Any, lease: Any, wait_ms: Any) -> Permit:
    """A Permit from ACQUIRE's reply ``{allowed, gen, lease or "", retry_after_ms}``."""
    lease = lease.decode() if isinstance(lease, bytes) else lease
    return Permit(
        provider,
        model,
        int(gen),
        lease=str(lease) or None,
        allowed=bool(int(allowed)),
        retry_after=int(wait_ms) / 1000,
        backend="redis",
    )
