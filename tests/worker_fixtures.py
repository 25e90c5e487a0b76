"""Real Celery worker processes for tests (never eager mode)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import yaml

from tests.conftest import MODELS, PROVIDERS, ROOT, make_config

# Shrunk for tests; production defaults are in worker/settings.py.
# Kept: job lease (hard limit + 5 s = 20 s) < visibility timeout (25 s) > any test countdown.
TEST_ENV = {
    "LLM_ORCH_VISIBILITY_TIMEOUT": "25",
    "LLM_ORCH_RESTORE_INTERVAL": "1",
    "LLM_ORCH_SOFT_TIME_LIMIT": "12",
    "LLM_ORCH_TIME_LIMIT": "15",
    "LLM_ORCH_BATCH_POLL_SECONDS": "1",
}


def write_config(path: Path, sim: Any, redis_url: str, **extra: Any) -> Path:
    cfg = make_config(sim, "openai", **extra)
    for p in PROVIDERS:
        cfg["providers"][p]["default_model"] = MODELS[p][0]
    cfg["redis"] = {"url": redis_url}
    cfg.setdefault(
        "retry", {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05, "deadline": 15, "max_inline_wait": 1}
    )
    path.write_text(yaml.safe_dump(cfg))
    return path


def worker_env(config_path: Path, redis_url: str, **more: str) -> dict[str, str]:
    """A worker's environment; its broker is ``redis_url`` unless ``CELERY_BROKER_URL`` is in ``more``
    (an inherited CELERY_BROKER_URL is dropped: a test's worker never follows the caller's broker)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_")) and k != "CELERY_BROKER_URL"
    }
    env.update(TEST_ENV, LLM_ORCH_CONFIG=str(config_path), REDIS_URL=redis_url, PYTHONPATH=str(ROOT), **more)
    return env


class WorkerProcess:
    """``celery -A worker.app worker`` as a child process group."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        concurrency: int = 4,
        pool: str = "prefork",
        queues: str = "llm.interactive,llm.batch,maintenance",
    ) -> None:
        self.env = env
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.node = f"{self.name}@{socket.gethostname()}"
        self.log_path = log_dir / f"{self.name}.log"
        self.args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-Q",
            queues,
            "-n",
            f"{self.name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, app: Any, timeout: float = 60) -> WorkerProcess:
        return self.launch().wait_ready(app, timeout)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it (e.g. while Redis is still down)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Wait until ``text`` is in the worker's log; fail with the log's tail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{self.log()}"
            time.sleep(0.1)

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
    redis.Redis.from_url(redis_url).flushdb()  # nothing another module left (a queued job, an open breaker)
    w = WorkerProcess(worker_env(config, redis_url), tmp).start(celery_app)
    yield {"producer": producer, "app": celery_app, "worker": w, "config": config, "tmp": tmp}
    w.stop()


# -- RabbitMQ (amqp broker): a fresh vhost per test run ----------------------------------------------

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
AMQP_USER, AMQP_PASSWORD = "guest", "guest"
RABBITMQCTL_SECONDS = 60
ENSURE_RABBITMQ = Path(__file__).resolve().parent.parent / "scripts" / "ensure-rabbitmq"


def amqp_answers(host: str = AMQP_HOST, port: int = AMQP_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` (needs the node's Erlang cookie: root or the rabbitmq user); its stdout.

    Raises:
        RuntimeError: it failed (the message holds its stderr).
    """
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=RABBITMQCTL_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def rabbitmq_unavailable() -> str | None:
    """Why the amqp tests cannot run here (None when they can): nothing on 127.0.0.1:5672 even after
    ``scripts/ensure-rabbitmq`` tried to start it, or no ``rabbitmqctl`` to create a vhost with."""
    if not amqp_answers():
        tried = subprocess.run([str(ENSURE_RABBITMQ)], capture_output=True, text=True, timeout=120, check=False)
        if not amqp_answers():
            return (
                f"RabbitMQ does not answer on {AMQP_HOST}:{AMQP_PORT} and could not be started "
                f"(scripts/ensure-rabbitmq: {tried.stderr.strip() or 'no output'})"
            )
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found: the amqp tests need it to create their own vhost"
    return None


class RabbitVhost:
    """A RabbitMQ vhost of its own (``llmorch-test-<uuid>``), guest allowed everything; ``delete()`` drops it
    with every queue, exchange and message in it, so nothing leaks between runs."""

    def __init__(self, prefix: str = "llmorch-test") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{quote(self.name, safe='')}"

    def create(self) -> RabbitVhost:
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, AMQP_USER, ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        try:
            rabbitmqctl("delete_vhost", self.name)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"could not delete RabbitMQ vhost {self.name}: {e}", file=sys.stderr)

    def close_connections(self, reason: str) -> str:
        """Close every client connection to this vhost (the broker's side of a network cut); rabbitmqctl's output."""
        return rabbitmqctl("close_all_connections", "--vhost", self.name, reason)

    def queues(self) -> dict[str, tuple[str, bool, int]]:
        """name → (type, durable, messages ready + unacked), from ``rabbitmqctl list_queues``."""
        out = rabbitmqctl(
            "list_queues", "-p", self.name, "--quiet", "--no-table-headers", "name", "type", "durable", "messages"
        )
        rows = (line.split("\t") for line in out.splitlines() if line.strip())
        return {r[0]: (r[1], r[2] == "true", int(r[3])) for r in rows if len(r) == 4}


def ready_messages(app: Any, queue: str) -> int:
    """Messages waiting in ``queue`` (not delivered to a consumer), by a passive declare on ``app``'s broker."""
    with app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue=queue, passive=True).message_count
        finally:
            channel.close()


def amqp_app(url: str) -> Any:
    """A Celery app with the project's settings on the amqp broker ``url`` (not the shared ``worker.app``)."""
    from celery import Celery

    from worker import settings

    app = Celery("llm_orchestrator", set_as_current=False)
    app.conf.update(settings.celery_config(broker=url))
    return app


@pytest.fixture(scope="session")
def amqp_vhost() -> Any:
    """A fresh RabbitMQ vhost for the whole run (skips, saying why, when RabbitMQ is not there)."""
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        vhost = RabbitVhost().create()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot create a RabbitMQ vhost: {e}")
    yield vhost
    vhost.delete()


@pytest.fixture(scope="module")
def amqp_stack(simulator, redis_url, amqp_vhost, tmp_path_factory):
    """``stack`` on RabbitMQ: one worker (llm.interactive, llm.batch; ``maintenance`` is left to each
    test's own workers) and the producer API bound to the vhost; state and results stay in Redis."""
    from worker import producer

    tmp = tmp_path_factory.mktemp("worker-amqp")
    config = write_config(tmp / "config.yaml", simulator, redis_url)
    app = amqp_app(amqp_vhost.url)
    shared, producer.celery_app = producer.celery_app, app
    env = worker_env(config, redis_url, CELERY_BROKER_URL=amqp_vhost.url)
    try:
        w = WorkerProcess(env, tmp, queues="llm.interactive,llm.batch").start(app)
    except BaseException:
        producer.celery_app = shared
        raise
    yield {"producer": producer, "app": app, "worker": w, "config": config, "tmp": tmp, "env": env, "vhost": amqp_vhost}
    w.stop()
    producer.celery_app = shared
