"""The CSV copy of the ledger (``cost_tracking.log_path``), written off the call path.

The ledger is the source of truth (``llm-orch costs export`` rebuilds a CSV from it at any time);
this copy is a convenience. Rows are queued in memory and appended by a background thread, in
batches, each batch one ``write`` under ``flock`` so several processes never interleave rows. A
process flushes what is queued when it exits. ``flush()`` writes the queue now (``log_usage``
calls it, so a direct call still leaves its row on disk when it returns).
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import io
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5  # a queued row reaches the file within this
MAX_BATCH = 1000


class CsvCopy:
    """Appends ledger rows to ``path`` from a background thread (started on first use, per process)."""

    def __init__(self, path: str | os.PathLike[str], columns: Iterable[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid = 0
        self._write_lock = threading.Lock()

    def append(self, row: dict[str, Any]) -> None:
        """Queue one row (returns at once)."""
        with self._lock:
            self._rows.append(row)
            self._start()
            full = len(self._rows) >= MAX_BATCH
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write every queued row now."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            self._write(rows)

    def _start(self) -> None:
        """Start the writer in this process (again after a fork: threads do not survive it)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="llm-orch-cost-csv", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except OSError as e:  # a full disk or a bad path must not end the writer
                log.warning(
                    "could not append to the cost CSV %s (%s); the ledger still has the rows",
                    self.path,
                    type(e).__name__,
                )

    def _write(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        writer.writerows(rows)
        with self._write_lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_size == 0:
                    os.write(fd, (",".join(self.columns) + "\r\n").encode())
                os.write(fd, buf.getvalue().encode())
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
