"""The short chaos soak in the normal suite (the long one: ``make soak``). See ``tests/soak/chaos.py``.

It runs in a fresh interpreter so its Redis, simulator and Celery app object never mix with the
session's; the full report is printed (``pytest -s``) and attached to a failure. The workers run
with production's visibility settings (``tests/soak/stack.py``): the jobs a SIGKILLed worker held
come back through the outbox sweeper's restore, as in production. The RabbitMQ variant runs the
same soak with ``--broker amqp`` (skipped, saying why, without RabbitMQ), and once more with the state on
a Redis Cluster (``--state cluster``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, unmeasured_env
from tests.soak.report import LABEL_WIDTH

SHORT_JOBS = 120
SHORT_AMQP_JOBS = 80  # RabbitMQ variant (``--broker amqp``): the same faults plus a cut of the broker connections
SHORT_TIMEOUT_SECONDS = 150  # the soak's own deadline; the process gets more, for setup and the audit
PROCESS_TIMEOUT_SECONDS = 280
ZERO_FIGURES = (
    "lost (no final result)",
    "crashed (task crashed: a bug)",
    "stuck (open in outbox or leased)",
    "duplicate ledger rows",
)


def _short_soak(jobs: int, *more: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.soak", "--jobs", str(jobs), "--timeout", str(SHORT_TIMEOUT_SECONDS), *more],
        cwd=ROOT,
        env=unmeasured_env(),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_SECONDS,
    )
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for label in ZERO_FIGURES:
        assert f"  {label:<{LABEL_WIDTH}} 0\n" in proc.stdout, label
    return proc.stdout


@pytest.mark.slow
def test_short_chaos_soak_loses_nothing_and_bills_once():
    _short_soak(SHORT_JOBS)


@pytest.mark.slow
def test_short_chaos_soak_on_rabbitmq_loses_nothing_bills_once_and_never_resends():
    from tests.worker_fixtures import rabbitmq_unavailable

    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    out = _short_soak(SHORT_AMQP_JOBS, "--broker", "amqp")
    assert "RabbitMQ: cut all" in out and "/ 0 restored (0 jobs) / 0 re-sent" in out


@pytest.mark.slow
def test_short_chaos_soak_on_rabbitmq_and_a_redis_cluster_loses_nothing_and_bills_once():
    """State on a three-master Redis Cluster (one master restarted mid-run), jobs queued in RabbitMQ."""
    from tests.worker_fixtures import rabbitmq_unavailable

    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    out = _short_soak(SHORT_AMQP_JOBS, "--broker", "amqp", "--state", "cluster")
    assert "cluster master" in out and "started again" in out and "RabbitMQ: cut all" in out
