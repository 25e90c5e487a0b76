"""Batch classification: N signals end to end through a real worker (``llm-orch classify --via worker``'s path).

The 80 labelled sample signals are repeated with a ticket number appended, so no two texts are
equal (the result cache does not short-cut the run; the keyword stage still decides the signals
its rules match). Rows go out as ``llm.classify_batch`` jobs of 100 signals, at most 16 in flight,
to one prefork worker; the simulator answers at 0 ms. Reported: wall time, signals/s, jobs/s,
cost per 1,000 signals at list prices, stage mix.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SimulatorProcess
from benchmarks.throughput import _config
from tests.worker_fixtures import WorkerProcess


def write_signals(path: Path, n: int) -> Path:
    sample = [json.loads(line) for line in (ROOT / "data" / "signals_sample.jsonl").read_text().splitlines() if line]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            row = sample[i % len(sample)]
            out.write(
                json.dumps({"id": f"b{i}", "text": f"{row['text']} (ticket {i})", "label": row.get("label")}) + "\n"
            )
    return path


def run(sim: SimulatorProcess, redis_url: str, signals: int = 10_000, concurrency: int = 4) -> dict[str, Any]:
    os.environ["REDIS_URL"] = redis_url
    from llm_orchestrator import ConfigManager, LLMOrchestrator
    from llm_orchestrator.classification.batch import classify_file
    from worker import classify_runner
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    tmp = Path(tempfile.mkdtemp(prefix="llmorch-bench-classify-"))
    config = _config(sim, redis_url, tmp / "c.yaml")
    env = {**os.environ, "REDIS_URL": redis_url, "LLM_ORCH_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    sim.post("/_sim/latency", '{"provider": "*", "ms": 0}')
    source = write_signals(tmp / "signals.jsonl", signals)
    worker = WorkerProcess(env, tmp, concurrency=concurrency).start(celery_app)
    try:
        orch = LLMOrchestrator(ConfigManager.load(str(config)).config)
        started = time.perf_counter()
        summary = classify_file(classify_runner.runner(orch), source, tmp / "out.jsonl")
        seconds = time.perf_counter() - started
    finally:
        worker.stop()
    jobs = -(-signals // classify_runner.CHUNK)
    return {
        "signals": summary.rows,
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "signals_per_s": round(summary.rows / seconds, 1),
        "jobs_per_s": round(jobs / seconds, 2),
        "usd_per_1k": str((summary.cost * 1000 / summary.rows).quantize(summary.cost.__class__("0.000001"))),
        "stages": dict(summary.stages),
        "concurrency": concurrency,
    }
