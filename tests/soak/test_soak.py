"""The short chaos soak in the normal suite (the long one: ``make soak``). See ``tests/soak/chaos.py``.

It runs in a fresh interpreter so its Redis, simulator and Celery app object never mix with the
session's; the full report is printed (``pytest -s``) and attached to a failure.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

SHORT_JOBS = 200


def test_short_chaos_soak_loses_nothing_and_bills_once():
    proc = subprocess.run([sys.executable, "-m", "tests.soak", "--jobs", str(SHORT_JOBS), "--timeout", "150"],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "lost (no final result)             0" in proc.stdout
    assert "duplicate ledger rows              0" in proc.stdout
