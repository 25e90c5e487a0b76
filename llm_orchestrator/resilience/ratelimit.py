"""Provider rate limiter: requests and tokens per minute, shared through Redis.

Algorithm: a sliding-window log per scope (``openai``, and ``openai/<model>`` when a model has
its own limit). Each granted call is a ZSET member ``<id>:<tokens>`` scored by Redis server
time, with a running token total beside it (so a call costs O(expired entries), never a scan); a call is granted only if, over the last 60 s, requests + 1 ≤ rpm × factor and
tokens + estimate ≤ tpm × factor for every scope — all scopes checked and reserved in one Lua
script, so no window ever holds more than the limit. After the call the estimate is replaced by
the real token count (``reconcile``).

AIMD: a 429 from the provider multiplies the scope's ``factor`` by 0.7 (floor 0.1); every
granted call adds 0.005 back (up to 1.0). A fleet that overshoots the provider's real limit
backs off together and creeps back up.

Learned limits: for a model with no configured limit (neither the provider's nor the model's),
the limiter learns the provider's own limit from the rate-limit headers of each answer
(``LLMResponse.rate_limits``: OpenAI ``x-ratelimit-*``, Anthropic ``anthropic-ratelimit-*``)
and paces that model at ``LEARNED_SHARE`` of it before any 429. The limit value is kept per
process (every answer carries it); the window log is the shared Redis one, seeded once with what
the provider says is already used in its window, so the fleet starts from the provider's count.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm_orchestrator.exceptions import LocalRateLimitError
from llm_orchestrator.observability.observer import Observer
from llm_orchestrator.providers.base import RateLimits
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import limit_keys

log = logging.getLogger(__name__)
WINDOW_MS = 60_000
DECREASE = 0.7
INCREASE = 0.005
MIN_FACTOR = 0.1
FACTOR_TTL_SECONDS = 600
RETRY_SLACK_SECONDS = 0.005
LEARNED_SHARE = 0.95  # of a limit learned from headers: room for arrival-time skew at window edges
MAX_SEED = 100_000  # log entries one seed may add

# KEYS: per scope [log, tokens, factor]. ARGV: id, est tokens, then per scope [rpm (0 = none),
# tpm (0 = none)], then the AIMD increase. `tokens` is the running sum of the log's tokens, so no
# call ever scans the window: pruning subtracts what it removes.
# Returns {1, 0, 0} when granted, {0, wait_ms, scope index} when refused.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local est = tonumber(ARGV[2])
local scopes = #KEYS / 3
for i = 1, scopes do
  local log, total, fkey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local rpm, tpm = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local factor = tonumber(redis.call('GET', fkey) or '1')
  local expired = redis.call('ZRANGEBYSCORE', log, '-inf', now - 60000)
  if #expired > 0 then
    local dropped = 0
    for _, m in ipairs(expired) do dropped = dropped + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - 60000)
    redis.call('DECRBY', total, dropped)
  end
  local count = redis.call('ZCARD', log)
  local used = tonumber(redis.call('GET', total) or '0')
  local refused = rpm > 0 and count + 1 > math.max(1, math.floor(rpm * factor))
  if not refused and tpm > 0 then
    refused = used + est > math.max(1, math.floor(tpm * factor)) and count > 0
  end
  if refused then
    local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    local wait = 1
    if first[2] then wait = math.max(1, tonumber(first[2]) + 60000 - now) end
    return {0, wait, i}
  end
end
for i = 1, scopes do
  redis.call('ZADD', KEYS[3 * i - 2], now, ARGV[1] .. ':' .. est)
  redis.call('PEXPIRE', KEYS[3 * i - 2], 120000)
  redis.call('INCRBY', KEYS[3 * i - 1], est)
  redis.call('PEXPIRE', KEYS[3 * i - 1], 120000)
  local f = redis.call('GET', KEYS[3 * i])
  if f then
    local nf = tonumber(f) + tonumber(ARGV[#ARGV])
    if nf >= 1 then redis.call('DEL', KEYS[3 * i]) else redis.call('SET', KEYS[3 * i], nf, 'KEEPTTL') end
  end
end
return {1, 0, 0}
"""

# KEYS: per scope [log, tokens]. ARGV: id, old tokens, new tokens.
RECONCILE = """
for i = 1, #KEYS / 2 do
  local log, total = KEYS[2 * i - 1], KEYS[2 * i]
  local score = redis.call('ZSCORE', log, ARGV[1] .. ':' .. ARGV[2])
  if score then
    redis.call('ZREM', log, ARGV[1] .. ':' .. ARGV[2])
    redis.call('ZADD', log, score, ARGV[1] .. ':' .. ARGV[3])
    redis.call('INCRBY', total, tonumber(ARGV[3]) - tonumber(ARGV[2]))
  end
end
return 1
"""


# KEYS: log, tokens. ARGV: requests the provider says are used, tokens used, id prefix.
# Brings the shared log up to the provider's count of its current window (never down).
SEED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local need = math.min(tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1]), 100000)
local missing = tonumber(ARGV[2]) - tonumber(redis.call('GET', KEYS[2]) or '0')
if missing < 0 then missing = 0 end
if need <= 0 and missing == 0 then return 0 end
if need < 1 then need = 1 end
for i = 1, need do
  local tokens = 0
  if i == 1 then tokens = missing end
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. i .. ':' .. tokens)
end
redis.call('INCRBY', KEYS[2], missing)
redis.call('PEXPIRE', KEYS[1], 120000)
redis.call('PEXPIRE', KEYS[2], 120000)
return need
"""


@dataclass(frozen=True)
class Limit:
    scope: str
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class Reservation:
    """What ``acquire`` granted; give it back to ``reconcile`` with the real token count."""

    id: str
    scopes: tuple[Limit, ...]
    tokens: int
    backend: str


@dataclass
class _MemoryLog:
    order: deque[tuple[float, str]] = field(default_factory=deque)  # (time, id), oldest first
    tokens: dict[str, int] = field(default_factory=dict)  # id → tokens
    used: int = 0  # running sum of `tokens`
    factor: float = 1.0

    def prune(self, cutoff: float) -> None:
        while self.order and self.order[0][0] <= cutoff:
            _, rid = self.order.popleft()
            self.used -= self.tokens.pop(rid, 0)


class RateLimiter:
    """Limits per provider and per (provider, model), from the config.

    Args:
        limits: scope → Limit, scope being ``provider`` or ``provider/model``.
        redis: a client, or None for this process only.
        key_prefix: Redis key prefix.
    """

    def __init__(
        self,
        limits: dict[str, Limit],
        redis: Any = None,
        key_prefix: str = "llmorch:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.prefix = key_prefix
        self._redis = redis
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: dict[str, _MemoryLog] = {}
        self._acquire_script: Any = redis.register_script(ACQUIRE) if redis is not None else None
        self._reconcile_script = redis.register_script(RECONCILE) if redis is not None else None
        self._seed_script = redis.register_script(SEED) if redis is not None else None
        self.learned: dict[str, Limit] = {}  # scope "provider/model" → limit learned from headers
        self.not_learning: set[str] = set()  # providers whose config turned learning off
        self._degraded = DegradedLog(log, "rate limiter").warn
        self._obs = Observer()  # limiter waits go to metrics and listeners only

    @classmethod
    def from_config(cls, config: Any, redis: Any = None, key_prefix: str = "llmorch:") -> RateLimiter:
        limits: dict[str, Limit] = {}
        quiet = {name for name, provider in config.providers.items() if not provider.rate_limit.learn_from_headers}
        for name, provider in config.providers.items():
            if provider.rate_limit.rpm or provider.rate_limit.tpm:
                limits[name] = Limit(name, provider.rate_limit.rpm, provider.rate_limit.tpm)
            for model, lim in provider.model_rate_limits.items():
                limits[f"{name}/{model}"] = Limit(f"{name}/{model}", lim.rpm, lim.tpm)
        limiter = cls(limits, redis=redis, key_prefix=key_prefix)
        limiter.not_learning = quiet
        return limiter

    def _scopes(self, provider: str, model: str) -> tuple[Limit, ...]:
        configured = tuple(lim for key in (provider, f"{provider}/{model}") if (lim := self.limits.get(key)))
        if configured:
            return configured
        learned = self.learned.get(f"{provider}/{model}")
        return (learned,) if learned is not None else ()

    # -- learning from the provider's headers -----------------------------------------------

    def learn(self, provider: str, model: str, info: RateLimits | None) -> None:
        """Take the provider's stated limit for ``model`` from one answer's rate-limit headers.

        Only for a model without a configured limit. The first time (and whenever the stated
        limit changes) the shared window log is seeded with what the provider says is used.
        """
        if (
            info is None
            or info.limit_requests is None
            or provider in self.not_learning
            or self.limits.get(provider)
            or self.limits.get(f"{provider}/{model}")
        ):
            return
        scope = f"{provider}/{model}"
        rpm = max(1, int(info.limit_requests * LEARNED_SHARE))
        tpm = max(1, int(info.limit_tokens * LEARNED_SHARE)) if info.limit_tokens else None
        known = self.learned.get(scope)
        if known is not None and (known.rpm, known.tpm) == (rpm, tpm):
            return
        self.learned[scope] = Limit(scope, rpm, tpm)
        log.info(
            "learned the provider's limit for %s: %s rpm, %s tpm (pacing at %d%%)",
            scope,
            info.limit_requests,
            info.limit_tokens,
            round(LEARNED_SHARE * 100),
            extra={"provider": provider, "model": model, "rpm": info.limit_requests, "tpm": info.limit_tokens},
        )
        used_requests = max(0, info.limit_requests - (info.remaining_requests or 0))
        used_tokens = max(0, (info.limit_tokens or 0) - (info.remaining_tokens or 0)) if info.limit_tokens else 0
        # once per learned limit and process: off the call path (and off any event loop)
        threading.Thread(
            target=self._seed, args=(scope, used_requests, used_tokens), name="llm-orch-limit-seed", daemon=True
        ).start()

    def _seed(self, scope: str, used_requests: int, used_tokens: int) -> None:
        if self._seed_script is not None:
            try:
                keys = limit_keys(self.prefix, scope)[:2]
                self._seed_script(
                    keys=keys, args=[min(used_requests, MAX_SEED), used_tokens, f"seed-{uuid.uuid4().hex[:8]}-"]
                )
                return
            except redis_errors() as e:
                self._degraded(e)
        now = self._clock()
        with self._lock:
            log_ = self._memory.setdefault(scope, _MemoryLog())
            log_.prune(now - WINDOW_MS / 1000)
            for i in range(max(0, min(used_requests, MAX_SEED) - len(log_.order))):
                rid = f"seed-{uuid.uuid4().hex[:8]}-{i}"
                log_.order.append((now, rid))
                log_.tokens[rid] = 0

    # -- acquire ----------------------------------------------------------------------------

    def try_acquire(self, provider: str, model: str, est_tokens: int) -> tuple[Reservation | None, float, str]:
        """One attempt: (reservation, 0, "") if granted, else (None, seconds to wait, scope)."""
        scopes = self._scopes(provider, model)
        rid = uuid.uuid4().hex[:16]
        if not scopes:
            return Reservation(rid, (), est_tokens, "none"), 0.0, ""
        if self._acquire_script is not None:
            try:
                return self._redis_acquire(rid, scopes, est_tokens)
            except redis_errors() as e:
                self._degraded(e)
        return self._memory_acquire(rid, scopes, est_tokens)

    def acquire(
        self, provider: str, model: str, est_tokens: int, max_wait: float, sleep: Callable[[float], None] = time.sleep
    ) -> Reservation:
        """Reserve one request and ``est_tokens``; wait up to ``max_wait`` seconds for room.

        Raises:
            LocalRateLimitError: no room within ``max_wait`` (carries the wait needed).
        """
        deadline = time.monotonic() + max_wait
        while True:
            reservation, wait, scope = self.try_acquire(provider, model, est_tokens)
            if reservation is not None:
                return reservation
            if time.monotonic() + wait > deadline:
                raise LocalRateLimitError(scope, wait)
            self._obs.limiter_waited(provider, model, scope, wait)
            sleep(wait + RETRY_SLACK_SECONDS)

    async def aacquire(self, provider: str, model: str, est_tokens: int, max_wait: float) -> Reservation:
        """Async twin of :meth:`acquire`."""
        deadline = time.monotonic() + max_wait
        while True:
            reservation, wait, scope = self.try_acquire(provider, model, est_tokens)
            if reservation is not None:
                return reservation
            if time.monotonic() + wait > deadline:
                raise LocalRateLimitError(scope, wait)
            self._obs.limiter_waited(provider, model, scope, wait)
            await asyncio.sleep(wait + RETRY_SLACK_SECONDS)

    def _redis_acquire(self, rid: str, scopes: tuple[Limit, ...], est: int) -> tuple[Reservation | None, float, str]:
        keys, args = self.acquire_parts(rid, scopes, est)
        granted, wait_ms, index = self._acquire_script(keys=keys, args=args)
        if granted:
            return Reservation(rid, scopes, est, "redis"), 0.0, ""
        return None, int(wait_ms) / 1000, scopes[int(index) - 1].scope

    # -- the scripts' keys and arguments (also composed into the gate's scripts) -----------------

    def scopes(self, provider: str, model: str) -> tuple[Limit, ...]:
        """The limits that apply to a call of ``model`` (configured, else learned; maybe none)."""
        return self._scopes(provider, model)

    def acquire_parts(self, rid: str, scopes: tuple[Limit, ...], est: int) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [rid, est]
        for lim in scopes:
            keys += limit_keys(self.prefix, lim.scope)  # log, tokens, factor
            args += [lim.rpm or 0, lim.tpm or 0]
        args.append(INCREASE)
        return keys, args

    def reconcile_parts(self, reservation: Reservation, actual_tokens: int) -> tuple[list[str], list[Any]] | None:
        """RECONCILE's keys and args, or None when nothing needs reconciling."""
        if not any(lim.tpm for lim in reservation.scopes) or actual_tokens == reservation.tokens:
            return None
        keys = [k for lim in reservation.scopes for k in limit_keys(self.prefix, lim.scope)[:2]]
        return keys, [reservation.id, reservation.tokens, actual_tokens]

    def shrink_parts(self, provider: str, model: str) -> tuple[list[str], list[Any]] | None:
        """The AIMD shrink after a provider 429, as script keys/args (None: no scope to shrink)."""
        scopes = self._scopes(provider, model)
        if not scopes:
            return None
        return [limit_keys(self.prefix, lim.scope)[2] for lim in scopes], [DECREASE, MIN_FACTOR, FACTOR_TTL_SECONDS]

    def reserve_in_memory(self, rid: str, scopes: tuple[Limit, ...], est: int) -> tuple[Reservation | None, float, str]:
        """``try_acquire`` on this process's memory only (the gate's path while Redis is away)."""
        return self._memory_acquire(rid, scopes, est)

    def shrink_in_memory(self, provider: str, model: str) -> None:
        with self._lock:
            for lim in self._scopes(provider, model):
                log_ = self._memory.setdefault(lim.scope, _MemoryLog())
                log_.factor = max(MIN_FACTOR, log_.factor * DECREASE)

    def reconcile_in_memory(self, reservation: Reservation, actual_tokens: int) -> None:
        with self._lock:
            for lim in reservation.scopes:
                log_ = self._memory.get(lim.scope)
                if log_ is not None and reservation.id in log_.tokens:
                    log_.used += actual_tokens - log_.tokens[reservation.id]
                    log_.tokens[reservation.id] = actual_tokens

    def waited(self, provider: str, model: str, scope: str, seconds: float) -> None:
        """Tell metrics and listeners the limiter is about to sleep ``seconds`` for room."""
        self._obs.limiter_waited(provider, model, scope, seconds)

    def _memory_acquire(self, rid: str, scopes: tuple[Limit, ...], est: int) -> tuple[Reservation | None, float, str]:
        now = self._clock()
        with self._lock:
            for lim in scopes:
                log_ = self._memory.setdefault(lim.scope, _MemoryLog())
                log_.prune(now - WINDOW_MS / 1000)
                wait = max(0.001, (log_.order[0][0] if log_.order else now) + WINDOW_MS / 1000 - now)
                if lim.rpm and len(log_.order) + 1 > max(1, int(lim.rpm * log_.factor)):
                    return None, wait, lim.scope
                if lim.tpm and log_.order and log_.used + est > max(1, int(lim.tpm * log_.factor)):
                    return None, wait, lim.scope
            for lim in scopes:
                log_ = self._memory[lim.scope]
                log_.order.append((now, rid))
                log_.tokens[rid] = est
                log_.used += est
                log_.factor = min(1.0, log_.factor + INCREASE)
        return Reservation(rid, scopes, est, "memory"), 0.0, ""

    # -- after the call ---------------------------------------------------------------------

    def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the estimated tokens with what the call really used (only if tpm is limited)."""
        if not any(lim.tpm for lim in reservation.scopes) or actual_tokens == reservation.tokens:
            return
        if reservation.backend == "redis" and self._reconcile_script is not None:
            parts = self.reconcile_parts(reservation, actual_tokens)
            try:
                if parts is not None:
                    self._reconcile_script(keys=parts[0], args=parts[1])
            except redis_errors() as e:
                self._degraded(e)
            return
        self.reconcile_in_memory(reservation, actual_tokens)

    def on_rate_limited(self, provider: str, model: str, retry_after: float | None) -> None:
        """The provider said 429: shrink the allowance of every scope of this call (AIMD)."""
        for lim in self._scopes(provider, model):
            if self._redis is not None:
                try:
                    factor_key = limit_keys(self.prefix, lim.scope)[2]
                    current = float(self._redis.get(factor_key) or 1.0)
                    self._redis.set(factor_key, max(MIN_FACTOR, current * DECREASE), ex=FACTOR_TTL_SECONDS)
                    continue
                except redis_errors() as e:
                    self._degraded(e)
            with self._lock:
                log_ = self._memory.setdefault(lim.scope, _MemoryLog())
                log_.factor = max(MIN_FACTOR, log_.factor * DECREASE)
        log.warning(
            "provider 429 for %s/%s; local allowance reduced",
            provider,
            model,
            extra={"provider": provider, "model": model, "retry_after": retry_after},
        )

    def factor(self, scope: str) -> float:
        """The current allowance factor of a scope (1.0 = the configured limit)."""
        if self._redis is not None:
            try:
                return float(self._redis.get(limit_keys(self.prefix, scope)[2]) or 1.0)
            except redis_errors():
                pass
        with self._lock:
            return self._memory.get(scope, _MemoryLog()).factor
