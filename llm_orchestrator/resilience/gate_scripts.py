"""The two Lua scripts of one provider call: admission and settlement, each one round trip.

They are composed from the components' own scripts, unchanged: each body is wrapped as a local
function whose parameters are named ``KEYS`` and ``ARGV``, so it runs exactly as when called on its
own, on its slice of the keys and arguments. What the composition adds is the order and the
give-back on a refusal — the same order ``ModelCall`` used to run as separate calls:

ADMIT    breaker permit → tenant budget hold (and rpm) → limiter reservation → ledger pending mark.
         A refusal gives back what was taken before it (a probe lease, a hold) and says who refused.
SETTLE   breaker outcome → limiter reconcile (and AIMD shrink after a 429) → budget settle or
         release → ledger row (once per (job_id, attempt)) + session total → stats stream entry.

Layout: ``ARGV[1]`` is the number of parts; then, per part in the order above, two numbers (its key
count and argument count), then every part's arguments in that order. ``KEYS`` holds every part's
keys in the same order. A part with no keys and no arguments is skipped.

On a single Redis one script touches every key of the call. On Redis Cluster keys of different hash
tags cannot meet in one script; there the gate runs each part on its own (see ``gate.py``).
"""

from __future__ import annotations

from llm_orchestrator.ledger import COMMIT as LEDGER_COMMIT
from llm_orchestrator.resilience.breaker_redis import ACQUIRE as BREAKER_ACQUIRE
from llm_orchestrator.resilience.breaker_redis import RECORD as BREAKER_RECORD
from llm_orchestrator.resilience.budgets import RESERVE as BUDGET_RESERVE
from llm_orchestrator.resilience.budgets import SETTLE as BUDGET_SETTLE
from llm_orchestrator.resilience.ratelimit import ACQUIRE as LIMITER_ACQUIRE
from llm_orchestrator.resilience.ratelimit import RECONCILE as LIMITER_RECONCILE

# KEYS: factor keys. ARGV: decrease, floor, ttl s. The limiter's AIMD shrink after a provider 429.
LIMITER_SHRINK = """
for i = 1, #KEYS do
  local f = tonumber(redis.call('GET', KEYS[i]) or '1')
  redis.call('SET', KEYS[i], math.max(tonumber(ARGV[2]), f * tonumber(ARGV[1])), 'EX', ARGV[3])
end
return 1
"""

# KEYS: pending hash. ARGV: field, time. The ledger's "calling now" mark (before the provider call).
LEDGER_BEGIN = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: stream. ARGV: maxlen, ttl s, then field/value pairs.
STATS_ADD = """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

_SLICES = """
local function parts()
  local n = tonumber(ARGV[1])
  local out, k, a = {}, 1, 2 + 2 * n
  for i = 1, n do
    local nk, na = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    local ks, as = {}, {}
    for j = 1, nk do ks[j] = KEYS[k + j - 1] end
    for j = 1, na do as[j] = ARGV[a + j - 1] end
    out[i] = {ks, as, nk + na > 0}
    k, a = k + nk, a + na
  end
  return out
end
"""


def _fn(name: str, body: str) -> str:
    return f"local function {name}(KEYS, ARGV)\n{body}\nend\n"


# Parts: 1 breaker acquire, 2 budget reserve, 3 limiter acquire, 4 ledger begin, 5 breaker record
# constants (window … ttl: for giving back a probe lease), 6 budget release (member, id, ttl).
# Returns {'OK', gen, lease, tokens, micros} | {'B', wait ms} | {'G', code, wait ms, tokens, micros}
# | {'L', wait ms, scope index}.
ADMIT = "".join(
    [
        _fn("breaker_acquire", BREAKER_ACQUIRE),
        _fn("breaker_record", BREAKER_RECORD),
        _fn("budget_reserve", BUDGET_RESERVE),
        _fn("budget_settle", BUDGET_SETTLE),
        _fn("limiter_acquire", LIMITER_ACQUIRE),
        _fn("ledger_begin", LEDGER_BEGIN),
        _SLICES,
        """
local p = parts()
local gen, lease, tokens, micros = 0, '', 0, 0
local function give_back(budget_taken)
  if budget_taken and p[6][3] then
    local r = p[6][2]
    budget_settle(p[2][1], {r[1], r[2], 0, 0, 1, r[3]})
  end
  if lease ~= '' and p[5][3] then
    local c = p[5][2]
    breaker_record(p[1][1], {gen, lease, -1, c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]})
  end
end
if p[1][3] then
  local r = breaker_acquire(p[1][1], p[1][2])
  if r[1] == 0 then return {'B', r[4]} end
  gen, lease = r[2], r[3]
end
if p[2][3] then
  local r = budget_reserve(p[2][1], p[2][2])
  if r[1] ~= 1 then
    give_back(false)
    return {'G', r[1], r[2], r[3], r[4]}
  end
  tokens, micros = r[3], r[4]
end
if p[3][3] then
  local r = limiter_acquire(p[3][1], p[3][2])
  if r[1] == 0 then
    give_back(true)
    return {'L', r[2], r[3]}
  end
end
if p[4][3] then ledger_begin(p[4][1], p[4][2]) end
return {'OK', gen, lease, tokens, micros}
""",
    ]
)

# Parts: 1 breaker record, 2 limiter reconcile, 3 limiter shrink, 4 budget settle, 5 ledger commit,
# 6 stats entry. Returns {breaker state or '', budget tokens, budget micros, ledger new (0/1), row id,
# session micros or -1}.
SETTLE = "".join(
    [
        _fn("breaker_record", BREAKER_RECORD),
        _fn("limiter_reconcile", LIMITER_RECONCILE),
        _fn("limiter_shrink", LIMITER_SHRINK),
        _fn("budget_settle", BUDGET_SETTLE),
        _fn("ledger_commit", LEDGER_COMMIT),
        _fn("stats_add", STATS_ADD),
        _SLICES,
        """
local p = parts()
local out = {'', 0, 0, 0, '', -1}
if p[1][3] then out[1] = breaker_record(p[1][1], p[1][2]) end
if p[2][3] then limiter_reconcile(p[2][1], p[2][2]) end
if p[3][3] then limiter_shrink(p[3][1], p[3][2]) end
if p[4][3] then
  local r = budget_settle(p[4][1], p[4][2])
  out[2], out[3] = r[1], r[2]
end
if p[5][3] then
  local r = ledger_commit(p[5][1], p[5][2])
  out[4], out[5] = r[1], r[2]
  if p[5][2][5] ~= '' then out[6] = tonumber(redis.call('GET', p[5][1][5]) or '0') end
end
if p[6][3] then stats_add(p[6][1], p[6][2]) end
return out
""",
    ]
)


def layout(parts: list[tuple[list[str], list[object]]]) -> tuple[list[str], list[object]]:
    """(keys, argv) for a composed script from its parts' (keys, args), in order."""
    keys: list[str] = []
    header: list[object] = [len(parts)]
    args: list[object] = []
    for part_keys, part_args in parts:
        header += [len(part_keys), len(part_args)]
        keys += part_keys
        args += part_args
    return keys, header + args
