"""`make bench`: run the benchmarks and write BENCHMARKS.md. `--quick` is the CI-sized variant."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import classification_cost, overhead, saturation, throughput  # noqa: E402
from benchmarks.common import RedisServer, SimulatorProcess, machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite runs this)")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    calls, rounds, jobs = (30, 2, 60) if args.quick else (200, 5, 400)
    started = time.monotonic()
    sim, redis = SimulatorProcess(), RedisServer().start()
    try:
        results = {"overhead": overhead.run(sim, redis.url, calls=calls, rounds=rounds),
                   "throughput_0ms": throughput.run(sim, redis.url, jobs=jobs),
                   "classification_cost": classification_cost.run(sim)}
        if not args.quick:
            results["throughput_500ms_prefork_c16"] = throughput.run(sim, redis.url, jobs=jobs, concurrency=16,
                                                                     latency_ms=500)
            results["throughput_500ms_threads_c64"] = throughput.run(sim, redis.url, jobs=jobs, concurrency=64,
                                                                     pool="threads", latency_ms=500)
            results["saturation"] = saturation.run(sim, redis.url)
    finally:
        sim.stop()
        redis.cleanup()
    results["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    if not args.quick:
        Path(args.output).write_text(report(results, " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])])))
    return 0


def report(r: dict, command: str) -> str:
    o, t = r["overhead"], r["throughput_0ms"]
    lines = [
        "# Benchmarks", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; openai {version('openai')}, "
        f"anthropic {version('anthropic')}, google-genai {version('google-genai')}, celery {version('celery')}.",
        f"Command: `{command}` (via `make bench`), {r['seconds']} s in all. The simulator runs in its own process "
        "at 0 ms added latency unless stated; Redis is a local `redis-server`. Ratios compare runs made in the "
        "same round on this shared 2-core machine; absolute numbers move from run to run.", "",
        "## Library overhead: `send_request` vs the raw SDK call (OpenAI adapter, sync)", "",
        "| variant | p50 ms | p99 ms | p50 ratio to raw (median of rounds) | goal |", "|---|---|---|---|---|",
    ]
    for name, v in o.items():
        if isinstance(v, dict) and "p50_ms" in v:
            lines.append(f"| {name} | {v['p50_ms']} | {v['p99_ms']} | {v['ratio_p50']} | ≤ 1.25 |")
    a = o["async"]
    lines += ["", f"Async (`asend_request` vs `AsyncOpenAI`): raw p50 {a['raw_p50_ms']} ms, library p50 "
              f"{a['library_p50_ms']} ms, ratio {a['ratio_p50']}.", "",
              f"Breaker open (all models), time per `send_request` until it raises, no provider call: "
              f"p50 {o['breaker_open_fail_fast_ms']} ms (goal < 5 ms).", "",
              "## Job throughput through a real Celery worker", "",
              "| scenario | pool | concurrency | sim latency | no-op jobs/s | llm.complete jobs/s | ratio | goal |",
              "|---|---|---|---|---|---|---|---|"]
    for key in ("throughput_0ms", "throughput_500ms_prefork_c16", "throughput_500ms_threads_c64"):
        if key in r:
            v = r[key]
            goal = "≥ 0.8× no-op" if v["latency_ms"] == 0 else "≥ 350 jobs/s"
            lines.append(f"| {v['jobs']} jobs | {v['pool']} | {v['concurrency']} | {v['latency_ms']} ms | "
                         f"{v['noop_jobs_per_s']} | {v['complete_jobs_per_s']} | {v['ratio']} | {goal} |")
    del t
    if "saturation" in r:
        s = r["saturation"]
        lines += ["", "## Rate-limit saturation", "",
                  f"Simulator limit {s['rpm_limit']} RPM for OpenAI, the library's Redis limiter set to the same, "
                  f"{s['processes']} worker processes (2 workers × 2), {s['jobs']} `llm.complete` jobs in "
                  f"{s['minutes']} min: {s['provider_200']} answered, {s['provider_429']} 429s "
                  f"(share {s['share_429']:.2%}, goal < 1 %); share of the limit used (the least time the limit allows "
                  f"for that many requests over the time taken): {s['share_of_limit_used']} (goal ≥ 0.95)."]
    lines += classification_report(r["classification_cost"])
    return "\n".join(lines) + "\n"


def classification_report(c: dict) -> list[str]:
    lines = ["", f"## Signal classification: cost per 1,000 signals and accuracy ({c['signals']} labelled sample "
             "signals, list prices)", "",
             "Naive: one call per signal on the top model, priced uncached. Pipeline: keyword stage + result cache + "
             "cheap → top cascade (accept at confidence ≥ 0.8) + 10 signals per call + prompt caching. The simulator "
             "classifies by its own keyword table, so accuracy is a plumbing check, not a model-quality claim.", "",
             "| provider | naive $/1k | naive accuracy | pipeline $/1k | pipeline accuracy | batch lane $/1k "
             "| batch lane accuracy | calls naive → pipeline | cost ratio pipeline / lane (goal ≤ 0.35) "
             "| accuracy ratio (goal ≥ 0.95) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for provider in ("openai", "anthropic", "gemini"):
        v = c[provider]
        n, p, b = v["naive"], v["pipeline"], v["batch_lane"]
        lines.append(f"| {provider} | {n['usd_per_1k']} | {n['accuracy']:.1%} | {p['usd_per_1k']} | {p['accuracy']:.1%} "
                     f"| {b['usd_per_1k']} | {b['accuracy']:.1%} | {n['calls']} → {p['calls']} "
                     f"| {v['cost_ratio']} / {v['batch_lane_cost_ratio']} | {v['accuracy_ratio']} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
