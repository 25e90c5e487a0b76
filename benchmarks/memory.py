"""Memory: RSS of each worker child process while it runs N ``llm.complete`` jobs (growth trend).

One prefork worker (``-c 2``, ``worker_max_tasks_per_child`` left at its 5,000 default, so a child
may be replaced mid-run: the table shows PIDs). RSS is read from ``/proc/PID/status`` after every
``every`` jobs. A leak shows as RSS rising step after step in the same PID.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SimulatorProcess, children, rss_mib
from benchmarks.throughput import _config
from tests.worker_fixtures import WorkerProcess


def run(
    sim: SimulatorProcess,
    redis_url: str,
    jobs: int = 10_000,
    every: int = 2_000,
    concurrency: int = 2,
    task: str = "llm.complete",
) -> dict[str, Any]:
    os.environ["REDIS_URL"] = redis_url
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    tmp = Path(tempfile.mkdtemp(prefix="llmorch-bench-mem-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "LLM_ORCH_CONFIG": str(_config(sim, redis_url, tmp / "c.yaml")),
        "PYTHONPATH": str(ROOT),
    }
    sim.post("/_sim/latency", '{"provider": "*", "ms": 0}')
    worker = WorkerProcess(env, tmp, concurrency=concurrency).start(celery_app)
    samples: list[dict[str, Any]] = []
    try:
        assert worker.proc is not None
        main = worker.proc.pid
        done = 0
        samples.append({"jobs": 0, "main_mib": rss_mib(main), "children": {c: rss_mib(c) for c in children(main)}})
        while done < jobs:
            n = min(every, jobs - done)
            results = [
                celery_app.send_task(task, kwargs={"payload": {"prompt": f"memory {done + i}"}}) for i in range(n)
            ]
            for r in results:
                r.get(timeout=300)
                r.forget()
            done += n
            samples.append(
                {"jobs": done, "main_mib": rss_mib(main), "children": {c: rss_mib(c) for c in children(main)}}
            )
    finally:
        worker.stop()
    return {"jobs": jobs, "task": task, "concurrency": concurrency, "samples": samples}
