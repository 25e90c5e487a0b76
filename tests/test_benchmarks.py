"""The benchmarks' short variant runs in every suite so the scripts cannot rot (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, unmeasured_env


@pytest.mark.slow
def test_quick_benchmark_runs_and_reports_every_figure():
    out = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick"],
        cwd=ROOT,
        env=unmeasured_env(),  # timings under coverage's tracer would mean nothing anyway
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads(out.stdout[out.stdout.index("{\n") :])
    overhead = results["overhead"]
    assert {
        "raw SDK",
        "library, memory only (breaker, ledger)",
        "library, Redis: breaker + limiter + tenant budget + ledger (+ job id)",
        "library, Redis configured, features off (no breaker, limits, ledger)",
    } <= set(overhead)
    assert overhead["breaker_open_fail_fast_ms"] > 0 and overhead["async"]["ratio_p50"] > 0
    # counted at the connection, not timed: 2 per request (tests/test_round_trips.py checks exactly 2) plus
    # the few periodic ones (the spool check every few seconds) that a slow, loaded run picks up
    assert 2 <= overhead["redis_round_trips_per_request"] <= 2.2
    throughput = results["throughput_0ms"]
    assert throughput["complete_jobs_per_s"] > 0 and throughput["raw_sdk_cpu_ms"] > 0
    cost = results["classification_cost"]
    for provider in ("openai", "anthropic", "gemini"):
        assert cost[provider]["pipeline"]["calls"] < cost[provider]["naive"]["calls"]
    batch = results["classification_batch"]
    assert batch["signals"] == 100 and batch["jobs"] == 1 and sum(batch["stages"].values()) == 100
    samples = results["memory"]["samples"]
    assert samples[-1]["jobs"] == 100 and all(s["main_mib"] for s in samples)
    from benchmarks.run import report  # the full report renders from quick results too

    assert "## Memory" in report({**results, "seconds": 1.0}, "python benchmarks/run.py --quick")
