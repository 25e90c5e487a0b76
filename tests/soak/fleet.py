"""The soak's Celery workers: started together, one replaced after its SIGKILL, and any worker that
exits by itself restarted, as systemd, Kubernetes or compose's restart policy would.

Celery/kombu 5.7.0 can exit a worker on a Redis connection loss (``AttributeError: 'NoneType'
object has no attribute 'hostname'`` while closing the channel; ``worker/kombu_fix.py`` guards
against it). Production runs workers under a supervisor, so the soak does too, and reports
every such exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY_SECONDS = 60  # a replacement must answer a ping within this
INSPECT_SECONDS = 1.0  # wait for a worker's answer to inspect active/reserved/scheduled


class Fleet:
    """``celery worker`` processes (``tests.worker_fixtures.WorkerProcess``) on the soak's settings."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, concurrency: int, app: Any, event: Callable[[str], None]
    ) -> None:
        self.env, self.log_dir, self.concurrency, self.app, self.event = env, log_dir, concurrency, app, event
        self.workers: list[Any] = []
        self.handled: set[str] = set()  # killed on purpose or already restarted: never restarted (again)
        self.exits: list[str] = []  # workers that exited by themselves, in order
        self._replacement: tuple[Any, threading.Thread] | None = None

    def _new(self) -> Any:
        from tests.worker_fixtures import WorkerProcess

        worker = WorkerProcess(self.env, self.log_dir, concurrency=self.concurrency)
        self.workers.append(worker)
        return worker

    def start(self, count: int) -> None:
        """Start ``count`` workers in parallel; return once each answers a ping."""
        threads = [threading.Thread(target=self._new().start, args=(self.app,)) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def live(self) -> list[Any]:
        return [w for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def held(self, worker: Any) -> set[str]:
        """The job ids a live worker holds: running, reserved, or waiting for their retry countdown."""
        inspect = self.app.control.inspect(destination=[worker.node], timeout=INSPECT_SECONDS)
        ids: set[str] = set()
        try:
            for listing in (inspect.active(), inspect.reserved()):
                ids.update(t["id"] for tasks in (listing or {}).values() for t in tasks)
            ids.update(t["request"]["id"] for tasks in (inspect.scheduled() or {}).values() for t in tasks)
        except Exception:
            return set()
        return ids

    def kill(self, victim: Any) -> None:
        """SIGKILL ``victim``'s process group (main process and children); start a replacement."""
        self.handled.add(victim.name)
        victim.kill()
        fresh = self._new().launch()
        thread = threading.Thread(target=self._await_ready, args=(fresh,), name="soak-replacement", daemon=True)
        thread.start()
        self._replacement = (fresh, thread)

    def _await_ready(self, worker: Any) -> None:
        """Wait for the replacement's ping, riding out Redis being away meanwhile (its restart may come now)."""
        started = time.monotonic()
        while time.monotonic() < started + READY_SECONDS:
            if worker.proc.poll() is not None:
                return  # exited: supervise() restarts it and says so
            try:
                if self.app.control.ping(destination=[worker.node], timeout=0.5):
                    self.event(f"replacement worker {worker.name} is up ({time.monotonic() - started:.1f} s)")
                    return
            except Exception:
                time.sleep(0.5)
        self.event(f"replacement worker {worker.name} did not answer a ping within {READY_SECONDS} s")

    def join_replacement(self) -> None:
        if self._replacement is not None:
            self._replacement[1].join()
            self._replacement = None

    def supervise(self) -> None:
        """Restart each worker that exited by itself (not the one killed on purpose)."""
        for w in list(self.workers):
            if w.name in self.handled or w.proc is None or w.proc.poll() is None:
                continue
            self.handled.add(w.name)
            self.exits.append(w.name)
            fresh = self._new()
            fresh.launch()
            self.event(
                f"worker {w.name} exited by itself (exit {w.proc.returncode}; see its log); restarted as {fresh.name}"
            )

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
