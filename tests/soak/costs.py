"""The soak's cost audit: the ledger against the jobs' results and against what the simulator billed.

- no (job_id, attempt) has two ledger rows; every row has a price;
- the ledger total == the sum of the jobs' result costs (a job's ``cost.usd`` is its ledger total);
- the ledger == what the simulator billed for answered calls (priced per call with the library's
  price table), less the calls answered while their worker was SIGKILLed or while Redis was away
  (at most one per child: the provider charged for an answer nobody kept).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.soak.report import Report
from tests.soak.scenario import Job


def audit_costs(
    report: Report, client: Any, sim: Any, jobs: list[Job], results: list[Any], in_flight_slots: int, spool: Path
) -> None:
    rows = _ledger_rows(report, client, jobs, spool)
    _audit_ledger(report, rows, results, jobs)
    _audit_billing(report, sim, rows, in_flight_slots)


def _ledger_rows(report: Report, client: Any, jobs: list[Job], spool: Path) -> list[Any]:
    """The soak jobs' ledger rows, after replaying any row still in the workers' spool
    (as ``llm-orch costs replay`` would: no call came after it to replay it)."""
    from llm_orchestrator.config.manager import CostTrackingConfig
    from llm_orchestrator.cost_tracker import CostTracker

    tracker = CostTracker(CostTrackingConfig(log_path=None, spool_path=str(spool)), redis=client)
    report.figures["ledger spool rows left (replayed now)"] = tracker.replay_spool()
    report.figures["ledger pending markers left"] = len(tracker.pending(older_than=0))
    ids = {j.id for j in jobs}
    return [r for r in tracker.records() if r.job_id.split(":")[0] in ids]


def _audit_ledger(report: Report, rows: list[Any], results: list[Any], jobs: list[Job]) -> None:
    from llm_orchestrator.pricing import from_micros

    f, problems = report.figures, report.problems
    dups = {k: n for k, n in Counter((r.job_id, r.attempt) for r in rows).items() if n > 1}
    f["ledger rows"] = len(rows)
    f["duplicate ledger rows"] = sum(n - 1 for n in dups.values())
    if dups:
        problems.append(f"duplicate ledger rows for {len(dups)} (job_id, attempt), e.g. {list(dups)[:3]}")
    unpriced = [r for r in rows if r.cost_micros is None]
    if unpriced:
        problems.append(f"{len(unpriced)} ledger rows without a price")
    ledger_usd = from_micros(sum(r.cost_micros or 0 for r in rows))
    result_usd = sum((Decimal(r["cost"]["usd"]) for r in results if r and r["cost"]["usd"] is not None), Decimal(0))
    f["ledger total (USD)"] = str(ledger_usd)
    f["sum of job result costs (USD)"] = str(result_usd)
    if ledger_usd != result_usd:
        problems.append(f"ledger total {ledger_usd} != sum of result costs {result_usd}")
        problems.append(_result_gap(rows, results, jobs))


def _result_gap(rows: list[Any], results: list[Any], jobs: list[Job]) -> str:
    from llm_orchestrator.pricing import to_micros

    by_job: Counter[str] = Counter()
    for r in rows:
        by_job[r.job_id.split(":")[0]] += r.cost_micros or 0
    odd = []
    for j, r in zip(jobs, results):
        res = to_micros(Decimal(r["cost"]["usd"])) if r and r["cost"]["usd"] is not None else 0
        if by_job.get(j.id, 0) != res:
            odd.append((j.id, j.kind, by_job.get(j.id, 0), res, r and r.get("status")))
    return (
        f"{len(odd)} jobs whose ledger rows != result cost (id, kind, ledger micros, result micros, status), "
        f"e.g. {odd[:4]}"
    )


def _audit_billing(report: Report, sim: Any, rows: list[Any], in_flight_slots: int) -> None:
    """What the simulator billed for answered calls vs the ledger, priced with the library's table."""
    from llm_orchestrator.pricing import from_micros, load_prices, to_micros
    from llm_orchestrator.providers.base import Usage

    f, problems = report.figures, report.problems
    stats = sim.control.stats()
    billed: Counter[tuple[Any, ...]] = Counter()
    for b in stats["billed"]:
        billed[
            (
                b["provider"],
                b["model"],
                b["prompt_tokens"],
                b["completion_tokens"],
                b["cached_tokens"],
                b["cache_write_tokens"],
                bool(b["batch"]),
            )
        ] += b["count"]
    ledgered = Counter(
        (r.provider, r.model, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cache_write_tokens, r.batch)
        for r in rows
    )
    not_billed, orphans = ledgered - billed, billed - ledgered
    prices = load_prices()

    def price(key: tuple[Any, ...]) -> int:
        provider, model, pt, ct, cached, cw, batch = key
        return to_micros(prices[(provider, model)].cost(Usage(pt, ct, cached, cw), batch=batch))

    billed_micros = sum(price(k) * n for k, n in billed.items())
    orphan_micros = sum(price(k) * n for k, n in orphans.items())
    ledger_micros = sum(r.cost_micros or 0 for r in rows)
    f["simulator: answered (billed) calls"] = sum(billed.values())
    f["simulator: billed (USD)"] = str(from_micros(billed_micros))
    f["billed but not in ledger (calls)"] = (
        f"{sum(orphans.values())} (${from_micros(orphan_micros)}; "
        f"allowed <= {in_flight_slots}: in flight at SIGKILL, Redis restart or broker cut)"
    )
    f["in ledger but never billed (calls)"] = sum(not_billed.values())
    if not_billed:
        problems.append(f"{sum(not_billed.values())} ledger rows match no billed call, e.g. {list(not_billed)[:2]}")
    if sum(orphans.values()) > in_flight_slots:
        problems.append(
            f"{sum(orphans.values())} billed calls missing from the ledger (only {in_flight_slots} "
            f"may be, in flight at SIGKILL, Redis restart or broker cut), e.g. {list(orphans)[:2]}"
        )
    if billed_micros - orphan_micros != ledger_micros:
        problems.append(
            f"simulator billed {from_micros(billed_micros)} - orphans {from_micros(orphan_micros)} "
            f"!= ledger {from_micros(ledger_micros)}"
        )
    calls = Counter(str(r["status"]) for r in stats["requests"] for _ in range(r["count"]))
    f["simulator: calls by status"] = dict(sorted(calls.items()))
