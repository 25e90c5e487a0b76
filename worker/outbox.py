"""The outbox: every job the producer sent, until the job has a final result; the sweeper re-sends lost ones.

Why: Celery's Redis transport takes a message off the queue with ``BRPOP`` and only then records
it as unacked. If Redis shuts down (or the connection breaks) between the two, or the ``BRPOP``
reply is lost with the connection, the message is gone: no worker has it, no queue holds it, and
the job would never get a result. Acks-late and the visibility timeout cannot help, since the
message never reached the unacked table.

How: the producer records ``job_id → (task, payload, queue)`` right after publishing; storing a
job's result removes the record in the same transaction. ``sweep()`` (the beat task
``jobs.sweep_outbox``) looks at records older than ``older_than`` seconds with no result and no
lease, and at the messages in the queues and the unacked table. A job found nowhere twice, at
least ``confirm_after`` seconds apart, is published again under the same job id. A second copy
is harmless: the worker's lease and result check run a job once.

A job whose message sits in the unacked table while nobody works on it is taken back too: its
holder was SIGKILLed, or lost its connection and with it the chance to ack or requeue (Celery:
"cannot be acknowledged after a connection loss since late acknowledgement is enabled"). kombu
would only restore it after the visibility timeout (1800 s). A message is *held* while its job
has a lease, or until ``hold_grace`` seconds after it was delivered (or after its countdown/ETA
ends, for a retry waiting in a worker's memory): that covers a worker's wait between receiving a
message and starting it. Past that, with no lease and no result, the sweep puts it back on its
queue at once (kombu's own ``restore_by_tag``). With the job lease as the grace (hard time limit
+ 5 s) a dead holder's job runs again within about two leases of its delivery. Wrongly restoring
a message a live worker still holds is harmless: the lease and the result marker run a job once.

Per broker (``broker``): all of the above is for kombu's Redis transport (``redis``; the queues
may live in another Redis than the outbox: ``broker_client``). With RabbitMQ (``amqp``) the
broker keeps every message it confirmed until it is acked (durable quorum queues; an unacked
message goes back to its queue as soon as its holder's channel closes), and a publish it did not
confirm raises in the producer, which then records nothing. The sweep cannot see RabbitMQ's
queues, so there it never re-publishes and never restores: a backlog older than the stale window
would otherwise be sent again on every sweep. It only closes the records of finished jobs and
reports the open ones (:func:`account`).

Cost: the scan reads every queued message (only when some old record is unaccounted for), so
it stops above ``max_scan`` messages and says so in the log. The record holds the job's payload
(tenant text) only while the job is open, next to the broker message that holds the same.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_MSG, OUTBOX_OPEN, OUTBOX_SUSPECT
from worker.settings import AMQP, REDIS

log = logging.getLogger(__name__)
BROKER_RESENDS = (
    "outbox sweep on an amqp broker: re-sending is the broker's job (durable quorum queues, "
    "publisher confirms, redelivery of unacked messages); the sweep only closes finished jobs' "
    "records and reports open ones"
)
_said: set[str] = set()  # notes logged once per process
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: queue keys per priority step
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED = "unacked"  # kombu's Redis transport: HASH delivery tag → JSON [message, exchange, routing key]
UNACKED_INDEX = "unacked_index"  # ZSET delivery tag → when it was delivered (unix time)
SCAN_CHUNK = 1000


@dataclass(frozen=True)
class Held:
    """A job's message in the unacked table: its delivery tag, when it was delivered, its ETA."""

    tag: str
    delivered_at: float | None
    eta: float | None

    def held_until(self, grace: float) -> float:
        return max(self.delivered_at or 0.0, self.eta or 0.0) + grace


# KEYS: msg hash, open zset, the job's result key. ARGV: job id, message JSON, time.
# A worker may finish the job before the producer gets here: then there is nothing to keep open.
RECORD = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


def record(
    pipe: Any,
    job_id: str,
    task: str,
    payload: dict[str, Any],
    queue: str | None,
    summary: str,
    now: float | None = None,
    cluster: bool = False,
) -> None:
    """Add the job to the outbox unless it already has a result (on the caller's pipeline).

    On a Redis Cluster the result key and the outbox are in different slots, so the record is
    written without that check; a record of a job that had already finished is closed by the next
    sweep, which finds its result (never re-sent).
    """
    message = json.dumps({"task": task, "payload": payload, "queue": queue, "summary": summary})
    sent = time.time() if now is None else now
    if cluster:
        pipe.hset(OUTBOX_MSG, job_id, message)
        pipe.zadd(OUTBOX_OPEN, {job_id: sent})
        return
    pipe.eval(RECORD, 3, OUTBOX_MSG, OUTBOX_OPEN, JOB_RESULT.format(job_id=job_id), job_id, message, sent)


def close(pipe: Any, job_id: str) -> None:
    """The job has its final result: forget it (on the pipeline that stores the result)."""
    pipe.zrem(OUTBOX_OPEN, job_id)
    pipe.hdel(OUTBOX_MSG, job_id)
    pipe.zrem(OUTBOX_SUSPECT, job_id)


@dataclass
class SweepReport:
    """What one sweep saw (logged by the beat task; the soak prints it)."""

    open: int = 0
    old: int = 0
    finished: int = 0  # had a result; record left behind (closed now)
    running: int = 0  # lease held
    queued: int = 0  # found in a queue or the unacked table
    suspect: int = 0  # found nowhere for the first time
    with_broker: int = 0  # amqp: old, no result, no lease: RabbitMQ holds it (queued, delayed or unacked)
    republished: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # unacked, holder gone: back on their queue
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "republished": len(self.republished), "restored": len(self.restored)}


def sweep(
    client: Any,
    publish: Callable[[str, str, dict[str, Any], str | None, str], None],
    queues: Iterable[str],
    prefix: str,
    older_than: float,
    confirm_after: float,
    max_scan: int = 200_000,
    batch: int = 1000,
    now: float | None = None,
    restore: Callable[[str], None] | None = None,
    hold_grace: float | None = None,
    broker: str = REDIS,
    broker_client: Any | None = None,
) -> SweepReport:
    """Re-publish jobs that are open, old, and in no queue, no unacked entry, no lease (twice);
    put back on their queue the unacked messages of jobs whose holder is gone (``restore`` with the
    delivery tag, once ``hold_grace`` has passed; see the module docstring).

    Args:
        broker: ``"redis"`` (the above) or ``"amqp"``: only :func:`account` (never re-publish or restore).
        broker_client: a client on the broker's Redis when it is not ``client``'s (the outbox's).
    """
    if broker == AMQP:
        return account(client, older_than, batch, now)
    if broker != REDIS:
        raise ValueError(f"unknown broker kind {broker!r}")
    queues_at = client if broker_client is None else broker_client
    now = time.time() if now is None else now
    report, old = _old_open(client, older_than, batch, now)
    unknown = _unaccounted(client, old, report)
    if not unknown:
        return report
    keys = [prefix + q + (f"{PRIORITY_SEPARATOR}{p}" if p else "") for q in queues for p in PRIORITY_STEPS]
    depth = sum(queues_at.llen(k) for k in keys)
    if depth > max_scan:
        report.skipped = f"{depth} queued messages > max_scan {max_scan}"
        log.warning("outbox sweep skipped: %s; %d old jobs unaccounted for", report.skipped, len(unknown))
        return report
    queued = _ids_in_queues(queues_at, keys)
    unacked = _unacked(queues_at, prefix, set(unknown) - queued)
    present = queued | set(unacked)
    missing = [j for j in unknown if j not in present]
    report.queued = len(unknown) - len(missing)
    if present & set(unknown):
        client.zrem(OUTBOX_SUSPECT, *(present & set(unknown)))
    if restore is not None and hold_grace is not None:
        _restore_abandoned(client, restore, unacked, hold_grace, now, report)
    # Re-check after the scan: a job may have finished or started while we read the queues.
    missing = _unaccounted(client, missing, report)
    first_seen = dict(zip(missing, client.zmscore(OUTBOX_SUSPECT, missing))) if missing else {}
    for job_id in missing:
        seen = first_seen[job_id]
        if seen is None:
            client.zadd(OUTBOX_SUSPECT, {job_id: now})
            report.suspect += 1
        elif now - seen >= confirm_after:
            _republish(client, publish, job_id)
            report.republished.append(job_id)
    if report.republished:
        log.warning(
            "outbox sweep: %d jobs were in no queue and had no result; published again: %s",
            len(report.republished),
            ", ".join(report.republished[:10]),
        )
    return report


def account(client: Any, older_than: float, batch: int = 1000, now: float | None = None) -> SweepReport:
    """The sweep for a broker that keeps its own messages (RabbitMQ): close the records of finished
    jobs, count running ones and the ones the broker holds; never re-publish, never restore."""
    if AMQP not in _said:
        _said.add(AMQP)
        log.info(BROKER_RESENDS)
    now = time.time() if now is None else now
    report, old = _old_open(client, older_than, batch, now)
    report.with_broker = len(_unaccounted(client, old, report))
    return report


def _old_open(client: Any, older_than: float, batch: int, now: float) -> tuple[SweepReport, list[str]]:
    """A report counting the open records, and the ids of those open longer than ``older_than``."""
    report = SweepReport(open=client.zcard(OUTBOX_OPEN))
    old = [i.decode() for i in client.zrangebyscore(OUTBOX_OPEN, "-inf", now - older_than, start=0, num=batch)]
    report.old = len(old)
    return report, old


def _restore_abandoned(
    client: Any, restore: Callable[[str], None], unacked: dict[str, Held], grace: float, now: float, report: SweepReport
) -> None:
    """Unacked messages held past their grace whose job still has no lease and no result: restore."""
    overdue = [j for j, held in unacked.items() if now >= held.held_until(grace)]
    for job_id in _unaccounted(client, overdue, SweepReport()):  # re-check: started or finished meanwhile?
        restore(unacked[job_id].tag)
        report.restored.append(job_id)
    if report.restored:
        log.warning(
            "outbox sweep: %d jobs were unacked with no lease for over %.0f s (their holder is gone); "
            "put back on their queues: %s",
            len(report.restored),
            grace,
            ", ".join(report.restored[:10]),
        )


def _unaccounted(client: Any, job_ids: list[str], report: SweepReport) -> list[str]:
    """Of ``job_ids``: those with no result (closing the ones that have one) and no lease."""
    if not job_ids:
        return []
    pipe = client.pipeline(transaction=False)
    for j in job_ids:
        pipe.exists(JOB_RESULT.format(job_id=j))
        pipe.exists(JOB_LEASE.format(job_id=j))
    flags = pipe.execute()
    out, finished = [], client.pipeline()
    for j, has_result, has_lease in zip(job_ids, flags[::2], flags[1::2]):
        if has_result:
            report.finished += 1
            close(finished, j)
        elif has_lease:
            report.running += 1
        else:
            out.append(j)
    finished.execute()
    return out


def _republish(client: Any, publish: Callable[[str, str, dict[str, Any], str | None, str], None], job_id: str) -> None:
    raw = client.hget(OUTBOX_MSG, job_id)
    if raw is None:  # closed meanwhile
        return
    msg = json.loads(raw)
    publish(job_id, msg["task"], msg["payload"], msg["queue"], msg["summary"])
    client.zrem(OUTBOX_SUSPECT, job_id)


def _ids_in_queues(client: Any, keys: list[str]) -> set[str]:
    ids: set[str] = set()
    for key in keys:
        start = 0
        while chunk := client.lrange(key, start, start + SCAN_CHUNK - 1):
            ids.update(_task_id(raw) for raw in chunk)
            start += SCAN_CHUNK
    return ids


def _unacked(client: Any, prefix: str, wanted: set[str]) -> dict[str, Held]:
    """The unacked entries of the ``wanted`` jobs: job id → where and since when it is held."""
    found: dict[str, tuple[str, float | None]] = {}
    for tag, raw in client.hscan_iter(prefix + UNACKED, count=SCAN_CHUNK):
        try:
            message = json.loads(raw)[0]
        except (ValueError, TypeError, IndexError):
            continue
        job_id = _task_id(message)
        if job_id in wanted:
            found[job_id] = (tag.decode() if isinstance(tag, bytes) else tag, _eta(message))
    if not found:
        return {}
    delivered = client.zmscore(prefix + UNACKED_INDEX, [tag for tag, _ in found.values()])
    return {j: Held(tag, when, eta) for (j, (tag, eta)), when in zip(found.items(), delivered)}


def _eta(message: Any) -> float | None:
    """A countdown/ETA message's due time (unix seconds), from its ``eta`` header."""
    try:
        eta = message["headers"].get("eta")
        return datetime.fromisoformat(eta).timestamp() if eta else None
    except (TypeError, KeyError, AttributeError, ValueError):
        return None


def _task_id(message: Any) -> str:
    try:
        msg = json.loads(message) if isinstance(message, (bytes, str)) else message
        return str(msg["headers"]["id"])
    except (ValueError, TypeError, KeyError):
        return ""
