"""CostTracker: prices each call, writes the ledger once per (job_id, attempt), exports CSV.

The Redis ledger (when configured) is the source of truth; ``cost_tracking.log_path`` is an
append-only CSV copy written by every process off the call path (:mod:`llm_orchestrator.cost_csv`:
batched under ``flock``, so rows from several processes never interleave). An unknown model is
recorded with an empty cost and a warning — never as a silent $0.

While Redis is unreachable a row goes to the local spool (:mod:`llm_orchestrator.ledger_spool`)
instead of failing the call that was already paid for; the spool is replayed into Redis, exactly
once per row, by the first commit that finds Redis back (or ``llm-orch costs replay``).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from time import monotonic
from typing import Any

from llm_orchestrator.cost_csv import CsvCopy
from llm_orchestrator.ledger import MemoryLedger, RedisLedger, new_row_id
from llm_orchestrator.ledger_spool import LedgerSpool
from llm_orchestrator.pricing import Price, from_micros, load_prices, price_for, to_micros
from llm_orchestrator.providers.base import LLMResponse, Usage
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "timestamp",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_usd",
    "session_id",
    "job_id",
    "attempt",
    "tenant",
    "request_id",
    "batch",
    "row_id",
)
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")
SPOOL_CHECK_SECONDS = 5.0  # how often a process that spooled nothing looks for another's spooled rows


@dataclass(frozen=True)
class CostRecord:
    """One priced provider call. ``cost_micros`` is None when the model has no price."""

    timestamp: datetime
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cost_micros: int | None
    session_id: str = ""
    job_id: str = ""
    attempt: int = 0
    tenant: str = ""
    request_id: str = ""
    batch: bool = False
    row_id: str = field(default_factory=new_row_id)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> Decimal | None:
        return None if self.cost_micros is None else from_micros(self.cost_micros)

    def to_row(self) -> dict[str, str]:
        """All fields as strings (the ledger's and the CSV's format)."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "provider": self.provider,
            "model": self.model,
            "prompt_tokens": str(self.prompt_tokens),
            "completion_tokens": str(self.completion_tokens),
            "cached_tokens": str(self.cached_tokens),
            "cache_write_tokens": str(self.cache_write_tokens),
            "session_id": self.session_id,
            "job_id": self.job_id,
            "attempt": str(self.attempt),
            "tenant": self.tenant,
            "request_id": self.request_id,
            "batch": "1" if self.batch else "0",
            "row_id": self.row_id,
            "total_tokens": str(self.total_tokens),
            "cost_usd": "" if self.cost_usd is None else str(self.cost_usd),
            "ts": f"{self.timestamp.timestamp():.6f}",
        }

    @classmethod
    def from_row(cls, row: dict[str, str]) -> CostRecord:
        cost = row.get("cost_usd", "")
        return cls(
            timestamp=datetime.fromisoformat(row["timestamp"]),
            provider=row["provider"],
            model=row["model"],
            **{f: int(row[f]) for f in TOKEN_FIELDS},
            cost_micros=None if cost == "" else to_micros(Decimal(cost)),
            session_id=row.get("session_id", ""),
            job_id=row.get("job_id", ""),
            attempt=int(row.get("attempt") or 0),
            tenant=row.get("tenant", ""),
            request_id=row.get("request_id", ""),
            batch=row.get("batch") == "1",
            row_id=row["row_id"],
        )


class CostTracker:
    """Prices provider calls and records them in the ledger, one row per ``(job_id, attempt)``.

    Money is exact: ``Decimal`` USD, stored as integer micro-dollars (each call rounded half-up once).
    Writes never fail a call that was paid for (with Redis unreachable its row is spooled); reads
    (``records``, ``get_session_cost``, ``pending``, ``export_csv``, ``rollup``) and ``abandon``
    raise the Redis client's error when Redis is unreachable.

    Args:
        config: the ``cost_tracking`` config block (its ``pricing_path``, ``log_path`` and
            ``spool_path`` are read).
        redis: a client for the shared ledger, or None (this process's memory).
        key_prefix: Redis key prefix.
        prices: a price table (default: the packaged ``pricing.yaml`` + ``config.pricing_path``).

    Attributes:
        config: the ``cost_tracking`` block.
        prices: ``(provider, model)`` → list price.
        ledger: the Redis ledger, or this process's memory ledger without Redis.
        spool: the local file rows go to while Redis is unreachable; None without Redis.
        log_path: the CSV copy's path; None for no copy.

    Raises:
        ConfigError: ``config.pricing_path`` cannot be read or holds a bad price.
    """

    def __init__(
        self,
        config: Any,
        redis: Any = None,
        key_prefix: str = "llmorch:",
        prices: dict[tuple[str, str], Price] | None = None,
    ) -> None:
        self.config: Any = config
        self.prices: dict[tuple[str, str], Price] = (
            prices if prices is not None else load_prices(getattr(config, "pricing_path", None))
        )
        self.ledger: MemoryLedger | RedisLedger = (
            RedisLedger(redis, key_prefix) if redis is not None else MemoryLedger()
        )
        self.spool: LedgerSpool | None = LedgerSpool(getattr(config, "spool_path", None)) if redis is not None else None
        self.log_path: str | None = getattr(config, "log_path", None)
        self._warned: set[tuple[str, str]] = set()
        self._errors: tuple[type[BaseException], ...] = redis_errors() if redis is not None else ()
        self._degraded: Callable[[BaseException], None] = DegradedLog(log, "cost ledger").warn
        self._spooled: bool = False  # this process spooled rows not replayed yet
        self._next_spool_check: float = 0.0
        self._csv_copy: CsvCopy | None = None

    # -- pricing ----------------------------------------------------------------------------

    def price(self, usage: Usage, provider: str, model: str, batch: bool = False) -> Decimal | None:
        """Price one call at list price, exactly (not rounded).

        Args:
            usage: the call's token counts.
            provider: the provider's name.
            model: the model that answered; a dated snapshot takes its family's price.
            batch: apply the provider's batch discount.

        Returns:
            The cost in USD, or None for a model without a price (warned once per process).
        """
        entry = price_for(self.prices, provider, model)
        if entry is None:
            if (provider, model) not in self._warned:
                self._warned.add((provider, model))
                log.warning("no price for %s/%s: its cost is recorded as unknown", provider, model)
            return None
        return entry.cost(usage, batch=batch)

    # -- recording --------------------------------------------------------------------------

    def begin(self, job_id: str, attempt: int) -> None:
        """Mark ``(job_id, attempt)`` as calling the provider, so a crash before billing shows in :meth:`pending`.

        Best effort: with Redis away the call goes ahead without its marker (its row will be spooled).

        Args:
            job_id: the job.
            attempt: the job's attempt number.
        """
        try:
            self.ledger.begin(job_id, attempt)
        except self._errors as e:
            self._degraded(e)

    def abandon(self, job_id: str, attempt: int) -> None:
        """Clear the pending marker of ``(job_id, attempt)``: the call failed, there is nothing to bill.

        Args:
            job_id: the job.
            attempt: the job's attempt number.
        """
        self.ledger.abandon(job_id, attempt)

    def log_usage(
        self,
        response_or_usage: LLMResponse | Usage,
        *,
        provider: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        request_id: str | None = None,
        batch: bool = False,
    ) -> CostRecord:
        """Price and record one call; a repeat for the same ``(job_id, attempt)`` returns the first record.

        With Redis unreachable the row is spooled (replayed later). The CSV copy (``log_path``) is
        flushed before returning.

        Args:
            response_or_usage: an ``LLMResponse``, or a ``Usage`` (then pass ``provider`` and ``model``).
            provider, model: whose call it was; ignored when a response is passed (its own are used).
            session_id, job_id, attempt, tenant, request_id: stored with the record (``request_id``
                defaults to the response's).
            batch: priced at the provider's batch discount.

        Returns:
            The stored record: this one, or the one already written for ``(job_id, attempt)``.

        Raises:
            ValueError: a ``Usage`` without ``provider`` or ``model``.
        """
        record = self.record_for(
            response_or_usage,
            provider=provider,
            model=model,
            session_id=session_id,
            job_id=job_id,
            attempt=attempt,
            tenant=tenant,
            request_id=request_id,
            batch=batch,
        )
        new, row_id = self._commit(record.to_row(), record.cost_micros)
        record = self.committed(record, new, row_id)
        if self._csv is not None:
            self._csv.flush()  # a direct call leaves its row on disk when it returns
        return record

    def record_for(
        self,
        response_or_usage: LLMResponse | Usage,
        *,
        provider: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        request_id: str | None = None,
        batch: bool = False,
    ) -> CostRecord:
        """Build the priced record of one call without storing it (the gate stores it in its own script).

        Args:
            response_or_usage, provider, model, session_id, job_id, attempt, tenant, request_id, batch:
                as for :meth:`log_usage`.

        Returns:
            The record, timestamped now (UTC); ``cost_micros`` is None for an unpriced model.

        Raises:
            ValueError: a ``Usage`` without ``provider`` or ``model``.
        """
        if isinstance(response_or_usage, LLMResponse):
            usage, provider, model = response_or_usage.usage, response_or_usage.provider, response_or_usage.model
            request_id = request_id or response_or_usage.request_id
        else:
            usage = response_or_usage
        if not provider or not model:
            raise ValueError("provider and model are required with a Usage")
        cost = self.price(usage, provider, model, batch=batch)
        return CostRecord(
            timestamp=datetime.now(timezone.utc),
            provider=provider,
            model=model,
            **{f: getattr(usage, f) for f in TOKEN_FIELDS},
            cost_micros=None if cost is None else to_micros(cost),
            session_id=session_id or "",
            job_id=job_id or "",
            attempt=attempt,
            tenant=tenant or "",
            request_id=request_id or "",
            batch=batch,
        )

    def committed(self, record: CostRecord, new: bool, row_id: str) -> CostRecord:
        """Finish a ledger commit (made here or by the gate's script): the stored record, CSV row queued.

        Args:
            record: the record that was committed.
            new: whether the ledger wrote it (False: ``(job_id, attempt)`` already had a row).
            row_id: the id of the row the ledger holds.

        Returns:
            ``record`` when new (its CSV row is queued); else the row already stored, read back.
        """
        if not new:
            return self._existing(row_id, record)
        if self._csv is not None:
            self._csv.append(record.to_row())
        return record

    def commit_fallback(self, row: dict[str, str], micros: int | None) -> tuple[bool, str]:
        """Commit a row while Redis is unreachable: append it to the local spool (without Redis: the ledger).

        Args:
            row: the record as strings (``CostRecord.to_row()``).
            micros: its cost in micro-dollars, added to its session's total; None when unpriced.

        Returns:
            ``(new, row_id)``: ``(True, row["row_id"])`` when spooled, else the memory ledger's answer.
        """
        if self.spool is None:
            return self.ledger.commit(row, micros)
        self.spool.append(row, micros)
        self._spooled = True
        return True, row["row_id"]

    @property
    def _csv(self) -> CsvCopy | None:
        if not self.log_path:
            return None
        if self._csv_copy is None or str(self._csv_copy.path) != str(self.log_path):
            self._csv_copy = CsvCopy(self.log_path, CSV_COLUMNS)
        return self._csv_copy

    def _commit(self, row: dict[str, str], micros: int | None) -> tuple[bool, str]:
        """The ledger's commit; with Redis unreachable the row is spooled (the answer was paid for)."""
        if self.spool is None:
            return self.ledger.commit(row, micros)
        try:
            result = self.ledger.commit(row, micros)
        except self._errors as e:
            self._degraded(e)
            return self.commit_fallback(row, micros)
        self.replay_if_due()
        return result

    def replay_if_due(self) -> None:
        """Replay the spool after a commit reached Redis, if this process spooled rows (or every 5 s, for any).

        A Redis error is logged and swallowed: the rows stay spooled for the next look.
        """
        now = monotonic()
        if not self._spooled and now < self._next_spool_check:
            return
        self._next_spool_check = now + SPOOL_CHECK_SECONDS
        try:
            self.replay_spool()
        except self._errors as e:  # gone again: the rows stay spooled for the next look
            self._degraded(e)

    def replay_spool(self) -> int:
        """Commit the rows spooled while Redis was unreachable into the ledger, exactly once each.

        Returns:
            How many rows were handed to the ledger; 0 without a spool or with an empty one.

        Raises:
            redis.RedisError: Redis is unreachable again (the spool is kept whole).
        """
        if self.spool is None:
            return 0
        count = self.spool.replay(self.ledger.commit)
        self._spooled = False
        return count

    def _existing(self, row_id: str, fallback: CostRecord) -> CostRecord:
        if row_id == fallback.row_id:
            return fallback
        for row in self.ledger.rows():
            if row["row_id"] == row_id:
                return CostRecord.from_row(row)
        return fallback  # pragma: no cover - the row expired between the two reads

    # -- reading ----------------------------------------------------------------------------

    def records(self, since: datetime | None = None, until: datetime | None = None) -> list[CostRecord]:
        """Read the ledger rows with ``since <= timestamp < until``, oldest first.

        Args:
            since: the start, inclusive; None for the oldest row kept (Redis keeps rows 35 days).
            until: the end, exclusive; None for no end. A naive datetime is taken as local time.

        Returns:
            The records.
        """
        rows = self.ledger.rows(since.timestamp() if since else None, until.timestamp() if until else None)
        return [CostRecord.from_row(r) for r in rows]

    def get_session_cost(self, session_id: str) -> Decimal:
        """Sum the cost of a session's calls, exactly.

        Args:
            session_id: the ``session_id`` the calls were sent with.

        Returns:
            USD with 6 decimals; unpriced calls count as 0 (they were warned about); 0 for an unknown session.

        Raises:
            redis.RedisError: rows are spooled on this host (by any process sharing the spool file)
                and Redis is still unreachable: they are replayed first, so a total never leaves
                out a paid call that is waiting in the spool.
        """
        self.replay_spool()  # a stat when the spool is empty (see LedgerSpool.replay)
        return from_micros(self.ledger.session_micros(session_id))

    def pending(self, older_than: float = 300.0) -> dict[str, float]:
        """List the calls whose cost was never logged: pending markers older than ``older_than``.

        Args:
            older_than: minimum age of a marker, in seconds.

        Returns:
            ``"job_id:attempt"`` → when its marker was set (Unix seconds).
        """
        return self.ledger.pending(older_than)

    def export_csv(
        self, path: str | os.PathLike[str], since: datetime | None = None, until: datetime | None = None
    ) -> int:
        """Write ledger rows to a CSV file (overwriting it), with the ``CSV_COLUMNS`` header.

        Args:
            path: the file to write.
            since, until: the time range, as for :meth:`records`.

        Returns:
            The number of rows written.
        """
        records = self.records(since, until)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in records:
                writer.writerow(r.to_row())
        return len(records)

    def rollup(self, day: date) -> list[dict[str, Any]]:
        """Total one UTC day's calls per (tenant, provider, model); the same ledger gives the same rows.

        Args:
            day: the UTC date.

        Returns:
            One dict per (tenant, provider, model), sorted by them: ``date``, ``tenant``, ``provider``,
            ``model``, ``requests``, the four token counts, ``unpriced`` (calls without a price) and
            ``cost_usd`` (a string).
        """
        start = datetime.combine(day, time.min, tzinfo=timezone.utc)
        totals: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
            lambda: {"requests": 0, **dict.fromkeys(TOKEN_FIELDS, 0), "cost_micros": 0, "unpriced": 0}
        )
        for r in self.records(start, start + timedelta(days=1)):
            t = totals[(r.tenant, r.provider, r.model)]
            t["requests"] += 1
            for f in TOKEN_FIELDS:
                t[f] += getattr(r, f)
            if r.cost_micros is None:
                t["unpriced"] += 1
            else:
                t["cost_micros"] += r.cost_micros
        return [
            {
                "date": day.isoformat(),
                "tenant": tenant,
                "provider": provider,
                "model": model,
                **{k: v for k, v in t.items() if k != "cost_micros"},
                "cost_usd": str(from_micros(t["cost_micros"])),
            }
            for (tenant, provider, model), t in sorted(totals.items())
        ]
