"""Batch jobs in the simulator: stored items, a completion delay, and running the items once.

Provider-neutral. Each ``wire_*_batch`` module parses its provider's batch request into
:class:`~llm_orchestrator.simulator.engine.Call` items and renders a :class:`SimBatch` in its own
format. A batch is in progress until ``delay_ms`` (``POST /_sim/batch``) after it was created; the
first read after that runs every item through :func:`engine.process` — the same answers, token
counts and fault rules as live calls, but no live rate limit or latency — and ends it. A fault
that fires on an item becomes that item's error, never the whole batch's. Items are counted in
``/_sim/stats`` with ``"batch": true``. A cancelled batch never runs its items.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from llm_orchestrator.simulator.engine import Call, Failure, Reply, new_request_id, process
from llm_orchestrator.simulator.state import SimState

DEFAULT_DELAY_MS = 200.0
TIMEOUT_ITEM_STATUS = 504  # an item hit by a 'timeout' fault: the provider gave up on it
MALFORMED_ITEM_STATUS = 500


@dataclass
class SimItem:
    """One request of a batch. ``call`` is None when its parameters were rejected (``invalid``)."""

    custom_id: str
    call: Call | None
    invalid: str = ""
    outcome: Reply | Failure | None = None  # set when the batch runs

    @property
    def succeeded(self) -> bool:
        return isinstance(self.outcome, Reply)


@dataclass
class SimBatch:
    """One batch job. ``phase``: ``in_progress`` → ``running`` (items being answered) → ``ended``."""

    id: str
    provider: str
    model: str
    items: list[SimItem]
    created: float  # epoch seconds
    ready_at: float  # monotonic seconds
    phase: str = "in_progress"
    cancelled: bool = False
    failed: str = ""  # why the whole batch was rejected (OpenAI input-file validation)
    ended_at: float | None = None  # epoch seconds
    extra: dict[str, Any] = field(default_factory=dict)  # provider bits (file ids, display name, ...)

    @property
    def ended(self) -> bool:
        return self.phase == "ended"

    def counts(self) -> dict[str, int]:
        """Items by result: succeeded, errored (incl. rejected params) and not_run."""
        succeeded = sum(1 for i in self.items if i.succeeded)
        not_run = sum(1 for i in self.items if i.outcome is None and i.call is not None)
        return {
            "total": len(self.items),
            "succeeded": succeeded,
            "not_run": not_run,
            "errored": len(self.items) - succeeded - not_run,
        }


class BatchStore:
    """Every batch and uploaded file, per simulator, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delay_ms = DEFAULT_DELAY_MS
        self.batches: dict[str, SimBatch] = {}
        self.files: dict[str, dict[str, Any]] = {}  # OpenAI files: metadata + "content" bytes

    def reset(self) -> None:
        with self.lock:
            self.delay_ms = DEFAULT_DELAY_MS
            self.batches.clear()
            self.files.clear()

    def set_delay(self, delay_ms: float) -> None:
        with self.lock:
            self.delay_ms = max(0.0, float(delay_ms))

    def create(
        self,
        provider: str,
        model: str,
        items: list[SimItem],
        prefix: str,
        failed: str = "",
        extra: dict[str, Any] | None = None,
    ) -> SimBatch:
        """Store a new batch; marked for its items as batch calls."""
        for item in items:
            if item.call is not None:
                item.call = replace(item.call, batch=True, stream=False)
        with self.lock:
            batch = SimBatch(
                id=prefix + uuid.uuid4().hex[:24],
                provider=provider,
                model=model,
                items=items,
                created=time.time(),
                ready_at=time.monotonic() + self.delay_ms / 1000.0,
                failed=failed,
                extra=dict(extra or {}),
            )
            if failed:
                batch.phase, batch.ended_at = "ended", batch.created
            self.batches[batch.id] = batch
            return batch

    def get(self, provider: str, batch_id: str) -> SimBatch | None:
        with self.lock:
            batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.provider == provider else None

    def listing(self, provider: str) -> list[SimBatch]:
        """The provider's batches, newest first."""
        with self.lock:
            found = [b for b in self.batches.values() if b.provider == provider]
        return sorted(found, key=lambda b: b.created, reverse=True)

    def cancel(self, provider: str, batch_id: str) -> SimBatch | None:
        """Cancel a batch that has not run yet (a no-op on an ended one)."""
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None or batch.provider != provider:
                return None
            if batch.phase == "in_progress":
                batch.cancelled, batch.phase, batch.ended_at = True, "ended", time.time()
            return batch

    def add_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self.lock:
            entry: dict[str, Any] = {
                "id": "file-" + uuid.uuid4().hex[:24],
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "status": "processed",
                "content": content,
            }
            self.files[entry["id"]] = entry
            return entry

    def file(self, file_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.files.get(file_id)


async def settle(state: SimState, store: BatchStore, batch: SimBatch) -> SimBatch:
    """Run the batch's items once its delay has passed; return it (ended or not)."""
    with store.lock:
        if batch.phase != "in_progress" or time.monotonic() < batch.ready_at:
            return batch
        batch.phase = "running"
    for item in batch.items:
        if item.call is None:
            continue
        outcome = await process(state, item.call, new_request_id("req_"))
        item.outcome = outcome
        if isinstance(outcome, Reply):
            state.record(batch.provider, item.call.model, 200, outcome.usage, batch=True)
        else:
            state.record(batch.provider, item.call.model, recorded_status(outcome), batch=True)
    with store.lock:
        batch.phase, batch.ended_at = "ended", time.time()
    return batch


def recorded_status(failure: Failure) -> int | str:
    """What stats record for a failed item: the status, or the fault kind (as for live calls)."""
    return failure.status if failure.kind == "status" else failure.kind


def item_status(failure: Failure) -> int:
    """The HTTP status a failed item reports in the batch results."""
    if failure.kind == "timeout":
        return TIMEOUT_ITEM_STATUS
    if failure.kind == "malformed":
        return MALFORMED_ITEM_STATUS
    return failure.status
