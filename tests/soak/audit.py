"""Settling and auditing a soak run: results, outbox, leases, ledger and the simulator's bill.

A job's result lives only in its own key (``worker.keys.JOB_RESULT``): the producer sends jobs
with ``ignore_result``, so there is no Celery result meta to compare it with. The audit reads:

- the result keys: every job has one (else *lost*), of status ``succeeded``/``failed``; a failed
  result saying "the task crashed" is a bug (``tasks.llm.JobTask.on_failure``);
- the outbox and the leases: after settling no job is still open or leased (else *stuck*);
- the costs (``tests/soak/costs.py``): ledger vs job results vs what the simulator billed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.soak.costs import audit_costs
from tests.soak.report import Report
from tests.soak.scenario import Job

CRASH_MESSAGE = "the task crashed"  # tasks/llm.py JobTask.on_failure: "the task crashed; see worker logs"
FINAL_STATUSES = ("succeeded", "failed")
MGET_CHUNK = 1000
SETTLE_POLL_SECONDS = 1.0


def mget_json(client: Any, keys: list[str]) -> list[Any]:
    """The JSON values of ``keys`` (None where missing); on a cluster, by slot (``mget_nonatomic``)."""
    from llm_orchestrator.redis_client import is_cluster

    mget = client.mget_nonatomic if is_cluster(client) else client.mget
    out: list[Any] = []
    for i in range(0, len(keys), MGET_CHUNK):
        out += [None if v is None else json.loads(v) for v in mget(keys[i : i + MGET_CHUNK])]
    return out


def results_of(client: Any, jobs: list[Job]) -> list[dict[str, Any] | None]:
    from worker.keys import JOB_RESULT

    return mget_json(client, [JOB_RESULT.format(job_id=j.id) for j in jobs])


def count_done(client: Any, jobs: list[Job]) -> int:
    return sum(1 for r in results_of(client, jobs) if r is not None)


def _flags(client: Any, ids: list[str], key: str) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.exists(key.format(job_id=i))
    return [bool(v) for v in pipe.execute()] if ids else []


def _open_in_outbox(client: Any, ids: list[str]) -> list[bool]:
    from worker.keys import OUTBOX_OPEN

    return [s is not None for s in client.zmscore(OUTBOX_OPEN, ids)] if ids else []


def _queued(client: Any) -> int:
    from worker import outbox, settings

    return sum(
        client.llen(settings.KEY_PREFIX + q + (f"{outbox.PRIORITY_SEPARATOR}{p}" if p else ""))
        for q in settings.QUEUES
        for p in outbox.PRIORITY_STEPS
    )


def open_work(client: Any, jobs: list[Job], queued: Callable[[], int] | None = None) -> dict[str, int]:
    """What is not finished: jobs without a result, open in the outbox, leased; messages queued
    (``queued``: the broker's count, default the Redis broker's lists)."""
    from worker.keys import JOB_LEASE

    ids = [j.id for j in jobs]
    return {
        "no result": sum(r is None for r in results_of(client, jobs)),
        "open in outbox": sum(_open_in_outbox(client, ids)),
        "leased": sum(_flags(client, ids, JOB_LEASE)),
        "queued messages": queued() if queued is not None else _queued(client),
    }


def settle(
    client: Any,
    jobs: list[Job],
    seconds: float,
    event: Callable[[str], None],
    tick: Callable[[], None],
    queued: Callable[[], int] | None = None,
) -> None:
    """Wait until every job has its result, none is open or leased and no message is queued.

    ``tick`` runs between looks (the sweeper and the worker supervisor keep working). The unacked
    table is not waited for: a message whose ack was lost on the Redis restart stays there, with
    its job finished, until kombu restores it after the 1,800 s visibility timeout (the audit counts them).
    """
    deadline = time.monotonic() + seconds
    while True:
        work = open_work(client, jobs, queued)
        if not any(work.values()):
            event("settled: every job has its result; none open in the outbox or leased; queues empty")
            return
        if time.monotonic() > deadline:
            break
        tick()
        time.sleep(SETTLE_POLL_SECONDS)
    event(f"did not settle: {work}")


def audit(
    report: Report, client: Any, sim: Any, jobs: list[Job], in_flight_slots: int, spool: Path, broker: Any = None
) -> None:
    """``broker``: the soak's ``SoakBroker`` (None: Redis)."""
    results = results_of(client, jobs)
    _audit_results(report, jobs, results)
    _audit_leftovers(report, client, jobs, results, broker)
    audit_costs(report, client, sim, jobs, results, in_flight_slots, spool)


def _audit_results(report: Report, jobs: list[Job], results: list[Any]) -> None:
    f, problems = report.figures, report.problems
    lost = [j.id for j, r in zip(jobs, results) if r is None]
    bad_shape = [j.id for j, r in zip(jobs, results) if r is not None and r.get("status") not in FINAL_STATUSES]
    crashed = [(j.id, r["error"]) for j, r in zip(jobs, results) if r is not None and _crashed(r)]
    outcome = Counter(r["status"] for r in results if r)
    errors = Counter(r["error"]["type"] for r in results if r and r.get("status") == "failed")
    f["jobs"] = len(jobs)
    f["succeeded / failed"] = f"{outcome['succeeded']} / {outcome['failed']}"
    if errors:
        f["failed by error type"] = dict(errors)
    f["lost (no final result)"] = len(lost)
    f["crashed (task crashed: a bug)"] = len(crashed)
    f["result key vs Celery result"] = "not checked: one store (ignore_result; the result key only)"
    if lost:
        problems.append(f"{len(lost)} jobs lost (no result key), e.g. {lost[:3]}")
    if crashed:
        problems.append(f"{len(crashed)} jobs crashed (failed result 'the task crashed'), e.g. {crashed[:3]}")
    if bad_shape:
        problems.append(f"{len(bad_shape)} results without status succeeded/failed, e.g. {bad_shape[:3]}")


def _crashed(result: dict[str, Any]) -> bool:
    return result.get("status") == "failed" and CRASH_MESSAGE in (result.get("error") or {}).get("message", "")


def _audit_leftovers(report: Report, client: Any, jobs: list[Job], results: list[Any], broker: Any = None) -> None:
    """Outbox records, leases, unacked entries and Celery metas left after settling.

    Celery metas are only counted: nothing reads them. Celery 5.7 still writes a RETRY meta for
    a task it cancels on a broker connection loss (``Request._announce_cancelled`` calls
    ``backend.mark_as_retry`` whatever the request's ``ignore_result``), so a few appear after
    the Redis restart.
    """
    from worker import settings
    from worker.keys import JOB_LEASE

    f, problems = report.figures, report.problems
    ids = [j.id for j in jobs]
    still_open = [i for i, o in zip(ids, _open_in_outbox(client, ids)) if o]
    leased = [i for i, held in zip(ids, _flags(client, ids, JOB_LEASE)) if held]
    stuck = sorted(set(still_open) | set(leased))
    finished = {j.id for j, r in zip(jobs, results) if r is not None}
    f["stuck (open in outbox or leased)"] = len(stuck)
    f["outbox records left open"] = len(still_open)
    f["leases left"] = len(leased)
    if stuck:
        problems.append(f"{len(stuck)} jobs stuck after settling (open in the outbox or leased), e.g. {stuck[:3]}")
    if finished & set(still_open):
        problems.append(f"{len(finished & set(still_open))} finished jobs still open in the outbox")
    if leased:
        problems.append(f"{len(leased)} job leases left behind")
    if broker is not None and broker.amqp:
        f["unacked left (job finished / open)"] = (
            "n/a on amqp (RabbitMQ requeues a message whose holder's connection closed)"
        )
        f["rabbitmq messages left"] = broker.messages_left()
    else:
        held = Counter("finished" if i in finished else "open" for i in _unacked_job_ids(client, set(ids)))
        f["unacked left (job finished / open)"] = (
            f"{held['finished']} / {held['open']} (finished: ack lost on "
            "the Redis restart; kombu restores it after the visibility timeout)"
        )
    metas = [m for m in mget_json(client, [f"{settings.KEY_PREFIX}celery-task-meta-{i}" for i in ids]) if m]
    f["celery result metas (not read)"] = f"{len(metas)} {dict(Counter(m.get('status') for m in metas))}" + (
        f", e.g. {[(m.get('task_id'), str(m.get('result'))[:80]) for m in metas[:2]]}" if metas else ""
    )


def _unacked_job_ids(client: Any, wanted: set[str]) -> list[str]:
    from worker import outbox, settings

    out = []
    for _, raw in client.hscan_iter(settings.KEY_PREFIX + outbox.UNACKED, count=MGET_CHUNK):
        try:
            job_id = str(json.loads(raw)[0]["headers"]["id"])
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        if job_id in wanted:
            out.append(job_id)
    return out
