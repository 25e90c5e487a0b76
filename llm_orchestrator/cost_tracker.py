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
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from time import monotonic
from typing import Any

from llm_orchestrator.cost_csv import CsvCopy
from llm_orchestrator.ledger import MemoryLedger, RedisLedger, new_row_id
from llm_orchestrator.ledger_spool import LedgerSpool
from llm_orchestrator.pricing import Price, from_micros, load_prices, price_for, to_micros
from llm_orchestrator.providers.base import LLMResponse, Usage
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors

log = logging.getLogger(__name__)

CSV_COLUMNS = ("timestamp", "provider", "model", "prompt_tokens", "completion_tokens", "total_tokens",
               "cached_tokens", "cache_write_tokens", "cost_usd", "session_id", "job_id", "attempt", "tenant",
               "request_id", "batch", "row_id")
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
        return {"timestamp": self.timestamp.isoformat(), "provider": self.provider, "model": self.model,
                "prompt_tokens": str(self.prompt_tokens), "completion_tokens": str(self.completion_tokens),
                "cached_tokens": str(self.cached_tokens), "cache_write_tokens": str(self.cache_write_tokens),
                "session_id": self.session_id, "job_id": self.job_id, "attempt": str(self.attempt),
                "tenant": self.tenant, "request_id": self.request_id, "batch": "1" if self.batch else "0",
                "row_id": self.row_id, "total_tokens": str(self.total_tokens),
                "cost_usd": "" if self.cost_usd is None else str(self.cost_usd),
                "ts": f"{self.timestamp.timestamp():.6f}"}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> CostRecord:
        cost = row.get("cost_usd", "")
        return cls(timestamp=datetime.fromisoformat(row["timestamp"]), provider=row["provider"], model=row["model"],
                   **{f: int(row[f]) for f in TOKEN_FIELDS},
                   cost_micros=None if cost == "" else to_micros(Decimal(cost)),
                   session_id=row.get("session_id", ""), job_id=row.get("job_id", ""),
                   attempt=int(row.get("attempt") or 0), tenant=row.get("tenant", ""),
                   request_id=row.get("request_id", ""), batch=row.get("batch") == "1", row_id=row["row_id"])


class CostTracker:
    """Prices calls and records them.

    Args:
        config: the ``cost_tracking`` config block.
        redis: a client for the shared ledger, or None (this process's memory).
        key_prefix: Redis key prefix.
        prices: a price table (default: the packaged ``pricing.yaml`` + ``config.pricing_path``).
    """

    def __init__(self, config: Any, redis: Any = None, key_prefix: str = "llmorch:",
                 prices: dict[tuple[str, str], Price] | None = None) -> None:
        self.config = config
        self.prices = prices if prices is not None else load_prices(getattr(config, "pricing_path", None))
        self.ledger: MemoryLedger | RedisLedger = RedisLedger(redis, key_prefix) if redis is not None else MemoryLedger()
        self.spool: LedgerSpool | None = LedgerSpool(getattr(config, "spool_path", None)) if redis is not None else None
        self.log_path: str | None = getattr(config, "log_path", None)
        self._warned: set[tuple[str, str]] = set()
        self._errors = redis_errors() if redis is not None else ()
        self._degraded = DegradedLog(log, "cost ledger").warn
        self._spooled = False  # this process spooled rows not replayed yet
        self._next_spool_check = 0.0
        self._csv_copy: CsvCopy | None = None

    # -- pricing ----------------------------------------------------------------------------

    def price(self, usage: Usage, provider: str, model: str, batch: bool = False) -> Decimal | None:
        """Exact USD cost of one call, or None (with a warning once) for an unpriced model."""
        entry = price_for(self.prices, provider, model)
        if entry is None:
            if (provider, model) not in self._warned:
                self._warned.add((provider, model))
                log.warning("no price for %s/%s: its cost is recorded as unknown", provider, model)
            return None
        return entry.cost(usage, batch=batch)

    # -- recording --------------------------------------------------------------------------

    def begin(self, job_id: str, attempt: int) -> None:
        """Mark (job_id, attempt) as calling the provider (visible if we crash before logging).

        Best effort: with Redis away the call goes ahead without its marker (its row will be spooled).
        """
        try:
            self.ledger.begin(job_id, attempt)
        except self._errors as e:
            self._degraded(e)

    def abandon(self, job_id: str, attempt: int) -> None:
        """The call failed: nothing to bill, clear the pending marker."""
        self.ledger.abandon(job_id, attempt)

    def log_usage(self, response_or_usage: LLMResponse | Usage, *, provider: str | None = None,
                  model: str | None = None, session_id: str | None = None, job_id: str | None = None,
                  attempt: int = 0, tenant: str | None = None, request_id: str | None = None,
                  batch: bool = False) -> CostRecord:
        """Price and record one call. A repeat for the same (job_id, attempt) returns the first record.

        Args:
            response_or_usage: an ``LLMResponse`` or a ``Usage`` (then pass provider and model).
            session_id, job_id, attempt, tenant, request_id: stored with the record.
            batch: priced at the provider's batch discount.
        """
        record = self.record_for(response_or_usage, provider=provider, model=model, session_id=session_id,
                                 job_id=job_id, attempt=attempt, tenant=tenant, request_id=request_id, batch=batch)
        new, row_id = self._commit(record.to_row(), record.cost_micros)
        record = self.committed(record, new, row_id)
        if self._csv is not None:
            self._csv.flush()  # a direct call leaves its row on disk when it returns
        return record

    def record_for(self, response_or_usage: LLMResponse | Usage, *, provider: str | None = None,
                   model: str | None = None, session_id: str | None = None, job_id: str | None = None,
                   attempt: int = 0, tenant: str | None = None, request_id: str | None = None,
                   batch: bool = False) -> CostRecord:
        """The priced record of one call, not stored yet (see :meth:`log_usage` for the arguments)."""
        if isinstance(response_or_usage, LLMResponse):
            usage, provider, model = response_or_usage.usage, response_or_usage.provider, response_or_usage.model
            request_id = request_id or response_or_usage.request_id
        else:
            usage = response_or_usage
        if not provider or not model:
            raise ValueError("provider and model are required with a Usage")
        cost = self.price(usage, provider, model, batch=batch)
        return CostRecord(timestamp=datetime.now(timezone.utc), provider=provider, model=model,
                          **{f: getattr(usage, f) for f in TOKEN_FIELDS},
                          cost_micros=None if cost is None else to_micros(cost), session_id=session_id or "",
                          job_id=job_id or "", attempt=attempt, tenant=tenant or "",
                          request_id=request_id or "", batch=batch)

    def committed(self, record: CostRecord, new: bool, row_id: str) -> CostRecord:
        """After the ledger's commit (here or in the gate's script): the stored record; CSV copy queued."""
        if not new:
            return self._existing(row_id, record)
        if self._csv is not None:
            self._csv.append(record.to_row())
        return record

    def commit_fallback(self, row: dict[str, str], micros: int | None) -> tuple[bool, str]:
        """The commit while Redis is unreachable: the row is spooled (see :mod:`ledger_spool`)."""
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
        """After a commit reached Redis: replay the spool if this process (or, every few seconds, any) spooled."""
        now = monotonic()
        if not self._spooled and now < self._next_spool_check:
            return
        self._next_spool_check = now + SPOOL_CHECK_SECONDS
        try:
            self.replay_spool()
        except self._errors as e:  # gone again: the rows stay spooled for the next look
            self._degraded(e)

    def replay_spool(self) -> int:
        """Commit rows spooled while Redis was unreachable (exactly once each). Returns how many.

        Raises:
            redis.ConnectionError: Redis is still unreachable (the spool is kept whole).
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
        """Ledger rows with ``since <= timestamp < until``, oldest first."""
        rows = self.ledger.rows(since.timestamp() if since else None, until.timestamp() if until else None)
        return [CostRecord.from_row(r) for r in rows]

    def get_session_cost(self, session_id: str) -> Decimal:
        """Total cost of a session (exact; unpriced calls count as 0 there and were warned about)."""
        return from_micros(self.ledger.session_micros(session_id))

    def pending(self, older_than: float = 300.0) -> dict[str, float]:
        """(job_id:attempt) markers older than ``older_than`` seconds: calls whose cost was never logged."""
        return self.ledger.pending(older_than)

    def export_csv(self, path: str | os.PathLike[str], since: datetime | None = None,
                   until: datetime | None = None) -> int:
        """Write ledger rows to ``path`` (overwriting). Returns the number of rows."""
        records = self.records(since, until)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in records:
                writer.writerow(r.to_row())
        return len(records)

    def rollup(self, day: date) -> list[dict[str, Any]]:
        """Totals of one UTC day per (date, tenant, provider, model). Same input, same rows."""
        start = datetime.combine(day, time.min, tzinfo=timezone.utc)
        totals: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
            lambda: {"requests": 0, **{f: 0 for f in TOKEN_FIELDS}, "cost_micros": 0, "unpriced": 0})
        for r in self.records(start, start + timedelta(days=1)):
            t = totals[(r.tenant, r.provider, r.model)]
            t["requests"] += 1
            for f in TOKEN_FIELDS:
                t[f] += getattr(r, f)
            if r.cost_micros is None:
                t["unpriced"] += 1
            else:
                t["cost_micros"] += r.cost_micros
        return [{"date": day.isoformat(), "tenant": tenant, "provider": provider, "model": model,
                 **{k: v for k, v in t.items() if k != "cost_micros"}, "cost_usd": str(from_micros(t["cost_micros"]))}
                for (tenant, provider, model), t in sorted(totals.items())]
