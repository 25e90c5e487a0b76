"""Every Redis key the library writes, in one place (type and TTL alongside).

Every multi-key script keeps its keys in one Redis Cluster hash slot, by a hash tag in ``{}``:
one breaker's keys share ``{provider/model}``, a provider's limiter scopes ``{provider}``, a
tenant's keys ``{tenant}``, the whole cost ledger ``{ledger}`` (rows, index, done marks, pending
marks, session totals: one slot, one node), a provider's model cache ``{models:provider}``.
``prefix`` is ``redis.key_prefix`` from the config (``llmorch:``).
"""

from __future__ import annotations

# Circuit breaker, per (provider, model). TTL: window + max open time + 60 s, refreshed on write.
BREAKER_STATE = "{prefix}breaker:{{{provider}/{model}}}:state"  # HASH state, gen, open_until, reopen, probes_ok, seq
BREAKER_WINDOW = (
    "{prefix}breaker:{{{provider}/{model}}}:window"  # HASH "c:<sec>"/"f:<sec>" → calls/failures per 1 s bucket
)
BREAKER_PROBES = "{prefix}breaker:{{{provider}/{model}}}:probes"  # ZSET lease id → lease expiry (ms, Redis time)

# Rate limiter, per scope ("openai" or "openai/gpt-6-luna"); tagged by provider, so one script
# checks a call's provider and model scopes together. TTL: 2 windows.
LIMIT_REQUESTS = "{prefix}limit:{{{provider}}}:{scope}:requests"  # ZSET reservation id → time (ms); sliding 60 s
LIMIT_TOKENS = "{prefix}limit:{{{provider}}}:{scope}:tokens"  # STRING running sum of the log's tokens
LIMIT_FACTOR = "{prefix}limit:{{{provider}}}:{scope}:factor"  # STRING AIMD factor (0.1–1.0); TTL 10 min

# Tenant limits (see budgets.py): one hash tag per tenant; days are UTC (YYYYMMDD); TTL 2 days
# unless noted. DAY holds settled tokens/micros and held_tokens/held_micros of calls in flight.
TENANT_REQUESTS = "{prefix}tenant:{{{tenant}}}:requests"  # ZSET request id → time (ms); sliding 60 s; TTL 2 min
TENANT_DAY = "{prefix}tenant:{{{tenant}}}:day:{day}"  # HASH tokens, micros, held_tokens, held_micros
TENANT_HOLDS = "{prefix}tenant:{{{tenant}}}:holds:{day}"  # ZSET "<id>:<tokens>:<micros>" → hold expiry (ms)

# Alerts (see alerts.py): a budget level alerted once per tenant, day, limit and level.
ALERT_ONCE = "{prefix}alert:{{{tenant}}}:{day}:{limit}:{level}"  # STRING "1", SET NX; TTL 2 days

# Cost ledger (see cost_tracker.py). Rows kept `cost_tracking.retention_days` (35 by default).
LEDGER_ROW = "{prefix}ledger:{{ledger}}:row:{row_id}"  # HASH one cost record
LEDGER_INDEX = "{prefix}ledger:{{ledger}}:index"  # ZSET row id → unix time (s)
LEDGER_DONE = "{prefix}ledger:{{ledger}}:done:{job_id}:{attempt}"  # STRING row id: the (job, attempt) was recorded
LEDGER_PENDING = "{prefix}ledger:{{ledger}}:pending"  # HASH "job_id:attempt" → unix time the call started
SESSION_COST = "{prefix}ledger:{{ledger}}:session:{session_id}:micro_usd"  # STRING micro-dollars; TTL = retention
ROLLUP_DAY = "{prefix}rollup:{day}"  # STRING JSON rows of one UTC day; TTL = retention

# Observability (see observability/stats.py): provider calls, fallbacks, breaker transitions.
STATS_EVENTS = "{prefix}stats:events"  # STREAM kind/provider/model/...; MAXLEN ~200k, TTL 8 days refreshed on write

# Classification (see classification/cache.py and checkpoints.py).
CLASSIFY_CACHE = "{prefix}classify:cache:{digest}"  # STRING JSON answer; TTL classification.cache_ttl_seconds
CLASSIFY_CALL = "{prefix}classify:call:{job_id}:{index}"  # STRING JSON response of one call of a job; TTL 1 day
CLASSIFY_LANE = "{prefix}classify:lane:{job_id}"  # HASH known:<hash>/live:<hash>/open → JSON; TTL 2 days

# Model registry (no TTL: manual refresh only).
MODELS = "{prefix}models:{{models:{provider}}}"  # HASH model id → JSON ModelInfo
MODELS_REFRESHED = "{prefix}models:{{models:{provider}}}:refreshed_at"  # STRING ISO 8601


def breaker_keys(prefix: str, provider: str, model: str) -> list[str]:
    """The three keys of one breaker: state, window, probes."""
    return [
        k.format(prefix=prefix, provider=provider, model=model) for k in (BREAKER_STATE, BREAKER_WINDOW, BREAKER_PROBES)
    ]


def tenant_keys(prefix: str, tenant: str, day: str) -> list[str]:
    """The keys of one tenant's day: requests log, day usage, holds."""
    return [k.format(prefix=prefix, tenant=tenant, day=day) for k in (TENANT_REQUESTS, TENANT_DAY, TENANT_HOLDS)]


def limit_keys(prefix: str, scope: str) -> list[str]:
    """The keys of one limiter scope (``provider`` or ``provider/model``): requests log, tokens total, factor."""
    provider = scope.split("/", 1)[0]
    return [
        k.format(prefix=prefix, provider=provider, scope=scope) for k in (LIMIT_REQUESTS, LIMIT_TOKENS, LIMIT_FACTOR)
    ]
