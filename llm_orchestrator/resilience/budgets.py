"""Tenant limits: requests per minute, tokens per UTC day and USD per UTC day, shared through Redis.

Protocol, once per provider call (``ModelCall`` does it):

1. ``reserve`` before the call: one Lua script checks the tenant's day (settled usage + holds of
   calls in flight + this call's estimate ≤ each limit) and its requests of the last 60 s, then
   records a *hold* of the estimated tokens and cost and the request, all or nothing. No two
   workers can both take the last of a budget.
2. ``settle`` after a successful call: the hold is replaced by the real tokens and cost (priced
   with the same table and formula as the ledger, so the two agree to the micro-dollar).
3. ``release`` after a failed call: the hold is dropped; nothing is spent.

The estimate is deliberately high (prompt chars / 4 + ``max_tokens``, at full input price), so
the day is never overspent by calls admitted together. A hold that is never settled (a worker
killed mid-call, a stream abandoned) expires after ``hold_seconds`` and is reclaimed by the next
reservation. A call is settled on the day it was reserved on.

Refusals: over a day limit → :class:`BudgetExceededError` (final: the orchestrator neither
retries nor tries another model); over ``rpm`` → :class:`LocalRateLimitError` with
``retry_after`` and scope ``tenant:<name>`` (the worker re-schedules the job).

Without Redis the same rules hold in this process's memory. When Redis errors, the budgets
log it once (per interval) and count in memory until it answers: each process then enforces
each limit on its own, so a fleet may spend up to N times a limit during the outage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from llm_orchestrator.config.manager import DEFAULT_TENANT
from llm_orchestrator.exceptions import BudgetExceededError, TenantRateLimitError
from llm_orchestrator.observability import metrics
from llm_orchestrator.pricing import Price, price_for, to_micros
from llm_orchestrator.providers.base import LLMResponse, Usage
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import tenant_keys

log = logging.getLogger(__name__)

TENANT_SCOPE = "tenant:"  # LocalRateLimitError.scope prefix of a tenant's rpm refusal
TOKENS_LIMIT = "tokens_per_day"  # BudgetExceededError.limit values: the config field names
COST_LIMIT = "cost_per_day_usd"
RPM_WINDOW_MS = 60_000
DAY_TTL_SECONDS = 2 * 86400  # a day's usage outlives the day, for reading yesterday's numbers
DEFAULT_HOLD_SECONDS = 900.0  # an unsettled hold is reclaimed after this (≥ the request deadline)
RETRY_SLACK_SECONDS = 0.005

# KEYS: rpm log, day usage, day holds. ARGV: id, est tokens, est micros, rpm (0 = none),
# tokens limit (-1 = none), micros limit (-1 = none), hold ms, day ttl s.
# Returns {1, 0, tokens, micros} when granted; {0, wait ms, ...} over rpm; {-1, ...} over the
# tokens limit; {-2, ...} over the cost limit. tokens/micros: settled + held before this call.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local est_t, est_m = tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm, tok_lim, mic_lim = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
if #stale > 0 then
  local st, sm = 0, 0
  for _, m in ipairs(stale) do
    local a, b = string.match(m, ':(%d+):(%d+)$')
    st, sm = st + tonumber(a), sm + tonumber(b)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('HINCRBY', KEYS[2], 'held_tokens', 0 - st)
  redis.call('HINCRBY', KEYS[2], 'held_micros', 0 - sm)
end
local u = redis.call('HMGET', KEYS[2], 'tokens', 'micros', 'held_tokens', 'held_micros')
local tokens = tonumber(u[1] or '0') + tonumber(u[3] or '0')
local micros = tonumber(u[2] or '0') + tonumber(u[4] or '0')
if tok_lim >= 0 and tokens + est_t > tok_lim then return {-1, 0, tokens, micros} end
if mic_lim >= 0 and micros + est_m > mic_lim then return {-2, 0, tokens, micros} end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) + 60000 - now), tokens, micros}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if tok_lim >= 0 or mic_lim >= 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1] .. ':' .. ARGV[2] .. ':' .. ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'held_tokens', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'held_micros', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
end
return {1, 0, tokens, micros}
"""

# KEYS: rpm log, day usage, day holds. ARGV: hold member, id, tokens, micros, drop request (0/1),
# day ttl s. Returns the day's settled {tokens, micros} after the update.
SETTLE = """
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  local a, b = string.match(ARGV[1], ':(%d+):(%d+)$')
  redis.call('HINCRBY', KEYS[2], 'held_tokens', 0 - tonumber(a))
  redis.call('HINCRBY', KEYS[2], 'held_micros', 0 - tonumber(b))
end
if ARGV[5] == '1' then redis.call('ZREM', KEYS[1], ARGV[2]) end
local tokens = redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[3])
local micros = redis.call('HINCRBY', KEYS[2], 'micros', ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {tokens, micros}
"""


@dataclass(frozen=True)
class TenantLimit:
    """One tenant's limits in the units the scripts use (None = no limit)."""

    rpm: int | None = None
    tokens_per_day: int | None = None
    micros_per_day: int | None = None

    @property
    def per_day(self) -> bool:
        return self.tokens_per_day is not None or self.micros_per_day is not None

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and not self.per_day


@dataclass(frozen=True)
class Hold:
    """What ``reserve`` granted; give it to ``settle`` or ``release``."""

    id: str
    tenant: str
    day: str  # UTC, YYYYMMDD
    provider: str
    model: str
    tokens: int  # estimated
    micros: int  # estimated
    limit: TenantLimit
    backend: str  # "redis" or "memory"

    @property
    def member(self) -> str:
        return f"{self.id}:{self.tokens}:{self.micros}"


@dataclass(frozen=True)
class DayUsage:
    """A tenant's day: settled usage, holds in flight, and the limits it is measured against."""

    tenant: str
    day: str
    tokens: int
    micros: int
    held_tokens: int = 0
    held_micros: int = 0
    limit: TenantLimit = TenantLimit()


@dataclass
class _MemoryDay:
    tokens: int = 0
    micros: int = 0
    holds: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # id → (tokens, micros, expiry)

    def held(self, now: float) -> tuple[int, int]:
        for rid in [rid for rid, h in self.holds.items() if h[2] <= now]:
            del self.holds[rid]
        return sum(h[0] for h in self.holds.values()), sum(h[1] for h in self.holds.values())


class TenantBudgets:
    """Per-tenant rpm, tokens/day and cost/day, from the ``tenants`` config block.

    Args:
        limits: tenant name (or ``default``) → its limits.
        redis: a client, or None for this process only.
        key_prefix: Redis key prefix.
        prices: the price table (share the cost tracker's, so budgets and ledger agree).
        on_usage: called with a tenant's :class:`DayUsage` after each settle (refused None) and
            each refusal (refused: the limit's name) — the alerts hook.
        hold_seconds: how long an unsettled hold counts before it is reclaimed.
        clock: wall clock (UTC days and the memory backend).
    """

    def __init__(
        self,
        limits: dict[str, TenantLimit] | None = None,
        redis: Any = None,
        key_prefix: str = "llmorch:",
        prices: dict[tuple[str, str], Price] | None = None,
        on_usage: Callable[[DayUsage, str | None], None] | None = None,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = dict(limits or {})
        self.prefix = key_prefix
        self.prices = prices or {}
        self.on_usage = on_usage
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._redis = redis if any(not lim.unlimited for lim in self.limits.values()) else None
        self._reserve: Any = redis.register_script(RESERVE) if self._redis is not None else None
        self._settle = redis.register_script(SETTLE) if self._redis is not None else None
        self._lock = threading.Lock()
        self._days: dict[tuple[str, str], _MemoryDay] = {}
        self._requests: dict[str, deque[float]] = {}
        self._unpriced: set[tuple[str, str]] = set()
        self._degraded = DegradedLog(log, "tenant budgets").warn

    @classmethod
    def from_config(
        cls,
        config: Any,
        redis: Any = None,
        key_prefix: str = "llmorch:",
        prices: dict[tuple[str, str], Price] | None = None,
        on_usage: Callable[[DayUsage, str | None], None] | None = None,
    ) -> TenantBudgets:
        """Budgets for ``config.tenants`` (an empty block: no limits, no Redis traffic)."""
        limits = {
            name: TenantLimit(t.rpm, t.tokens_per_day, t.cost_per_day_micros) for name, t in config.tenants.items()
        }
        hold = max(DEFAULT_HOLD_SECONDS, config.retry.deadline + 60)
        return cls(limits, redis=redis, key_prefix=key_prefix, prices=prices, on_usage=on_usage, hold_seconds=hold)

    def limit_for(self, tenant: str | None) -> TenantLimit | None:
        """The limits of ``tenant`` (its entry, else ``default``), None when it has none."""
        if tenant is None:
            return None
        return self.limits.get(tenant) or self.limits.get(DEFAULT_TENANT)

    # -- before the call ----------------------------------------------------------------------

    def try_reserve(
        self, tenant: str | None, provider: str, model: str, tokens: int, output_tokens: int
    ) -> tuple[Hold | None, float]:
        """One attempt: ``(hold, 0)`` when granted (hold None: no limits apply), else ``(None, wait)``.

        Args:
            tokens: the call's estimated total tokens (prompt estimate + ``output_tokens``).
            output_tokens: the answer's limit (``max_tokens``), priced at the output rate.

        Raises:
            BudgetExceededError: the call would take the tenant's day over a limit.
        """
        hold = self.new_hold(tenant, provider, model, tokens, output_tokens)
        if hold is None:
            return None, 0.0
        if self._reserve is not None:
            try:
                return self._redis_reserve(hold)
            except redis_errors() as e:
                self._degraded(e)
        return self._memory_reserve(hold)

    def reserve(
        self,
        tenant: str | None,
        provider: str,
        model: str,
        tokens: int,
        output_tokens: int,
        max_wait: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Hold | None:
        """Reserve one request and the estimate; wait up to ``max_wait`` seconds for rpm room.

        Returns:
            The hold, or None when the tenant has no limits (nothing to settle).

        Raises:
            BudgetExceededError: over ``tokens_per_day`` or ``cost_per_day_usd`` (no wait helps).
            TenantRateLimitError: over ``rpm`` for longer than ``max_wait``; scope ``tenant:<name>``.
        """
        deadline = time.monotonic() + max_wait
        while True:
            hold, wait = self.try_reserve(tenant, provider, model, tokens, output_tokens)
            if wait <= 0:
                return hold
            if time.monotonic() + wait > deadline:
                raise TenantRateLimitError(f"{TENANT_SCOPE}{tenant}", wait)
            sleep(wait + RETRY_SLACK_SECONDS)

    async def areserve(
        self, tenant: str | None, provider: str, model: str, tokens: int, output_tokens: int, max_wait: float = 0.0
    ) -> Hold | None:
        """Async twin of :meth:`reserve`."""
        deadline = time.monotonic() + max_wait
        while True:
            hold, wait = self.try_reserve(tenant, provider, model, tokens, output_tokens)
            if wait <= 0:
                return hold
            if time.monotonic() + wait > deadline:
                raise TenantRateLimitError(f"{TENANT_SCOPE}{tenant}", wait)
            await asyncio.sleep(wait + RETRY_SLACK_SECONDS)

    def estimate_micros(self, provider: str, model: str, tokens: int, output_tokens: int) -> int:
        """The most a call may cost: the prompt estimate at the full input rate + ``output_tokens``."""
        price = price_for(self.prices, provider, model)
        if price is None:
            self._warn_unpriced(provider, model)
            return 0
        prompt = max(0, tokens - output_tokens)
        return to_micros(price.cost(Usage(prompt_tokens=prompt, completion_tokens=output_tokens)))

    def new_hold(self, tenant: str | None, provider: str, model: str, tokens: int, output_tokens: int) -> Hold | None:
        """The hold a call would take (not taken yet), or None when the tenant has no limits."""
        limit = self.limit_for(tenant)
        if limit is None or limit.unlimited or tenant is None:
            return None
        micros = self.estimate_micros(provider, model, tokens, output_tokens) if limit.micros_per_day else 0
        return Hold(uuid.uuid4().hex[:16], tenant, self.day(), provider, model, tokens, micros, limit, "memory")

    @property
    def shared(self) -> bool:
        """Whether holds are kept in Redis (some tenant has limits and a client is configured)."""
        return self._reserve is not None

    def reserve_parts(self, hold: Hold) -> tuple[list[str], list[Any]]:
        lim = hold.limit
        return tenant_keys(self.prefix, hold.tenant, hold.day), [
            hold.id,
            hold.tokens,
            hold.micros,
            lim.rpm or 0,
            _or_none(lim.tokens_per_day),
            _or_none(lim.micros_per_day),
            int(self.hold_seconds * 1000),
            DAY_TTL_SECONDS,
        ]

    def settle_parts(self, hold: Hold, tokens: int, micros: int, drop_request: bool) -> tuple[list[str], list[Any]]:
        return tenant_keys(self.prefix, hold.tenant, hold.day), [
            hold.member,
            hold.id,
            tokens,
            micros,
            int(drop_request),
            DAY_TTL_SECONDS,
        ]

    def release_args(self, hold: Hold) -> list[Any]:
        """What the gate's admission script needs to give a hold back: member, id, day TTL."""
        return [hold.member, hold.id, DAY_TTL_SECONDS]

    def decide(self, code: int, wait: float, tokens: int, micros: int, hold: Hold) -> tuple[Hold | None, float]:
        """A reserve's reply: (hold, 0) granted, (None, wait) over rpm.

        Raises:
            BudgetExceededError: over the tokens or cost limit of the day.
        """
        return self._decide(code, wait, tokens, micros, hold)

    def reserve_in_memory(self, hold: Hold) -> tuple[Hold | None, float]:
        return self._memory_reserve(hold)

    def spend(self, hold: Hold, response: LLMResponse) -> tuple[int, int]:
        """The tokens and micro-dollars to settle for ``response`` against ``hold``."""
        return response.total_tokens, self._cost_micros(response, hold) if hold.limit.micros_per_day else 0

    def settled(self, hold: Hold, tokens: int, micros: int) -> None:
        """What follows a settle in Redis (the gate's script): tell metrics and alerts the day's usage."""
        self._notify(DayUsage(hold.tenant, hold.day, tokens, micros, limit=hold.limit), refused=None)

    def finish_in_memory(self, hold: Hold, tokens: int, micros: int, drop_request: bool) -> DayUsage:
        return self._finish(replace(hold, backend="memory"), tokens, micros, drop_request)

    def settle_in_memory(self, hold: Hold, tokens: int, micros: int) -> None:
        """``settle`` on this process's memory (no Redis, or Redis away), with the usual notification."""
        self._notify(self.finish_in_memory(hold, tokens, micros, drop_request=False), refused=None)

    def _redis_reserve(self, hold: Hold) -> tuple[Hold | None, float]:
        keys, args = self.reserve_parts(hold)
        code, wait_ms, tokens, micros = self._reserve(keys=keys, args=args)
        return self._decide(int(code), int(wait_ms) / 1000, int(tokens), int(micros), replace(hold, backend="redis"))

    def _memory_reserve(self, hold: Hold) -> tuple[Hold | None, float]:
        now, lim = self._clock(), hold.limit
        with self._lock:
            day = self._days.setdefault((hold.tenant, hold.day), _MemoryDay())
            held_t, held_m = day.held(now)
            tokens, micros = day.tokens + held_t, day.micros + held_m
            code, wait = 1, 0.0
            if lim.tokens_per_day is not None and tokens + hold.tokens > lim.tokens_per_day:
                code = -1
            elif lim.micros_per_day is not None and micros + hold.micros > lim.micros_per_day:
                code = -2
            elif lim.rpm:
                log_ = self._requests.setdefault(hold.tenant, deque())
                while log_ and log_[0] <= now - RPM_WINDOW_MS / 1000:
                    log_.popleft()
                if len(log_) >= lim.rpm:
                    code, wait = 0, max(0.001, log_[0] + RPM_WINDOW_MS / 1000 - now)
                else:
                    log_.append(now)
            if code == 1 and lim.per_day:
                day.holds[hold.id] = (hold.tokens, hold.micros, now + self.hold_seconds)
        return self._decide(code, wait, tokens, micros, hold)

    def _decide(self, code: int, wait: float, tokens: int, micros: int, hold: Hold) -> tuple[Hold | None, float]:
        if code == 1:
            return hold, 0.0
        if code == 0:
            return None, wait
        limit = TOKENS_LIMIT if code == -1 else COST_LIMIT
        log.warning(
            "tenant %s over its %s; call refused",
            hold.tenant,
            limit,
            extra={"tenant": hold.tenant, "limit": limit, "provider": hold.provider, "model": hold.model},
        )
        self._notify(DayUsage(hold.tenant, hold.day, tokens, micros, limit=hold.limit), refused=limit)
        raise BudgetExceededError(hold.tenant, limit)

    # -- after the call -----------------------------------------------------------------------

    def settle(self, hold: Hold | None, response: LLMResponse) -> DayUsage | None:
        """Replace the hold's estimate with what the call really used and cost.

        Returns the day's settled usage after this call (None when no hold).
        """
        if hold is None:
            return None
        tokens = response.total_tokens
        micros = self._cost_micros(response, hold) if hold.limit.micros_per_day else 0
        usage = self._finish(hold, tokens, micros, drop_request=False)
        self._notify(usage, refused=None)
        return usage

    def release(self, hold: Hold | None, called: bool = True) -> None:
        """Drop the hold of a call that failed. ``called=False``: no request was made either."""
        if hold is not None:
            self._finish(hold, 0, 0, drop_request=not called)

    def _finish(self, hold: Hold, tokens: int, micros: int, drop_request: bool) -> DayUsage:
        if hold.backend == "redis" and self._settle is not None:
            try:
                keys, args = self.settle_parts(hold, tokens, micros, drop_request)
                total_t, total_m = self._settle(keys=keys, args=args)
                return DayUsage(hold.tenant, hold.day, int(total_t), int(total_m), limit=hold.limit)
            except redis_errors() as e:
                self._degraded(e)  # the Redis hold expires by itself; count the spend here meanwhile
        with self._lock:
            day = self._days.setdefault((hold.tenant, hold.day), _MemoryDay())
            day.holds.pop(hold.id, None)
            day.tokens += tokens
            day.micros += micros
            if drop_request and hold.limit.rpm:
                log_ = self._requests.get(hold.tenant)
                if log_:
                    log_.pop()  # approximately: the newest entry; the counts are what matter
            return DayUsage(hold.tenant, hold.day, day.tokens, day.micros, limit=hold.limit)

    def _cost_micros(self, response: LLMResponse, hold: Hold) -> int:
        price = price_for(self.prices, response.provider, response.model) or price_for(
            self.prices, hold.provider, hold.model
        )
        if price is None:
            self._warn_unpriced(response.provider, response.model)
            return 0
        return to_micros(price.cost(response.usage))

    def _notify(self, usage: DayUsage, refused: str | None) -> None:
        metrics.on_budget(
            usage.tenant,
            usage.day,
            {
                TOKENS_LIMIT: (usage.tokens, usage.limit.tokens_per_day),
                COST_LIMIT: (usage.micros, usage.limit.micros_per_day),
            },
            refused,
        )
        if self.on_usage is not None:
            self.on_usage(usage, refused)

    def _warn_unpriced(self, provider: str, model: str) -> None:
        if (provider, model) not in self._unpriced:
            self._unpriced.add((provider, model))
            log.warning("no price for %s/%s: tenant cost budgets count its calls as $0", provider, model)

    # -- reading ------------------------------------------------------------------------------

    def usage(self, tenant: str, day: str | None = None) -> DayUsage:
        """A tenant's day (default today, UTC): settled tokens and micro-dollars, and holds."""
        day = day or self.day()
        limit = self.limit_for(tenant) or TenantLimit()
        if self._redis is not None:
            try:
                raw = self._redis.hmget(
                    tenant_keys(self.prefix, tenant, day)[1], "tokens", "micros", "held_tokens", "held_micros"
                )
                t, m, ht, hm = (int(v or 0) for v in raw)
                return DayUsage(tenant, day, t, m, ht, hm, limit)
            except redis_errors() as e:
                self._degraded(e)
        with self._lock:
            d = self._days.get((tenant, day), _MemoryDay())
            ht, hm = d.held(self._clock())
            return DayUsage(tenant, day, d.tokens, d.micros, ht, hm, limit)

    def day(self) -> str:
        """Today, UTC, as YYYYMMDD."""
        return datetime.fromtimestamp(self._clock(), tz=timezone.utc).strftime("%Y%m%d")


def _or_none(value: int | None) -> int:
    return -1 if value is None else value
