"""Rate-limit saturation: how much of a provider's limit 4 worker processes use, and how many 429s.

The simulator enforces ``rpm`` for OpenAI (429 with Retry-After past it). With
``configured=True`` the library's shared Redis limiter is configured with the same ``rpm``; with
``configured=False`` the config states no limit and the limiter learns it from the simulator's
``x-ratelimit-*`` headers (paced at 95 % of it). Two workers of two processes each drain
``jobs`` completions. Reported: the share of the limit used — the least time the limit allows
for that many requests over the time taken (goal ≥ 95 %) — and 429s as a share of all provider
requests (goal < 1 %).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, SimulatorProcess
from tests.worker_fixtures import WorkerProcess


def _config(sim: SimulatorProcess, redis_url: str, path: Path, rpm: int | None) -> Path:
    providers = {
        p: {
            "api_key": "sk-bench",
            "base_url": sim.base_url(p),
            "timeout": {"connect": 2, "read": 10},
            "fallback_models": [],
        }
        for p in ("openai", "anthropic", "gemini")
    }
    if rpm is not None:
        providers["openai"]["rate_limit"] = {"rpm": rpm}
    path.write_text(
        yaml.safe_dump(
            {
                "active_provider": "openai",
                "active_model": "gpt-6-luna",
                "providers": providers,
                "redis": {"url": redis_url},
                "cost_tracking": {"enabled": True, "log_path": None},
            }
        )
    )
    return path


def _statuses(sim: SimulatorProcess) -> dict[int, int]:
    with urllib.request.urlopen(sim.url + "/_sim/stats", timeout=5) as resp:
        rows = json.loads(resp.read())["requests"]
    out: dict[int, int] = {}
    for r in rows:
        if r["provider"] == "openai":
            out[r["status"]] = out.get(r["status"], 0) + r["count"]
    return out


def run(
    sim: SimulatorProcess, redis_url: str, jobs: int = 1500, rpm: int = 600, configured: bool = True
) -> dict[str, Any]:
    os.environ["REDIS_URL"] = redis_url
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    tmp = Path(tempfile.mkdtemp(prefix="llmorch-sat-"))
    config = _config(sim, redis_url, tmp / "c.yaml", rpm if configured else None)
    env = {**os.environ, "REDIS_URL": redis_url, "LLM_ORCH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    sim.post("/_sim/reset", "{}")
    sim.post("/_sim/limits", json.dumps({"provider": "openai", "rpm": rpm}))
    workers = [WorkerProcess(env, tmp, concurrency=2).start(celery_app) for _ in range(2)]
    try:
        started = time.perf_counter()
        handles = [celery_app.send_task("llm.complete", kwargs={"payload": {"prompt": f"q{i}"}}) for i in range(jobs)]
        results = [h.get(timeout=jobs / rpm * 60 * 3 + 120) for h in handles]
        minutes = (time.perf_counter() - started) / 60
        statuses = _statuses(sim)
    finally:
        for w in workers:
            w.stop()
        sim.post("/_sim/reset", "{}")
    ok = statuses.get(200, 0)
    # Under a 60 s sliding limit, n requests need at least (n - 1) // rpm whole minutes (a full
    # window at once, then the next as the first one ages out): the share of the limit used is
    # that ideal time over the time taken.
    ideal = (ok - 1) // rpm
    used = ideal / minutes if ideal >= 1 else None
    return {
        "jobs": jobs,
        "rpm_limit": rpm,
        "limit_in_config": configured,
        "processes": 4,
        "minutes": round(minutes, 2),
        "succeeded": sum(r["status"] == "succeeded" for r in results),
        "provider_200": ok,
        "provider_429": statuses.get(429, 0),
        "share_429": round(statuses.get(429, 0) / max(1, sum(statuses.values())), 4),
        "share_of_limit_used": None if used is None else round(used, 3),
    }
