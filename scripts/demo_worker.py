"""The worker half of `make demo`: Redis + a real Celery worker + a mixed batch of jobs.

Signals are classified the cheap way users should copy: `llm.classify_batch` jobs of up to
CLASSIFY_JOB_SIZE signals (keyword rules, result cache, then the cascade with 10 signals per model
call), not one `llm.classify` job (and at least one model call) per signal.

Redis: the one at REDIS_URL if that variable is set and answers, otherwise a throwaway
redis-server started here on a free port (so the demo never writes into a Redis you use).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer, reachable  # noqa: E402
from tests.worker_fixtures import WorkerProcess  # noqa: E402

CLASSIFY_JOB_SIZE = 100  # signals per llm.classify_batch job (as `llm-orch classify --via worker`)
COMPLETIONS = [
    ("openai", "Give me one tip for writing clear error messages."),
    ("anthropic", "Name one benefit of idempotent jobs."),
    ("gemini", "Why use a circuit breaker for API calls?"),
]


def _redis() -> tuple[str, RedisServer | None]:
    url = os.environ.get("REDIS_URL")
    if url and reachable(url):
        return url, None
    server = RedisServer().start()
    return server.url, server


def _signals() -> list[dict]:
    with open(ROOT / "data" / "signals_sample.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def worker_tour(sim, console: Console) -> int:
    url, server = _redis()
    console.print(f"[bold]Redis[/bold] at {url}" + (" (started for the demo)" if server else ""))
    env = {
        **os.environ,
        "REDIS_URL": url,
        "LLM_ORCH_CONFIG": str(ROOT / "config" / "demo.yaml"),
        "LLM_ORCH_SIM_URL": sim.url,
        "PYTHONPATH": str(ROOT),
    }
    os.environ["REDIS_URL"] = url
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = url
    log_dir = ROOT / ".demo"
    log_dir.mkdir(exist_ok=True)
    worker = WorkerProcess(env, log_dir, concurrency=4)
    try:
        worker.start(celery_app)
        console.print(f"[bold]Worker[/bold] {worker.node} (4 prefork processes; log in .demo/)")
        signals = _signals()
        jobs = [
            ("completion", provider, producer.submit_completion(prompt, provider=provider, tenant="demo"))
            for provider, prompt in COMPLETIONS
        ]
        for start in range(0, len(signals), CLASSIFY_JOB_SIZE):
            chunk = signals[start : start + CLASSIFY_JOB_SIZE]
            batch = [{"text": s["text"], "id": s["id"]} for s in chunk]
            jobs.append(("classification", chunk, producer.submit_classification_batch(batch, tenant="demo")))
        results = []
        with Progress(console=console) as progress:
            bar = progress.add_task("jobs", total=len(jobs))
            for kind, extra, job in jobs:
                results.append((kind, extra, job.get(timeout=120)))
                progress.advance(bar)
        _print_completions(console, results)
        _print_classifications(console, results)
        day = datetime.now(timezone.utc).date().isoformat()
        rollup = celery_app.send_task("costs.rollup_daily", kwargs={"payload": {"day": day}}).get(timeout=60)
        _print_rollup(console, rollup["days"][day])
        failed = [r for _, _, r in results if r["status"] != "succeeded"]
        console.print(f"[bold]{len(results) - len(failed)} of {len(results)} jobs succeeded[/bold]")
        return 1 if failed else 0
    finally:
        worker.stop()
        if server:
            server.cleanup()


def _print_completions(console: Console, results: list) -> None:
    table = Table("provider", "model", "tokens", "cost USD", "answer", title="Completion jobs (through the worker)")
    for kind, _, r in results:
        if kind == "completion":
            table.add_row(
                r["provider"],
                r["model"],
                str(r["cost"]["total_tokens"]),
                r["cost"]["usd"],
                r.get("content", r.get("error", {}).get("type", ""))[:60],
            )
    console.print(table)


def _print_classifications(console: Console, results: list) -> None:
    batches = [(chunk, r) for kind, chunk, r in results if kind == "classification"]
    rows = []  # (label, predicted category or None when the job failed)
    for chunk, r in batches:
        answers = {a.get("id"): a for a in r.get("results", [])}
        rows += [(s["label"], answers.get(s["id"], {}).get("category")) for s in chunk]
    correct = sum(category == label for label, category in rows)
    cost = sum(Decimal(r["cost"]["usd"]) for _, r in batches)
    calls = sum(len(r.get("call_latencies_ms", [])) for _, r in batches)
    stages = Counter(a.get("stage") for _, r in batches for a in r.get("results", []))
    table = Table("category", "predicted", "labelled", title="Signal classification (data/signals_sample.jsonl)")
    predicted = Counter(category for _, category in rows)
    labelled = Counter(label for label, _ in rows)
    for category in sorted(labelled | predicted, key=str):
        table.add_row(str(category), str(predicted[category]), str(labelled[category]))
    console.print(table)
    console.print(
        f"{len(rows)} signals in {len(batches)} llm.classify_batch job{'s' if len(batches) != 1 else ''}: "
        f"{calls} model calls; stages {', '.join(f'{k} {v}' for k, v in sorted(stages.items()))}"
    )
    console.print(
        f"accuracy {correct}/{len(rows)} = {correct / len(rows):.0%} (the simulator answers by keywords: "
        f"a pipeline check, not a model-quality claim); cost ${cost} total, "
        f"${cost / len(rows) * 1000:.4f} per 1,000 signals"
    )


def _print_rollup(console: Console, rows: list[dict]) -> None:
    table = Table(
        "tenant",
        "provider",
        "model",
        "requests",
        "prompt",
        "completion",
        "cost USD",
        title="Daily rollup (costs.rollup_daily, as beat runs it at 00:15 UTC)",
    )
    for row in rows:
        table.add_row(
            row["tenant"],
            row["provider"],
            row["model"],
            str(row["requests"]),
            str(row["prompt_tokens"]),
            str(row["completion_tokens"]),
            row["cost_usd"],
        )
    console.print(table)
