"""The chaos soak: N jobs through real workers, one worker SIGKILLed, Redis restarted, then an audit.

What runs (all real, nothing faked):

- its own ``redis-server`` with AOF on (``appendonly yes``, ``appendfsync everysec``: what production
  should run; a clean SHUTDOWN fsyncs the AOF, so a restart loses nothing, and only a crash of the
  Redis host could lose the last second of writes);
- the provider simulator in its own process, failing ~20 % of calls (``tests/soak/faults.py``);
- two ``celery worker`` processes (prefork) with production's visibility settings
  (``tests/soak/stack.py``), supervised (``tests/soak/fleet.py``);
- the outbox sweeper in this process, restoring and re-sending (``tests/soak/sweeper.py``).

The producer API enqueues a mix of ``llm.complete`` (some streaming) and ``llm.classify`` jobs
(``tests/soak/scenario.py``), one of them recorded but never sent. At a quarter done a worker is
SIGKILLed, at half Redis restarts; then the run settles and is audited (``tests/soak/audit.py``).
This module is the run loop.

``state="cluster"`` (``--state cluster``, ``make soak BROKER=amqp STATE=cluster``) keeps the state on a
three-master Redis Cluster instead (``tests/soak/state.py``) and restarts one master at half.

``broker="amqp"`` (``--broker amqp``, ``make soak BROKER=amqp``) queues the jobs in RabbitMQ instead,
in a vhost of the run's own (``tests/soak/broker.py``); Redis keeps the state and still restarts.
Then no message is dropped on purpose (RabbitMQ confirms a publish or the producer raises), the
sweeper must re-send and restore nothing, a SIGKILLed worker's jobs come back through RabbitMQ's
redelivery, and at three quarters every connection to the vhost is cut. The audit is the same.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.soak.audit import audit, count_done, settle
from tests.soak.broker import REDIS, SoakBroker
from tests.soak.faults import FAULT_RATE, FAULTS, FaultSchedule, add_faults
from tests.soak.fleet import Fleet
from tests.soak.report import Report
from tests.soak.scenario import Enqueuer, describe, plan
from tests.soak.stack import SOAK_ENV, SimulatorProcess, soak_worker_env, spool_path, write_soak_config
from tests.soak.state import REDIS as STATE_REDIS
from tests.soak.state import SoakState
from tests.soak.sweeper import Sweeper

LOOP_SECONDS = 0.2
SETTLE_SECONDS = 60.0


def run_soak(
    n_jobs: int = 200,
    workers: int = 2,
    concurrency: int = 3,
    fault_rate: float = FAULT_RATE,
    rate: float = 25.0,
    timeout: float = 600,
    seed: int = 7,
    log: Callable[[str], None] = print,
    broker: str = REDIS,
    state: str = STATE_REDIS,
) -> Report:
    """Run the soak end to end and audit it. Never raises for a failed check: see ``Report.problems``.

    Raises:
        tests.soak.broker.BrokerMissing: ``broker="amqp"`` and RabbitMQ is not there (before anything starts).
        ValueError: ``state="cluster"`` with the Redis broker (a cluster cannot be Celery's broker).
    """
    queue = SoakBroker(broker)
    store = SoakState(state)
    if store.cluster and not queue.amqp:
        raise ValueError("--state cluster needs --broker amqp: a Redis Cluster cannot be Celery's broker")
    tmp = Path(tempfile.mkdtemp(prefix="llmorch-soak-"))
    store.start()  # exports REDIS_URL (and REDIS_CLUSTER) before worker.app is imported
    try:
        queue.start(store.url)  # exports CELERY_BROKER_URL for amqp, before worker.app is imported
    except BaseException:
        store.cleanup()
        raise
    sim = SimulatorProcess(tmp).start()
    report = Report(jobs=n_jobs)
    report.figures["broker"] = queue.describe()
    started = time.monotonic()

    def event(text: str) -> None:
        line = f"t+{time.monotonic() - started:6.1f}s {text}"
        report.events.append(line)
        log(line)

    fleet: Fleet | None = None
    try:
        from worker.app import celery_app

        config = write_soak_config(tmp / "config.yaml", sim.control, store.url, cluster=store.cluster)
        env = soak_worker_env(config, store.url, {**queue.worker_env(), **store.worker_env()})
        fleet = Fleet(env, tmp, concurrency, celery_app, event)
        _run(
            report,
            store,
            sim,
            fleet,
            tmp,
            n_jobs,
            workers,
            concurrency,
            fault_rate,
            rate,
            started + timeout,
            seed,
            event,
            queue,
        )
        report.figures["wall time (s)"] = round(time.monotonic() - started, 1)
    finally:
        if fleet is not None:
            fleet.stop()
        sim.stop()
        store.stop()
        queue.stop()
        report.figures["logs"] = str(tmp)
    if report.ok:
        store.cleanup()
    return report


def _run(
    report: Report,
    store: SoakState,
    sim: SimulatorProcess,
    fleet: Fleet,
    tmp: Path,
    n_jobs: int,
    workers: int,
    concurrency: int,
    fault_rate: float,
    rate: float,
    deadline: float,
    seed: int,
    event: Callable[[str], None],
    queue: SoakBroker,
) -> None:
    from llm_orchestrator.redis_client import unreachable_errors
    from tasks.jobs import restore_unacked
    from worker import producer

    fleet.start(workers)
    event(
        f"{workers} workers x {concurrency} children up; state {store.describe()}; "
        f"broker {queue.describe()}; worker settings {SOAK_ENV}"
    )
    p = add_faults(sim.control, fault_rate)
    event(f"faults: {len(FAULTS)} rules x p={p:.4f} (~{fault_rate:.0%} of calls fail)")

    client = store.client()
    sweeper = Sweeper(client, producer.publish, restore_unacked, broker=queue.kind)
    planned = plan(n_jobs, seed)
    enqueuer = Enqueuer(producer, planned, rate, f"soak-{os.getpid()}-{int(time.time())}", drop=not queue.amqp)
    enqueuer.start()
    event(f"enqueueing {n_jobs} jobs at {rate:g}/s: {describe(planned)}")
    faults = FaultSchedule(
        n_jobs,
        fleet,
        store,
        sim.control,
        client,
        workers,
        concurrency,
        event,
        cut=queue.cut_connections if queue.amqp else None,
    )

    def tick() -> None:
        sweeper.maybe_sweep(event)
        fleet.supervise()

    done = 0
    while time.monotonic() < deadline:
        jobs = list(enqueuer.jobs)
        try:
            done = count_done(client, jobs)
        except unreachable_errors():
            pass
        if done >= n_jobs:
            break
        faults.step(done, len(jobs))
        tick()
        time.sleep(LOOP_SECONDS)
    fleet.join_replacement()
    enqueuer.join(timeout=1)
    jobs = list(enqueuer.jobs)
    event(f"{done}/{n_jobs} jobs have a result")
    settle(
        client,
        jobs,
        min(SETTLE_SECONDS, max(0.0, deadline - time.monotonic())),
        event,
        tick,
        queued=lambda: queue.queued(fleet.app, client),
    )

    f = report.figures
    f["enqueue retries (Redis away)"] = f"{enqueuer.retries} {dict(enqueuer.errors)}"
    f["workers that exited by themselves"] = f"{len(fleet.exits)} (restarted) {fleet.exits}"
    f["outbox sweeps / restored / re-sent"] = sweeper.summary()
    if queue.amqp:
        _amqp_figures(report, faults, sweeper, client)
    else:
        _redis_figures(report, faults, sweeper, enqueuer)
    if faults.stage != "done":
        report.problems.append(f"the faults did not all happen (stopped before stage {faults.stage!r})")
    if len(jobs) < n_jobs:
        report.problems.append(f"only {len(jobs)} of {n_jobs} jobs could be enqueued")
    audit(report, client, sim, jobs, faults.in_flight_slots, spool_path(tmp), queue)


def _redis_figures(report: Report, faults: FaultSchedule, sweeper: Sweeper, enqueuer: Enqueuer) -> None:
    """Redis broker: the sweeper restored the killed worker's jobs and re-sent the dropped message."""
    f = report.figures
    restored = set(sweeper.restored)
    f["killed worker's unfinished jobs"] = (
        f"{len(faults.abandoned)} (restored by the sweeper: {len(faults.abandoned & restored)})"
    )
    f["restored: other jobs"] = (
        f"{len(restored - faults.abandoned)} (dropped by a worker on the Redis restart, "
        "or held by a live worker past the grace)"
    )
    dropped = enqueuer.dropped_on_purpose
    f["message dropped on purpose"] = f"{dropped} ({'re-sent' if dropped in sweeper.republished else 'NOT re-sent'})"
    if dropped and dropped not in sweeper.republished:
        report.problems.append(f"the outbox sweeper never re-sent job {dropped}, whose message was dropped on purpose")


def _amqp_figures(report: Report, faults: FaultSchedule, sweeper: Sweeper, client: Any) -> None:
    """RabbitMQ: the killed worker's jobs came back by redelivery; the sweeper re-sent and restored nothing."""
    from worker.keys import JOB_RESULT

    f = report.figures
    back = sum(1 for j in faults.abandoned if client.exists(JOB_RESULT.format(job_id=j)))
    f["killed worker's unfinished jobs"] = (
        f"{len(faults.abandoned)} (redelivered by RabbitMQ, now with a result: {back})"
    )
    f["broker connection cuts"] = faults.cuts
    f["message dropped on purpose"] = "none (amqp: a publish is confirmed or the producer raises)"
    if sweeper.republished or sweeper.restored:
        report.problems.append(
            f"on amqp the outbox sweeper re-sent {len(sweeper.republished)} and restored "
            f"{len(sweeper.restored)} jobs (must be 0: RabbitMQ keeps its messages), e.g. "
            f"{(sweeper.republished + sweeper.restored)[:3]}"
        )
    if faults.cuts != 1:
        report.problems.append(f"the RabbitMQ connections were cut {faults.cuts} times (expected once)")
