"""Cost per 1,000 signals and accuracy: naive vs the full pipeline (vs the provider batch lane).

- **naive**: one call per signal on the provider's top model, the single-signal prompt, priced
  as if nothing were cached (what a first implementation pays);
- **pipeline**: keyword stage + result cache + cheap → top cascade + 10 signals per call +
  prompt caching, i.e. ``SignalClassifier`` with the cascade below;
- **batch lane**: the same pipeline with its model calls sent through the provider's batch API
  (``classification.lane``), at the batch price.

All priced with the packaged list prices (``pricing.yaml``). The simulator answers with its own
keyword rules, so accuracy here checks the pipeline's plumbing (nothing lost, no label changed
by batching or caching), not a model's quality.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from benchmarks.common import ROOT
from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.classification.lane import LaneJob, Wait
from llm_orchestrator.classification.parser import Classification, parse_single
from llm_orchestrator.classification.pipeline import SignalClassifier
from llm_orchestrator.classification.prompt import system_prompt, user_prompt
from llm_orchestrator.providers.base import Usage

CASCADES = {
    "openai": ["gpt-6-luna", "gpt-6-sol"],
    "anthropic": ["claude-haiku-5-5", "claude-sonnet-5-5"],
    "gemini": ["gemini-3.5-flash-lite", "gemini-3.8-flash"],
}
ACCEPT_AT = 0.8  # the cheap model's answer is kept at this confidence or more


def load_signals() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ROOT / "data" / "signals_sample.jsonl").read_text().splitlines() if line]


def config(sim: Any, provider: str) -> Any:
    cheap, top = CASCADES[provider]
    providers = {p: {"api_key": f"sk-bench-{p}", "base_url": sim.base_url(p), "fallback_models": []} for p in CASCADES}
    return ConfigManager.from_dict(
        {
            "active_provider": provider,
            "active_model": top,
            "providers": providers,
            "cost_tracking": {"enabled": True, "log_path": None},
            "classification": {
                "cascade": {provider: [{"model": cheap, "accept_at": ACCEPT_AT}, {"model": top}]},
                "batch_size": 10,
            },
        }
    ).config


def naive(sim: Any, provider: str, signals: list[dict[str, Any]]) -> dict[str, Any]:
    orch = LLMOrchestrator(config(sim, provider))
    cost, right = Decimal(0), 0
    for s in signals:
        r = orch.send_request(user_prompt(s["text"]), system=system_prompt(), max_tokens=200)
        uncached = Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens)
        cost += orch.cost_tracker.price(uncached, provider, r.model)
        parsed = parse_single(r.content)
        right += isinstance(parsed, Classification) and parsed.category == s["label"]
    return _row(cost, right, len(signals), calls=len(signals))


def pipeline(sim: Any, provider: str, signals: list[dict[str, Any]]) -> dict[str, Any]:
    orch = LLMOrchestrator(config(sim, provider))
    run = SignalClassifier(orch).classify([(s["id"], s["text"]) for s in signals])
    cost = sum((r.cost_usd for r in run.results), Decimal(0))
    right = sum(r.category == s["label"] for r, s in zip(run.results, signals))
    stages: dict[str, int] = {}
    for r in run.results:
        stages[r.stage] = stages.get(r.stage, 0) + 1
    hit = run.cached_tokens / run.prompt_tokens if run.prompt_tokens else 0.0
    return {
        **_row(cost, right, len(signals), calls=len(run.responses)),
        "stages": stages,
        "prompt_cache_hit_rate": round(hit, 3),
    }


def batch_lane(sim: Any, provider: str, signals: list[dict[str, Any]]) -> dict[str, Any]:
    sim.post("/_sim/batch", '{"delay_ms": 0}')
    job = LaneJob(SignalClassifier(LLMOrchestrator(config(sim, provider))), f"bench-{provider}", poll_seconds=0)
    pairs = [(s["id"], s["text"]) for s in signals]
    out = job.step(pairs)
    rounds = 0
    while isinstance(out, Wait):
        rounds += 1
        out = job.step(pairs)
    cost = sum((r.cost_usd for r in out.results), Decimal(0))
    right = sum(r.category == s["label"] for r, s in zip(out.results, signals))
    return {**_row(cost, right, len(signals), calls=len(out.responses)), "provider_batches": rounds}


def run(sim: Any, providers: tuple[str, ...] = ("openai", "anthropic", "gemini")) -> dict[str, Any]:
    signals = load_signals()
    out: dict[str, Any] = {"signals": len(signals)}
    for provider in providers:
        n, p, b = naive(sim, provider, signals), pipeline(sim, provider, signals), batch_lane(sim, provider, signals)
        out[provider] = {
            "naive": n,
            "pipeline": p,
            "batch_lane": b,
            "cost_ratio": _ratio(p, n),
            "batch_lane_cost_ratio": _ratio(b, n),
            "accuracy_ratio": round(p["accuracy"] / n["accuracy"], 3) if n["accuracy"] else None,
        }
    return out


def _row(cost: Decimal, right: int, n: int, calls: int) -> dict[str, Any]:
    return {
        "usd_per_1k": str((cost / n * 1000).quantize(Decimal("0.000001"))),
        "accuracy": round(right / n, 3),
        "calls": calls,
    }


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    return round(float(Decimal(a["usd_per_1k"]) / Decimal(b["usd_per_1k"])), 3)
