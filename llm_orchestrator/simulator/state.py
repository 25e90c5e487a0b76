"""The simulator's mutable state: fault rules, limits, latency, model lists, stats, prompt cache.

Everything is guarded by one lock: requests arrive concurrently from many client processes.
Rate limits use a fixed 60-second window per model (aligned to the server's clock), which
makes "at most N per window" exact and easy to assert in tests; as at OpenAI and Anthropic, a
provider's limit applies to each model on its own. Every window is counted, limit or not, so each
reply can carry rate-limit headers (``DEFAULT_RPM``/``DEFAULT_TPM`` when no limit was set).

Models: a provider serves every model it ever listed (the defaults, plus ``add``; a removed
model still answers) and their snapshot ids; anything else gets that provider's real 404, and
an id containing ``retired`` always does. ``snapshots`` maps an alias to the dated id the
replies carry (request ``gpt-6-luna``, reply ``model: gpt-6-luna-2026-09-22``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("openai", "anthropic", "gemini")
FAULT_KINDS = ("status", "timeout", "malformed", "midstream_error")
CACHE_TTL_SECONDS = 300.0
WINDOW_SECONDS = 60.0
DEFAULT_RPM = 10_000  # what the rate-limit headers say when no limit was set
DEFAULT_TPM = 30_000_000
RETIRED_MARKER = "retired"

DEFAULT_MODELS: dict[str, list[str]] = {
    "openai": [
        "gpt-6-luna",
        "gpt-6-sol",
        "gpt-5.6-luna",
        "ft:gpt-6-luna:acme:signals:abc123",
        "text-embedding-4-small",
    ],
    "anthropic": ["claude-haiku-5-5", "claude-sonnet-5-5", "claude-haiku-4-5"],
    "gemini": ["gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-3.5-flash", "text-embedding-005"],
}
GEMINI_TUNED = ["tunedModels/signals-tuned-1"]


@dataclass
class Fault:
    """One injected fault rule (see the control API in the README)."""

    provider: str = "*"
    model: str = "*"
    kind: str = "status"
    status: int = 503
    probability: float = 1.0
    count: int | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    code: str | None = None
    after_chunks: int = 2

    def matches(self, provider: str, model: str) -> bool:
        return self.provider in ("*", provider) and self.model in ("*", model)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        fault = cls(**known)
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        if fault.provider not in (*PROVIDERS, "*"):
            raise ValueError(f"provider must be one of {PROVIDERS} or '*'")
        return fault


@dataclass
class Limit:
    rpm: int | None = None
    tpm: int | None = None
    window_start: float = 0.0
    requests: int = 0
    tokens: int = 0

    def roll(self, now: float) -> None:
        start = now - (now % WINDOW_SECONDS)
        if self.window_start != start:
            self.window_start, self.requests, self.tokens = start, 0, 0


@dataclass(frozen=True)
class RateWindow:
    """What the rate-limit headers of one reply say (the provider's window after this request)."""

    rpm: int
    tpm: int
    requests_left: int
    tokens_left: int
    reset_seconds: float  # until the window (and both budgets) reset


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


# The stats generation a request arrived in (set by the middleware when it arrives): a reply that
# finishes after a reset (a slow call its client gave up on) is not counted in the fresh stats.
ARRIVED_IN: ContextVar[int | None] = ContextVar("sim_arrived_in", default=None)


@dataclass
class SimState:
    """All control-plane state, thread-safe."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    limits: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # provider → (rpm, tpm)
    windows: dict[tuple[str, str], Limit] = field(default_factory=dict)  # (provider, model) → its window
    latency_ms: dict[str, float] = field(default_factory=dict)
    models: dict[str, list[str]] = field(default_factory=lambda: {p: list(m) for p, m in DEFAULT_MODELS.items()})
    served: dict[str, set[str]] = field(default_factory=lambda: _default_served())
    snapshots: dict[str, dict[str, str]] = field(default_factory=lambda: {p: {} for p in PROVIDERS})
    # keyed by (provider, model, status, batch): batch items are counted apart from live calls
    counts: dict[tuple[str, str, int | str, bool], int] = field(default_factory=lambda: defaultdict(int))
    usage: dict[tuple[str, str, int | str, bool], Usage] = field(default_factory=lambda: defaultdict(Usage))
    # (provider, model, prompt, completion, cached, cache_write, batch) -> calls billed with exactly that
    # usage, so a client can price every call as the provider would (costs are rounded per call)
    billed: dict[tuple[str, str, int, int, int, int, bool], int] = field(default_factory=lambda: defaultdict(int))
    cache: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(1234))
    stats_gen: int = 0  # bumped by every reset: see ARRIVED_IN

    def reset(self) -> None:
        with self.lock:
            self.stats_gen += 1
            self.faults.clear()
            self.limits.clear()
            self.windows.clear()
            self.latency_ms.clear()
            self.models = {p: list(m) for p, m in DEFAULT_MODELS.items()}
            self.served = _default_served()
            self.snapshots = {p: {} for p in PROVIDERS}
            self.counts.clear()
            self.usage.clear()
            self.billed.clear()
            self.cache.clear()
            self.rng.seed(1234)

    # -- faults -----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def pick_fault(self, provider: str, model: str) -> Fault | None:
        """The first matching rule that fires for this request (consuming one of its count)."""
        with self.lock:
            for fault in self.faults:
                if not fault.matches(provider, model) or fault.count == 0:
                    continue
                if fault.probability < 1.0 and self.rng.random() >= fault.probability:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                return fault
        return None

    # -- limits -----------------------------------------------------------------------------

    def set_limit(self, provider: str, rpm: int | None, tpm: int | None) -> None:
        with self.lock:
            self.limits[provider] = (rpm, tpm)
            for (p, _model), window in self.windows.items():
                if p == provider:
                    window.rpm, window.tpm = rpm, tpm

    def _window(self, provider: str, model: str) -> Limit:
        window = self.windows.get((provider, model))
        if window is None:
            rpm, tpm = self.limits.get(provider, (None, None))
            window = self.windows[(provider, model)] = Limit(rpm=rpm, tpm=tpm)
        return window

    def admit(self, provider: str, model: str, est_tokens: int) -> tuple[float, str] | None:
        """Count a request against the model's window.

        Returns None when admitted, else (seconds to wait, ``"requests"`` or ``"tokens"``).
        """
        with self.lock:
            limit = self._window(provider, model)
            now = time.time()
            limit.roll(now)
            over_rpm = limit.rpm is not None and limit.requests + 1 > limit.rpm
            over_tpm = limit.tpm is not None and limit.tokens + est_tokens > limit.tpm
            if over_rpm or over_tpm:
                return max(0.001, limit.window_start + WINDOW_SECONDS - now), "requests" if over_rpm else "tokens"
            limit.requests += 1
            limit.tokens += est_tokens
            return None

    def rate_window(self, provider: str, model: str) -> RateWindow:
        """The model's current window, as its rate-limit headers describe it."""
        with self.lock:
            limit = self._window(provider, model)
            now = time.time()
            limit.roll(now)
            rpm, tpm = limit.rpm or DEFAULT_RPM, limit.tpm or DEFAULT_TPM
            return RateWindow(
                rpm,
                tpm,
                max(0, rpm - limit.requests),
                max(0, tpm - limit.tokens),
                max(0.0, limit.window_start + WINDOW_SECONDS - now),
            )

    # -- latency, models --------------------------------------------------------------------

    def latency(self, provider: str) -> float:
        with self.lock:
            return self.latency_ms.get(provider, self.latency_ms.get("*", 0.0)) / 1000.0

    def change_models(
        self, provider: str, add: list[str], remove: list[str], snapshots: dict[str, str] | None = None
    ) -> None:
        with self.lock:
            current = self.models[provider]
            for m in add:
                if m not in current:
                    current.append(m)
            self.models[provider] = [m for m in current if m not in remove]
            self.served[provider].update(add)
            for alias, snapshot in (snapshots or {}).items():
                self.snapshots[provider][alias] = snapshot
                self.served[provider].update((alias, snapshot))

    def list_models(self, provider: str) -> list[str]:
        with self.lock:
            return list(self.models[provider])

    def serves(self, provider: str, model: str) -> bool:
        """Whether ``model`` answers at all (a removed model still does; a ``retired`` one never)."""
        with self.lock:
            return RETIRED_MARKER not in model and model in self.served[provider]

    def answered_as(self, provider: str, model: str) -> str:
        """The model id a reply carries: the alias's dated snapshot when one is set."""
        with self.lock:
            return self.snapshots[provider].get(model, model)

    # -- prompt cache -----------------------------------------------------------------------

    def cache_hit(self, key: str) -> bool:
        """True if ``key`` was cached and is still fresh; (re)stores it either way."""
        now = time.monotonic()
        with self.lock:
            hit = self.cache.get(key, 0.0) > now
            self.cache[key] = now + CACHE_TTL_SECONDS
            return hit

    # -- stats ------------------------------------------------------------------------------

    def record(
        self, provider: str, model: str, status: int | str, usage: Usage | None = None, batch: bool = False
    ) -> None:
        """Count one request. ``status`` is the HTTP status, or the fault kind (``timeout``,
        ``malformed``, ``midstream_error``) when no normal answer was given. ``batch`` marks one
        item of a batch job (answered when the batch runs, not over its own HTTP request).
        A request that arrived before the last reset is not counted."""
        with self.lock:
            arrived = ARRIVED_IN.get()
            if arrived is not None and arrived != self.stats_gen:
                return
            key = (provider, model, status, batch)
            self.counts[key] += 1
            if usage is not None:
                total = self.usage[key]
                total.prompt_tokens += usage.prompt_tokens
                total.completion_tokens += usage.completion_tokens
                total.cached_tokens += usage.cached_tokens
                total.cache_write_tokens += usage.cache_write_tokens
                if status == 200:
                    self.billed[
                        (
                            provider,
                            model,
                            usage.prompt_tokens,
                            usage.completion_tokens,
                            usage.cached_tokens,
                            usage.cache_write_tokens,
                            batch,
                        )
                    ] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            rows = []
            for (provider, model, status, batch), n in sorted(
                self.counts.items(), key=lambda kv: tuple(map(str, kv[0]))
            ):
                u = self.usage.get((provider, model, status, batch), Usage())
                rows.append(
                    {
                        "provider": provider,
                        "model": model,
                        "status": status,
                        "count": n,
                        "prompt_tokens": u.prompt_tokens,
                        "completion_tokens": u.completion_tokens,
                        "cached_tokens": u.cached_tokens,
                        "cache_write_tokens": u.cache_write_tokens,
                        "batch": batch,
                    }
                )
            billed = [
                {
                    "provider": p,
                    "model": m,
                    "prompt_tokens": pt,
                    "completion_tokens": ct,
                    "cached_tokens": cached,
                    "cache_write_tokens": cw,
                    "batch": b,
                    "count": n,
                }
                for (p, m, pt, ct, cached, cw, b), n in sorted(self.billed.items())
            ]
            return {"requests": rows, "billed": billed}

    def arrived(self) -> None:
        """Mark the running request as arriving now (see ``ARRIVED_IN``)."""
        ARRIVED_IN.set(self.stats_gen)

    def reset_stats(self) -> None:
        with self.lock:
            self.stats_gen += 1
            self.counts.clear()
            self.usage.clear()
            self.billed.clear()


def _default_served() -> dict[str, set[str]]:
    served = {p: set(m) for p, m in DEFAULT_MODELS.items()}
    served["gemini"].update(GEMINI_TUNED)
    return served
