"""``llm-orch flower``: bad credentials are refused at start; stopping the wrapper stops Flower."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.redis_server import free_port
from tests.test_cli_inputs import LLM_ORCH, assert_one_line_error, cli_env, llm_orch


@pytest.mark.parametrize("value", ["admin", "admin:", ":s3cret", "admin:ok,second", ","])
def test_basic_auth_without_user_colon_password_is_refused_at_start(redis_url, value):
    proc = llm_orch("flower", env=cli_env(REDIS_URL=redis_url, FLOWER_BASIC_AUTH=value), timeout=60)
    line = assert_one_line_error(proc, "FLOWER_BASIC_AUTH", "user:password")
    assert proc.returncode == 2
    assert "s3cret" not in line


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_stopping_the_wrapper_stops_flower(redis_url, tmp_path):
    port = free_port()
    env = cli_env(REDIS_URL=redis_url, FLOWER_BASIC_AUTH="admin:s3cret-pass", PYTHONPATH=str(ROOT))
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [LLM_ORCH, "flower", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        assert _answers(port), (tmp_path / "flower.log").read_text()
        proc.send_signal(signal.SIGTERM)  # the wrapper only, as a supervisor would
        proc.wait(20)
        deadline = time.monotonic() + 10
        while _answers(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _answers(port), "Flower still listens after its wrapper stopped"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group this test started
        except ProcessLookupError:
            pass
        proc.wait(10)
        log.close()
