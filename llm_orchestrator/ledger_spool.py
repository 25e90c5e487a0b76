"""A local, durable spool for ledger rows written while Redis is unreachable.

A paid provider answer is never thrown away because the shared ledger is down: the call returns
its answer and its cost row is appended here (one JSON line, ``fsync``-ed, under ``flock`` so
several processes can share the file). When Redis answers again the rows are replayed into the
Redis ledger — by the next call that finds the spool non-empty, or by ``llm-orch costs replay``.
Replaying is idempotent: a row whose id is already in Redis, or whose (job_id, attempt) already
has a row, is skipped by the ledger's commit script, so a row lands exactly once however many
times a replay is interrupted and run again.

The default path is ``$XDG_STATE_HOME/llm-orchestrator/ledger-spool.jsonl`` (else
``~/.local/state/…``); ``cost_tracking.spool_path`` sets another.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SPOOL_FILE = "ledger-spool.jsonl"


def default_spool_path() -> Path:
    """``$XDG_STATE_HOME/llm-orchestrator/ledger-spool.jsonl``, else under ``~/.local/state``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llm-orchestrator" / SPOOL_FILE


class LedgerSpool:
    """Append-only JSON lines of ``{"row": {...}, "session_micros": n}`` (see module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else default_spool_path()

    def append(self, row: dict[str, str], session_micros: int | None) -> None:
        """Write one row durably (flushed and fsync-ed before returning)."""
        line = json.dumps({"row": row, "session_micros": session_micros}, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            os.write(fd, line.encode())
            os.fsync(fd)

    def has_rows(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def replay(self, commit: Callable[[dict[str, str], int | None], Any]) -> int:
        """Commit every spooled row (``commit`` is the ledger's, idempotent); empty the file.

        Returns how many rows were handed to ``commit``. If ``commit`` raises (Redis went away
        again), the file is left whole and the error propagates: the next replay starts over,
        and the rows already committed are skipped by the ledger.
        """
        if not self.has_rows():
            return 0
        with self._locked(os.O_RDWR) as fd:
            entries = list(_entries(_read_all(fd), self.path))
            for entry in entries:
                commit(entry["row"], entry.get("session_micros"))
            os.ftruncate(fd, 0)
            os.fsync(fd)
        if entries:
            log.info("replayed %d ledger rows spooled while Redis was unreachable", len(entries))
        return len(entries)

    def rows(self) -> list[dict[str, Any]]:
        """The spooled entries (for reports and tests)."""
        if not self.has_rows():
            return []
        with self._locked(os.O_RDONLY, shared=True) as fd:
            return list(_entries(_read_all(fd), self.path))

    @contextmanager
    def _locked(self, flags: int, shared: bool = False) -> Iterator[int]:
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _entries(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash mid-write: its call is lost to the ledger
            log.error("%s: line %d is not a complete spool entry; skipped", path, n)
            continue
        if isinstance(entry, dict) and isinstance(entry.get("row"), dict):
            yield entry
