"""Library overhead: send_request vs the raw official SDK call, same simulator, 0 ms latency.

Rounds alternate raw and library calls so machine noise hits both alike; the reported ratio is
the median over rounds of (library p50 / raw p50) measured in the same round.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from typing import Any

import openai

from benchmarks.common import ROOT, SimulatorProcess, median, percentile, timed
from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.exceptions import AllFallbacksFailedError

PROMPT = "Why do retries need jitter?"


TENANT = "bench-tenant"


def _config(sim: SimulatorProcess, redis_url: str | None, limits: bool, features: bool = True) -> Any:
    """``limits``: provider rpm/tpm and a tenant budget on; ``features=False``: breaker and ledger off too."""
    provider: dict[str, Any] = {
        "api_key": "sk-bench",
        "base_url": sim.base_url("openai"),
        "fallback_models": ["gpt-6-sol"],
        "timeout": {"connect": 2, "read": 10},
    }
    if limits:
        provider["rate_limit"] = {"rpm": 10_000_000, "tpm": 10_000_000_000}
    elif not features:
        provider["rate_limit"] = {"learn_from_headers": False}
    data: dict[str, Any] = {
        "active_provider": "openai",
        "active_model": "gpt-6-luna",
        "providers": {"openai": provider},
        "cost_tracking": {"enabled": features, "log_path": None},
        "breaker": {"enabled": features},
    }
    if limits:
        data["tenants"] = {TENANT: {"rpm": 10_000_000, "cost_per_day_usd": "1000000"}}
    if redis_url:
        data["redis"] = {"url": redis_url}
    return ConfigManager.from_dict(data).config


def round_trips(sim: SimulatorProcess, redis_url: str, calls: int = 20) -> float:
    """Redis round trips per successful ``send_request`` with every feature on, counted at the connection."""
    from llm_orchestrator.observability.round_trips import RoundTrips

    orch = LLMOrchestrator(_config(sim, redis_url, limits=True))
    for i in range(5):
        orch.send_request(PROMPT, tenant=TENANT, job_id=f"rt-warm-{i}")
    probe = RoundTrips()
    with probe.counting():
        for i in range(calls):
            orch.send_request(PROMPT, tenant=TENANT, job_id=f"rt-{i}")
    return probe.total / calls


def run(sim: SimulatorProcess, redis_url: str, calls: int = 200, rounds: int = 5) -> dict[str, Any]:
    raw = openai.OpenAI(base_url=sim.base_url("openai"), api_key="sk-bench", max_retries=0, timeout=10)

    def raw_call() -> None:
        raw.chat.completions.create(
            model="gpt-6-luna", messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=256
        )

    variants: dict[str, Callable[[], Any]] = {}
    full = LLMOrchestrator(_config(sim, redis_url, limits=True))
    memory_only = LLMOrchestrator(_config(sim, None, limits=False))
    features_off = LLMOrchestrator(_config(sim, redis_url, limits=False, features=False))
    variants["library, memory only (breaker, ledger)"] = lambda: memory_only.send_request(PROMPT)
    variants["library, Redis: breaker + limiter + tenant budget + ledger (+ job id)"] = lambda: full.send_request(
        PROMPT, tenant=TENANT, job_id=_job_id()
    )
    variants["library, Redis configured, features off (no breaker, limits, ledger)"] = lambda: (
        features_off.send_request(PROMPT)
    )
    results: dict[str, Any] = {}
    timed(raw_call, 20)  # warm up connections and lazy imports
    for call in variants.values():
        timed(call, 20)
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    samples: dict[str, list[float]] = {"raw SDK": [], **{name: [] for name in variants}}
    for _ in range(rounds):
        base = timed(raw_call, calls)
        samples["raw SDK"] += base
        for name, call in variants.items():
            lib = timed(call, calls)
            samples[name] += lib
            ratios[name].append(percentile(lib, 50) / percentile(base, 50))
    for name, values in samples.items():
        results[name] = {
            "p50_ms": round(percentile(values, 50), 3),
            "p99_ms": round(percentile(values, 99), 3),
            "ratio_p50": round(median(ratios[name]), 3) if name in ratios else 1.0,
        }
    results["redis_round_trips_per_request"] = round_trips(sim, redis_url)
    results["async"] = _async(sim, redis_url, calls, rounds)
    results["breaker_open_fail_fast_ms"] = _breaker_open(sim, redis_url)
    results["litellm"] = litellm_side(sim, calls, rounds)
    return results


def litellm_side(sim: SimulatorProcess, calls: int, rounds: int) -> dict[str, Any] | None:
    """LiteLLM's figures from its own venv (``benchmarks/litellm_side.py``), or None when that venv is absent."""
    python = ROOT / ".venv-litellm" / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / "litellm_side.py"), sim.base_url("openai"), str(calls), str(rounds)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _job_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _async(sim: SimulatorProcess, redis_url: str, calls: int, rounds: int) -> dict[str, float]:
    """``asend_request`` with every feature on vs ``AsyncOpenAI``, alternating in rounds (median ratio)."""
    orch = LLMOrchestrator(_config(sim, redis_url, limits=True))
    raw = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="sk-bench", max_retries=0, timeout=10)

    async def go() -> dict[str, float]:
        async def measure(fn) -> list[float]:
            import time

            out = []
            for _ in range(calls):
                t = time.perf_counter()
                await fn()
                out.append((time.perf_counter() - t) * 1000)
            return out

        async def raw_call() -> None:
            await raw.chat.completions.create(
                model="gpt-6-luna", messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=256
            )

        def library() -> Any:
            return orch.asend_request(PROMPT, tenant=TENANT, job_id=_job_id())

        await measure(raw_call)
        await measure(library)
        bases, libs, ratios = [], [], []
        for _ in range(rounds):
            base, lib = await measure(raw_call), await measure(library)
            bases += base
            libs += lib
            ratios.append(percentile(lib, 50) / percentile(base, 50))
        return {
            "raw_p50_ms": round(percentile(bases, 50), 3),
            "library_p50_ms": round(percentile(libs, 50), 3),
            "ratio_p50": round(median(ratios), 3),
        }

    return asyncio.run(go())


def _breaker_open(sim: SimulatorProcess, redis_url: str) -> float:
    """Per-request time while every model's breaker is open (no provider call)."""
    base = _config(sim, redis_url, limits=False)
    cfg = base.model_copy(
        update={  # own key prefix: the open breakers must not leak into other benchmarks
            "breaker": base.breaker.model_copy(update={"min_calls": 2, "open_seconds": 300}),
            "redis": base.redis.model_copy(update={"key_prefix": "bench-open-breaker:"}),
        }
    )
    orch = LLMOrchestrator(cfg)
    sim.post("/_sim/faults", '{"provider": "openai", "status": 503}')
    for _ in range(3):
        try:
            orch.send_request(PROMPT)
        except AllFallbacksFailedError:
            pass
    sim.post("/_sim/reset", "{}")

    def call() -> None:
        try:
            orch.send_request(PROMPT)
        except AllFallbacksFailedError:
            pass

    return round(percentile(timed(call, 500), 50), 3)
