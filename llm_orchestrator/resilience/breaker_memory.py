"""The breaker's state machine in process memory (for the library used without Redis).

Semantics match :mod:`breaker_redis` exactly; both run the same behaviour tests.
CLOSED counts calls and failures in 1-second buckets over a sliding window and opens when at
least ``min_calls`` were seen and the failure rate is ≥ ``failure_rate``. OPEN fails fast until
``open_until``. HALF-OPEN grants at most ``half_open_probes`` leases at a time; that many
successes close it, one failure re-opens it for twice as long (capped). A result reported
with an old generation is ignored.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_orchestrator.resilience.breaker_types import BreakerSettings, Permit

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class _State:
    state: str = CLOSED
    gen: int = 0
    open_until: float = 0.0
    reopen: int = 0
    probes_ok: int = 0
    buckets: dict[int, list[int]] = field(default_factory=dict)  # second → [calls, failures]
    leases: dict[str, float] = field(default_factory=dict)  # lease id → expiry


class MemoryBreaker:
    """All breakers of this process, keyed by (provider, model)."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], _State] = {}
        self._seq = itertools.count(1)

    def acquire(self, provider: str, model: str) -> Permit:
        """A permit to call, or a refusal (``permit.allowed`` False, ``retry_after`` set)."""
        now = self._clock()
        s = self.settings
        with self._lock:
            st = self._states.setdefault((provider, model), _State())
            if st.state == OPEN:
                if now < st.open_until:
                    return Permit(provider, model, st.gen, allowed=False, retry_after=st.open_until - now)
                st.state, st.gen, st.probes_ok, st.leases = HALF_OPEN, st.gen + 1, 0, {}
            if st.state == HALF_OPEN:
                st.leases = {k: v for k, v in st.leases.items() if v > now}
                if len(st.leases) >= s.half_open_probes:
                    wait = min(st.leases.values()) - now
                    return Permit(provider, model, st.gen, allowed=False, retry_after=max(wait, 0.001))
                lease = f"{st.gen}:{next(self._seq)}"
                st.leases[lease] = now + s.probe_lease_seconds
                return Permit(provider, model, st.gen, lease=lease)
            return Permit(provider, model, st.gen)

    def record(self, permit: Permit, outcome: int) -> str:
        """Report a call's outcome: 1 success, 0 failure, -1 neither (releases a probe lease).

        Returns the state after the report ("stale" if the permit's generation is old).
        """
        now = self._clock()
        s = self.settings
        with self._lock:
            st = self._states.setdefault((permit.provider, permit.model), _State())
            if permit.gen != st.gen:
                return "stale"
            if st.state == CLOSED and outcome >= 0:
                sec = int(now)
                bucket = st.buckets.setdefault(sec, [0, 0])
                bucket[0] += 1
                bucket[1] += 1 - outcome
                oldest = sec - s.window_seconds
                st.buckets = {k: v for k, v in st.buckets.items() if k > oldest}
                calls = sum(v[0] for v in st.buckets.values())
                fails = sum(v[1] for v in st.buckets.values())
                if calls >= s.min_calls and fails >= s.failure_rate * calls:
                    self._open(st, now, reopen=0)
            elif st.state == HALF_OPEN and permit.lease in st.leases:
                del st.leases[permit.lease]
                if outcome == 0:
                    self._open(st, now, reopen=st.reopen + 1)
                elif outcome == 1:
                    st.probes_ok += 1
                    if st.probes_ok >= s.half_open_probes:
                        st.state, st.gen, st.reopen, st.buckets, st.leases = CLOSED, st.gen + 1, 0, {}, {}
            return st.state

    def _open(self, st: _State, now: float, reopen: int) -> None:
        s = self.settings
        duration = min(s.max_open_seconds, s.open_seconds * (2**reopen)) * (1 + random.uniform(-s.jitter, s.jitter))
        st.state, st.gen, st.reopen, st.open_until = OPEN, st.gen + 1, reopen, now + duration
        st.buckets, st.leases, st.probes_ok = {}, {}, 0

    def snapshot(self, provider: str, model: str) -> dict[str, object]:
        """State for observability: state, gen, open_for (seconds left)."""
        now = self._clock()
        with self._lock:
            st = self._states.get((provider, model), _State())
            return {"state": st.state, "gen": st.gen, "open_for": max(0.0, st.open_until - now)}
