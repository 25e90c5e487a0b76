#!/usr/bin/env python3
"""Fail when line coverage is under the targets (run by `make test` after pytest --cov).

Targets (the seed's): 90 % overall, 95 % for the core (orchestrator, call path, resilience,
cost tracker, ledger, pricing, registry, config), 85 % for each provider adapter. Reads the
combined `.coverage` data pytest-cov left behind.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent
OVERALL = 90.0
GROUPS: dict[str, tuple[float, tuple[str, ...]]] = {
    "core": (
        95.0,
        (
            "llm_orchestrator/orchestrator.py",
            "llm_orchestrator/call.py",
            "llm_orchestrator/assembly.py",
            "llm_orchestrator/resilience/*.py",
            "llm_orchestrator/cost_tracker.py",
            "llm_orchestrator/ledger.py",
            "llm_orchestrator/pricing.py",
            "llm_orchestrator/models/*.py",
            "llm_orchestrator/config/*.py",
        ),
    ),
    "adapters": (85.0, ("llm_orchestrator/providers/*_adapter.py",)),
}


def main() -> int:
    cov = coverage.Coverage(data_file=str(ROOT / ".coverage"))
    cov.load()
    totals: dict[str, list[int]] = {name: [0, 0] for name in GROUPS}
    overall = [0, 0]
    failures = []
    for path in cov.get_data().measured_files():
        rel = os.path.relpath(path, ROOT)
        try:
            _, statements, _, missing, _ = cov.analysis2(path)
        except coverage.CoverageException:
            continue
        covered = len(statements) - len(missing)
        overall[0] += covered
        overall[1] += len(statements)
        for name, (_, patterns) in GROUPS.items():
            if any(fnmatch.fnmatch(rel, p) for p in patterns):
                totals[name][0] += covered
                totals[name][1] += len(statements)
                if name == "adapters" and statements and 100 * covered / len(statements) < GROUPS[name][0]:
                    failures.append(f"{rel}: {100 * covered / len(statements):.1f}% < {GROUPS[name][0]}%")
    report = [("overall", OVERALL, overall)] + [(n, GROUPS[n][0], totals[n]) for n in GROUPS]
    for name, target, (covered, total) in report:
        pct = 100 * covered / total if total else 100.0
        print(f"coverage {name}: {pct:.1f}% (target {target}%)")
        if pct < target:
            failures.append(f"{name}: {pct:.1f}% < {target}%")
    if failures:
        print("coverage gate FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
