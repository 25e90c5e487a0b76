"""A real three-master Redis Cluster for the tests, on free ports (``redis-server --cluster-enabled``).

The cluster bus listens on port + 10000, so every port is taken below 55535. Created with
``redis-cli --cluster create`` (no replicas), torn down with its data directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MAX_PORT = 55_535  # the cluster bus uses port + 10000
MASTERS = 3


def _free_port_below(limit: int, taken: list[int]) -> int:
    """A free port under ``limit`` whose bus port is free too, not one of ``taken`` (the OS can hand
    the same free port out twice in a row: two nodes once got one port and the cluster never started)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < limit and port not in taken:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10_000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port below 55535 for a cluster node")


class RedisCluster:
    """Three masters on free ports; ``url`` names the first (the seed node)."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server/redis-cli are not installed; run `make deps`")
        self.dir = Path(tempfile.mkdtemp(prefix="llmorch-cluster-"))
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisCluster:
        for _n in range(MASTERS):
            port = _free_port_below(MAX_PORT, self.ports)
            (self.dir / str(port)).mkdir()
            self.ports.append(port)
            self.procs.append(self._spawn(port))
        self._wait(lambda: all(self._ping(p) for p in self.ports), "nodes did not start")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait(self._ready, "cluster did not reach state ok")
        return self

    def restart_node(self, index: int, down_seconds: float = 0.0) -> None:
        """Stop one master and start it again on its port with its AOF (its slots are unavailable meanwhile)."""
        proc, port = self.procs[index], self.ports[index]
        proc.terminate()
        proc.wait(10)
        time.sleep(down_seconds)
        self.procs[index] = self._spawn(port)
        self._wait(self._ready, "cluster did not come back")

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        """One master on ``port``, its node file and AOF in its own directory."""
        args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", f"nodes-{port}.conf", "--dir", str(self.dir / str(port))]
        args += ["--save", "", "--appendonly", "yes", "--daemonize", "no", "--loglevel", "warning"]
        return subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.procs = []

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ready(self) -> bool:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.ports[0]), "cluster", "info"], capture_output=True, text=True, timeout=5
        ).stdout
        return "cluster_state:ok" in out and all(self._ping(p) for p in self.ports)

    @staticmethod
    def _ping(port: int) -> bool:
        out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() == "PONG"

    @staticmethod
    def _wait(ready, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(what)
