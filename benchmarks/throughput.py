"""Job throughput: `llm.complete` through a real worker vs a no-op task on the same settings.

``llm.noop`` is Celery itself (sent with ``send_task``, its result stored in Celery's backend);
``llm.complete`` is sent the way users send it, through ``worker.producer`` (its result stored once,
in the job's own key). Worker CPU is the whole process tree's, from /proc. ``raw_sdk_cpu_ms`` is the
CPU of one raw OpenAI SDK call to the same simulator in this process: the goal is complete ≤ noop +
one raw SDK call + 1 ms.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, SimulatorProcess, cpu_seconds
from tests.worker_fixtures import WorkerProcess


def _config(sim: SimulatorProcess, redis_url: str, path: Path) -> Path:
    providers = {
        p: {
            "api_key": "sk-bench",
            "base_url": sim.base_url(p),
            "timeout": {"connect": 2, "read": 10},
            "default_model": m,
        }
        for p, m in (("openai", "gpt-6-luna"), ("anthropic", "claude-haiku-5-5"), ("gemini", "gemini-3.5-flash-lite"))
    }
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


def _drain(app: Any, task: str, n: int, payload: dict[str, Any]) -> float:
    started = time.perf_counter()
    if task == "llm.complete":
        from worker import producer

        handles = [producer.submit_completion(payload["prompt"]) for _ in range(n)]
        for h in handles:
            h.get(timeout=300)
    else:
        results = [app.send_task(task, kwargs={"payload": payload}) for _ in range(n)]
        for r in results:
            r.get(timeout=300)
    return n / (time.perf_counter() - started)


def raw_sdk_cpu_ms(sim: SimulatorProcess, calls: int = 200) -> float:
    """CPU (this process) of one raw OpenAI SDK call to the simulator, after a warm-up."""
    import openai

    client = openai.OpenAI(api_key="sk-bench", base_url=sim.base_url("openai"), max_retries=0)
    ask = {
        "model": "gpt-6-luna",
        "messages": [{"role": "user", "content": "Why do retries need jitter?"}],
        "max_completion_tokens": 64,
    }
    for _ in range(20):
        client.chat.completions.create(**ask)
    started = time.process_time()
    for _ in range(calls):
        client.chat.completions.create(**ask)
    cpu = (time.process_time() - started) * 1000 / calls
    client.close()
    return round(cpu, 2)


def run(
    sim: SimulatorProcess,
    redis_url: str,
    jobs: int = 400,
    concurrency: int = 4,
    pool: str = "prefork",
    latency_ms: int = 0,
) -> dict[str, Any]:
    os.environ["REDIS_URL"] = redis_url
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    tmp = Path(tempfile.mkdtemp(prefix="llmorch-bench-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "LLM_ORCH_CONFIG": str(_config(sim, redis_url, tmp / "c.yaml")),
        "PYTHONPATH": str(ROOT),
    }
    sim.post("/_sim/latency", f'{{"provider": "*", "ms": {latency_ms}}}')
    worker = WorkerProcess(env, tmp, concurrency=concurrency, pool=pool).start(celery_app)
    try:
        noop_payload = {"sleep_ms": latency_ms} if latency_ms else {}  # at 500 ms: a task that only sleeps
        _drain(celery_app, "llm.noop", 50, noop_payload)
        _drain(celery_app, "llm.complete", 50, {"prompt": "warm up"})
        assert worker.proc is not None
        cpu0 = cpu_seconds(worker.proc.pid)
        noop = _drain(celery_app, "llm.noop", jobs, noop_payload)
        cpu1 = cpu_seconds(worker.proc.pid)
        complete = _drain(celery_app, "llm.complete", jobs, {"prompt": "Why do retries need jitter?"})
        cpu2 = cpu_seconds(worker.proc.pid)
    finally:
        worker.stop()
        sim.post("/_sim/latency", '{"provider": "*", "ms": 0}')
    return {
        "jobs": jobs,
        "pool": pool,
        "concurrency": concurrency,
        "latency_ms": latency_ms,
        "noop_jobs_per_s": round(noop, 1),
        "complete_jobs_per_s": round(complete, 1),
        "ratio": round(complete / noop, 3),
        "worker_cpu_ms_per_noop": round((cpu1 - cpu0) * 1000 / jobs, 2),
        "worker_cpu_ms_per_complete": round((cpu2 - cpu1) * 1000 / jobs, 2),
        "raw_sdk_cpu_ms": raw_sdk_cpu_ms(sim) if latency_ms == 0 else None,
    }
