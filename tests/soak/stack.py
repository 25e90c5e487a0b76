"""What the soak runs besides its workers: the worker settings, the worker config, the provider simulator.

The workers run with production's visibility settings (kombu restores an unacked message only
after 1,800 s, looking every 10 s), so a job held by a SIGKILLed worker, or whose ack was lost
when Redis restarted, comes back only through the outbox sweeper's restore, as in production.
(With ``--broker amqp`` those settings do not apply: RabbitMQ requeues an unacked message when its
holder's connection closes.)
Only the task time limits are shrunk (soft 8 s, hard 10 s), so the job lease, the sweeper's
hold grace, is 15 s instead of 155 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.soak.scenario import PROVIDERS

ROOT = Path(__file__).resolve().parents[2]
SOAK_SOFT_TIME_LIMIT = 8
SOAK_TIME_LIMIT = 10
# worker/settings.py's defaults, set explicitly: tests/worker_fixtures.TEST_ENV shrinks both for other tests.
PRODUCTION_VISIBILITY_TIMEOUT = 1800
PRODUCTION_RESTORE_INTERVAL = 10
# Worker settings for the soak, through the LLM_ORCH_* overrides (on top of worker_fixtures.TEST_ENV).
SOAK_ENV = {
    "LLM_ORCH_VISIBILITY_TIMEOUT": str(PRODUCTION_VISIBILITY_TIMEOUT),
    "LLM_ORCH_RESTORE_INTERVAL": str(PRODUCTION_RESTORE_INTERVAL),
    "LLM_ORCH_SOFT_TIME_LIMIT": str(SOAK_SOFT_TIME_LIMIT),
    "LLM_ORCH_TIME_LIMIT": str(SOAK_TIME_LIMIT),
}
PROVIDER_TIMEOUT = {"connect": 2, "read": 2}  # a 'timeout' fault costs 2 s, not 5
RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05, "deadline": 7, "max_inline_wait": 1}
SIMULATOR_START_SECONDS = 20
SPOOL_FILE = "ledger-spool.jsonl"  # the workers' ledger spool, in the soak's log dir (not the user's state dir)


def soak_job_lease_seconds() -> float:
    """The workers' ``settings.JOB_LEASE_SECONDS`` under SOAK_ENV: the sweeper's ``hold_grace``.

    This process's ``worker.settings`` read the environment at import, without SOAK_ENV (that
    goes to the workers only), so its JOB_LEASE_SECONDS is production's. The lease is the hard
    time limit plus a fixed margin: take the margin from the settings, the limit from SOAK_ENV.
    """
    from worker import settings

    margin = settings.JOB_LEASE_SECONDS - settings.TIME_LIMIT
    return int(SOAK_ENV["LLM_ORCH_TIME_LIMIT"]) + margin


def write_soak_config(path: Path, sim: Any, redis_url: str, cluster: bool = False) -> Path:
    """The workers' config: every provider on the simulator, short timeouts and retry deadline, and
    a ledger spool of their own next to ``path`` (the default one is shared by every process of the
    user: another test's workers could replay the soak's rows into their own Redis)."""
    from tests.conftest import MODELS, make_config

    cfg = make_config(sim, "openai")
    for p in PROVIDERS:
        cfg["providers"][p]["default_model"] = MODELS[p][0]
        cfg["providers"][p]["timeout"] = dict(PROVIDER_TIMEOUT)
    cfg["redis"] = {"url": redis_url, "cluster": cluster}
    cfg["retry"] = dict(RETRY)
    cfg["cost_tracking"]["spool_path"] = str(spool_path(path.parent))
    path.write_text(yaml.safe_dump(cfg))
    return path


def spool_path(log_dir: Path) -> Path:
    return log_dir / SPOOL_FILE


def soak_worker_env(config: Path, redis_url: str, broker_env: dict[str, str] | None = None) -> dict[str, str]:
    """The workers' environment: ``broker_env`` holds CELERY_BROKER_URL for an amqp broker (else Redis)."""
    from tests.worker_fixtures import worker_env

    env = worker_env(config, redis_url, **(broker_env or {}))
    env.update(SOAK_ENV)
    return env


class SimulatorProcess:
    """``python -m llm_orchestrator.simulator`` on a free port, controlled over HTTP."""

    def __init__(self, log_dir: Path) -> None:
        from llm_orchestrator.simulator import Simulator
        from tests.redis_server import free_port

        self.port = free_port()
        self.control = Simulator(port=self.port)  # not started here: used for base_url() and /_sim calls
        self.log_path = log_dir / "simulator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SimulatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llm_orchestrator.simulator", "--port", str(self.port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while time.monotonic() < deadline:
            try:
                self.control.stats()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("simulator did not start; log:\n" + self.log_path.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
