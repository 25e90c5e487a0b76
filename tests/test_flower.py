"""Flower is never reachable without credentials (the /metrics and /healthcheck pages excepted)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import ROOT
from tests.redis_server import free_port


def _status(url: str, auth: str | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_flower_requires_basic_auth(redis_url, tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": "admin:s3cret-pass", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_orchestrator.cli", "flower", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _status(base + "/healthcheck") == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert _status(base + "/") == 401
        assert _status(base + "/api/workers") == 401
        assert _status(base + "/api/workers", "admin:wrong") == 401
        assert _status(base + "/api/workers", "admin:s3cret-pass") == 200
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)


def test_wrapper_refuses_to_start_without_credentials():
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    out = subprocess.run(
        [sys.executable, "-m", "llm_orchestrator.cli", "flower"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "refusing to start Flower" in out.stderr
