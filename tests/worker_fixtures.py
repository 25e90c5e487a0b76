"""Real Celery worker processes for tests (never eager mode)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import MODELS, PROVIDERS, ROOT, make_config

# Shrunk for tests; production defaults are in worker/settings.py.
# Kept: job lease (hard limit + 5 s = 20 s) < visibility timeout (25 s) > any test countdown.
TEST_ENV = {"LLM_ORCH_VISIBILITY_TIMEOUT": "25", "LLM_ORCH_RESTORE_INTERVAL": "1",
            "LLM_ORCH_SOFT_TIME_LIMIT": "12", "LLM_ORCH_TIME_LIMIT": "15", "LLM_ORCH_BATCH_POLL_SECONDS": "1"}


def write_config(path: Path, sim: Any, redis_url: str, **extra: Any) -> Path:
    cfg = make_config(sim, "openai", **extra)
    for p in PROVIDERS:
        cfg["providers"][p]["default_model"] = MODELS[p][0]
    cfg["redis"] = {"url": redis_url}
    cfg.setdefault("retry", {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05, "deadline": 15,
                             "max_inline_wait": 1})
    path.write_text(yaml.safe_dump(cfg))
    return path


def worker_env(config_path: Path, redis_url: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update(TEST_ENV, LLM_ORCH_CONFIG=str(config_path), REDIS_URL=redis_url, PYTHONPATH=str(ROOT), **more)
    return env


class WorkerProcess:
    """``celery -A worker.app worker`` as a child process group."""

    def __init__(self, env: dict[str, str], log_dir: Path, concurrency: int = 4, pool: str = "prefork",
                 queues: str = "llm.interactive,llm.batch,maintenance") -> None:
        self.env = env
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.node = f"{self.name}@{socket.gethostname()}"
        self.log_path = log_dir / f"{self.name}.log"
        self.args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-P", pool, "-c", str(concurrency),
                     "-Q", queues, "-n", f"{self.name}@%h", "--without-mingle", "--without-gossip",
                     "--loglevel=INFO"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, app: Any, timeout: float = 60) -> WorkerProcess:
        return self.launch().wait_ready(app, timeout)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it (e.g. while Redis is still down)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_ready(self, app: Any, timeout: float = 60) -> WorkerProcess:
        """Wait until the worker answers a ping through ``app``'s broker."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; log:\n{self.log()}")
            if app.control.ping(destination=[self.node], timeout=0.5):
                return self
        raise RuntimeError(f"worker did not answer ping; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def stack(simulator, redis_url, tmp_path_factory):
    """One worker for the module, plus the producer API bound to the same Redis."""
    tmp = tmp_path_factory.mktemp("worker")
    config = write_config(tmp / "config.yaml", simulator, redis_url)
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    w = WorkerProcess(worker_env(config, redis_url), tmp).start(celery_app)
    yield {"producer": producer, "app": celery_app, "worker": w, "config": config, "tmp": tmp}
    w.stop()
