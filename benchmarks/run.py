"""`make bench`: run the benchmarks and write BENCHMARKS.md. `--quick` is the CI-sized variant."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import classification_batch, classification_cost, memory, overhead, saturation, throughput  # noqa: E402
from benchmarks.common import SimulatorProcess, machine  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

# Pools measured at 500 ms simulator latency (gevent only when installed: `pip install -e ".[bench]"`).
POOLS_AT_500MS = (("prefork", 16), ("threads", 64), ("threads", 200), ("gevent", 500))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite runs this)")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    calls, rounds, jobs = (20, 2, 40) if args.quick else (200, 5, 400)
    signals, memory_jobs = (100, 100) if args.quick else (10_000, 10_000)
    started = time.monotonic()
    sim, redis = SimulatorProcess(), RedisServer().start()
    try:
        results = {
            "overhead": overhead.run(sim, redis.url, calls=calls, rounds=rounds),
            "throughput_0ms": throughput.run(sim, redis.url, jobs=jobs),
            "classification_cost": classification_cost.run(sim),
            "classification_batch": classification_batch.run(sim, redis.url, signals=signals),
            "memory": memory.run(sim, redis.url, jobs=memory_jobs, every=memory_jobs // 5),
            "memory_noop": memory.run(sim, redis.url, jobs=memory_jobs, every=memory_jobs // 5, task="llm.noop"),
        }
        if not args.quick:
            for pool, concurrency in POOLS_AT_500MS:
                if pool != "gevent" or find_spec("gevent"):
                    results[f"throughput_500ms_{pool}_c{concurrency}"] = throughput.run(
                        sim, redis.url, jobs=jobs, concurrency=concurrency, pool=pool, latency_ms=500
                    )
            results["saturation"] = saturation.run(sim, redis.url)
            results["saturation_learned"] = saturation.run(sim, redis.url, configured=False)
    finally:
        sim.stop()
        redis.cleanup()
    results["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    if not args.quick:
        Path(args.output).write_text(
            report(results, " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]))
        )
    return 0


def report(r: dict, command: str) -> str:
    o, t = r["overhead"], r["throughput_0ms"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; openai {version('openai')}, "
        f"anthropic {version('anthropic')}, google-genai {version('google-genai')}, celery {version('celery')}.",
        f"Command: `{command}` (via `make bench`), {r['seconds']} s in all. The simulator runs in its own process "
        "at 0 ms added latency unless stated; Redis is a local `redis-server`. Ratios compare runs made in the "
        "same round on this shared 2-core machine; absolute numbers move from run to run.",
        "",
        "## Library overhead: `send_request` vs the raw SDK call (OpenAI adapter, sync)",
        "",
        "| variant | p50 ms | p99 ms | p50 ratio to raw (median of rounds) | goal |",
        "|---|---|---|---|---|",
    ]
    for name, v in o.items():
        if isinstance(v, dict) and "p50_ms" in v:
            lines.append(f"| {name} | {v['p50_ms']} | {v['p99_ms']} | {v['ratio_p50']} | ≤ 1.25 |")
    if o.get("litellm"):
        lt = o["litellm"]
        lines += [
            "",
            f"LiteLLM {lt['versions']['litellm']} in its own venv (it pins openai<3; there openai "
            f"{lt['versions']['openai']}), same simulator, ratios to that venv's raw SDK call:",
            "",
            "| variant | p50 ms | p99 ms | p50 ratio to raw |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {v['p50_ms']} | {v['p99_ms']} | {v['ratio_p50']} |" for k, v in lt.items() if k != "versions"
        ]
    else:
        lines += ["", "LiteLLM: not measured (no `.venv-litellm`; `make bench` creates it)."]
    a = o["async"]
    lines += [
        "",
        f"Async (`asend_request` vs `AsyncOpenAI`): raw p50 {a['raw_p50_ms']} ms, library p50 "
        f"{a['library_p50_ms']} ms, ratio {a['ratio_p50']}.",
        "",
        f"Breaker open (all models), time per `send_request` until it raises, no provider call: "
        f"p50 {o['breaker_open_fail_fast_ms']} ms (goal < 5 ms).",
        "",
        f"Redis round trips per successful `send_request` with every feature on (breaker, limits, tenant "
        f"budget, ledger with a job id), counted at the connection: **{o['redis_round_trips_per_request']}** "
        "(goal ≤ 2).",
        "",
        "## Job throughput through a real Celery worker",
        "",
        "At 0 ms the baseline is `llm.noop` (Celery itself); at 500 ms it is the same task sleeping 500 ms in the "
        "same pool (a job whose provider latency is fully hidden). Worker CPU is the process tree's, from /proc; "
        "the CPU goal is complete ≤ no-op + one raw SDK call + 1.0 ms.",
        "",
        "| scenario | pool | concurrency | sim latency | baseline jobs/s | llm.complete jobs/s | ratio | worker CPU "
        "ms per job (baseline / complete) | raw SDK call CPU ms | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ["throughput_0ms"] + [k for k in r if k.startswith("throughput_500ms")]:
        if key in r:
            v = r[key]
            goal = "ratio ≥ 0.8; CPU ≤ no-op + raw + 1 ms" if v["latency_ms"] == 0 else "ratio ≥ 0.8 (best pool)"
            lines.append(
                f"| {v['jobs']} jobs | {v['pool']} | {v['concurrency']} | {v['latency_ms']} ms | "
                f"{v['noop_jobs_per_s']} | {v['complete_jobs_per_s']} | {v['ratio']} | "
                f"{v['worker_cpu_ms_per_noop']} / {v['worker_cpu_ms_per_complete']} | "
                f"{v.get('raw_sdk_cpu_ms') or '–'} | {goal} |"
            )
    del t
    if "saturation" in r:
        lines += ["", "## Rate-limit saturation", ""]
        for key, how, goal in (
            ("saturation", "the library's Redis limiter set to the same", "0.95"),
            (
                "saturation_learned",
                "no limit in the config: the limiter learns it from the `x-ratelimit-*` headers",
                "0.90",
            ),
        ):
            if key not in r:
                continue
            s = r[key]
            lines += [
                f"- Simulator limit {s['rpm_limit']} RPM for OpenAI, {how}; {s['processes']} worker processes "
                f"(2 workers × 2), {s['jobs']} `llm.complete` jobs in {s['minutes']} min: {s['provider_200']} "
                f"answered, {s['provider_429']} 429s (share {s['share_429']:.2%}, goal < 1 %); share of the limit "
                f"used (the least time the limit allows for that many requests over the time taken): "
                f"{s['share_of_limit_used']} (goal ≥ {goal})."
            ]
    lines += classification_report(r["classification_cost"])
    lines += batch_report(r["classification_batch"]) + memory_report(r["memory"]) + memory_report(r["memory_noop"])
    return "\n".join(lines) + "\n"


def batch_report(b: dict) -> list[str]:
    return [
        "",
        f"## Batch classification: {b['signals']:,} signals through the worker",
        "",
        f"`benchmarks/classification_batch.py`: the 80 sample signals repeated with a ticket number (no two texts "
        f"equal), sent as {b['jobs']} `llm.classify_batch` jobs of 100 to one prefork worker (`-c {b['concurrency']}`), "
        f"simulator at 0 ms: **{b['seconds']} s** (goal < 60 s), {b['signals_per_s']} signals/s, {b['jobs_per_s']} "
        f"jobs/s, ${b['usd_per_1k']} per 1,000 signals at list prices; stages {b['stages']}.",
    ]


def memory_report(m: dict) -> list[str]:
    pids = sorted({pid for s in m["samples"] for pid in s["children"]})
    lines = [
        "",
        f"## Memory: worker RSS over {m['jobs']:,} `{m['task']}` jobs",
        "",
        f"`benchmarks/memory.py`: one prefork worker (`-c {m['concurrency']}`); RSS (MiB) from /proc after each "
        "step. A leak shows as a rising column for one PID (a child is replaced after 5,000 tasks). The "
        "library runs in the children; the main process only receives messages and runs Celery's bookkeeping "
        "(compare the no-op run).",
        "",
        "| jobs done | main | " + " | ".join(f"child {p}" for p in pids) + " |",
        "|---|---|" + "---|" * len(pids),
    ]
    for s in m["samples"]:
        lines.append(
            f"| {s['jobs']:,} | {s['main_mib']} | " + " | ".join(str(s["children"].get(p, "–")) for p in pids) + " |"
        )
    return lines


def classification_report(c: dict) -> list[str]:
    lines = [
        "",
        f"## Signal classification: cost per 1,000 signals and accuracy ({c['signals']} labelled sample "
        "signals, list prices)",
        "",
        "Naive: one call per signal on the top model, priced uncached. Pipeline: keyword stage + result cache + "
        "cheap → top cascade (accept at confidence ≥ 0.8) + 10 signals per call + prompt caching. The simulator "
        "classifies by its own keyword table, so accuracy is a plumbing check, not a model-quality claim.",
        "",
        "| provider | naive $/1k | naive accuracy | pipeline $/1k | pipeline accuracy | batch lane $/1k "
        "| batch lane accuracy | calls naive → pipeline | cost ratio pipeline / lane (goal ≤ 0.35) "
        "| accuracy ratio (goal ≥ 0.95) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for provider in ("openai", "anthropic", "gemini"):
        v = c[provider]
        n, p, b = v["naive"], v["pipeline"], v["batch_lane"]
        lines.append(
            f"| {provider} | {n['usd_per_1k']} | {n['accuracy']:.1%} | {p['usd_per_1k']} | {p['accuracy']:.1%} "
            f"| {b['usd_per_1k']} | {b['accuracy']:.1%} | {n['calls']} → {p['calls']} "
            f"| {v['cost_ratio']} / {v['batch_lane_cost_ratio']} | {v['accuracy_ratio']} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
