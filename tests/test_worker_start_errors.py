"""A worker started with a bad config or bad settings stops at once with one line, never a traceback
and never a worker that takes jobs only to fail them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.worker_fixtures import worker_env, write_config


def _start_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-P", "solo", "--without-mingle"]
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def _one_line_error(proc: subprocess.CompletedProcess[str], says: str) -> None:
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, out[-2000:]
    assert "Traceback" not in out and says in out.strip().splitlines()[-1], out[-2000:]


def test_a_typo_in_the_config_stops_the_worker_with_the_field(tmp_path, simulator, redis_url):
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    config.write_text(config.read_text().replace("fallback_models:", "fallback_modles:", 1))
    _one_line_error(_start_worker(worker_env(config, redis_url)), "fallback_modles")


def test_a_missing_config_file_stops_the_worker(tmp_path, redis_url):
    _one_line_error(_start_worker(worker_env(tmp_path / "nowhere.yaml", redis_url)), "nowhere.yaml")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"CELERY_BROKER_URL": "sqs://queue"}, "CELERY_BROKER_URL must be an amqp:// or redis:// URL"),
        ({"REDIS_CLUSTER": "1"}, "a Redis Cluster cannot be Celery's broker"),
    ],
)
def test_bad_broker_settings_stop_the_worker_with_one_line(tmp_path, simulator, redis_url, extra, says):
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    _one_line_error(_start_worker({**worker_env(config, redis_url), **extra}), says)
