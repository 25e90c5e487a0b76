"""The soak's faults: provider errors injected in the simulator, a worker SIGKILLed, Redis restarted.

- ~20 % of provider calls fail, across every provider and every fault kind (429 with a short and
  a long Retry-After, 500, 503, 529, a timeout, a malformed body, a stream broken mid-way);
- when a quarter of the jobs are done, the whole process group of a worker holding jobs is
  SIGKILLed and a replacement started;
- at half, Redis is shut down (a clean SHUTDOWN: the AOF is fsynced) and started again on the same
  port with the same AOF directory (on a cluster: one master, whose slots are unavailable meanwhile);
- with ``--broker amqp``, at three quarters every connection to the soak's RabbitMQ vhost is cut
  (``rabbitmqctl close_all_connections``): the workers' consumers and the producer reconnect, and
  RabbitMQ puts every unacked message back on its queue (the server itself is shared: never restarted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.soak.fleet import Fleet
from worker.keys import JOB_RESULT

FAULT_RATE = 0.20
# (kind, status, retry_after): each rule fires with the same probability, tried in order
FAULTS = [
    ("status", 429, 0.5),
    ("status", 429, 3.0),
    ("status", 500, None),
    ("status", 503, None),
    ("status", 529, None),
    ("timeout", 504, None),
    ("malformed", 200, None),
    ("midstream_error", 500, None),
]
SIMULATOR_LATENCY_MS = 30
KILL_AT = 0.25  # share of jobs done when a worker is SIGKILLed
REDIS_AT = 0.50  # share of jobs done when Redis restarts
CUT_AT = 0.75  # share of jobs done when the RabbitMQ connections are cut (amqp broker)
REDIS_DOWN_SECONDS = 2
KILL_WAIT_SECONDS = 5  # how long the SIGKILL waits for a worker holding an unfinished job
SLOW_CALL_MS = 1500  # provider latency while the SIGKILL waits (a real LLM call's): calls are in flight


def add_faults(sim: Any, rate: float) -> float:
    """Latency, and one rule per fault kind on all providers; returns each rule's probability."""
    sim.set_latency("*", SIMULATOR_LATENCY_MS)
    p = 1 - (1 - rate) ** (1 / len(FAULTS))
    for kind, status, retry_after in FAULTS:
        sim.add_fault(provider="*", kind=kind, status=status, probability=p, retry_after=retry_after)
    return p


class FaultSchedule:
    """Fires the SIGKILL at ``KILL_AT``, the Redis restart at ``REDIS_AT`` and, with ``cut`` (amqp
    broker), the cut of the broker connections at ``CUT_AT`` of the jobs done.

    A worker killed while idle would test nothing, and at 30 ms a call the workers are mostly idle.
    So from ``KILL_AT`` provider calls take ``SLOW_CALL_MS`` (as real LLM calls do), and the victim
    is the worker holding most unfinished jobs (running, reserved, or waiting for a retry
    countdown), as soon as one holds any (after ``KILL_WAIT_SECONDS``, whatever it holds); then
    calls are fast again. ``abandoned`` are its jobs that had no result when it died: with
    production's visibility timeout only the sweeper's restore brings them back.

    ``in_flight_slots`` counts the provider calls that may be billed but never reach the ledger:
    one per child of the killed worker (answered as it died), and one per child of every worker
    while Redis was away (the ledger could not be written, so the job ran again), and one per child
    of every worker at the connection cut (Celery cancels the acks-late tasks running then:
    ``worker_cancel_long_running_tasks_on_connection_loss``).
    """

    def __init__(
        self,
        n_jobs: int,
        fleet: Fleet,
        store: Any,
        sim: Any,
        client: Any,
        workers: int,
        concurrency: int,
        event: Callable[[str], None],
        cut: Callable[[], int] | None = None,
    ) -> None:
        self.n_jobs, self.fleet, self.store, self.sim, self.client = n_jobs, fleet, store, sim, client
        self.workers, self.concurrency, self.event, self.cut = workers, concurrency, event, cut
        self.stage = "kill"
        self.cuts = 0
        self.in_flight_slots = 0
        self.abandoned: set[str] = set()
        self._kill_by: float | None = None

    def step(self, done: int, enqueued: int) -> None:
        if self.stage == "kill" and done >= KILL_AT * self.n_jobs:
            self._maybe_kill(done, enqueued)
        elif self.stage == "redis" and done >= REDIS_AT * self.n_jobs:
            what = self.store.restart_text()
            self.event(f"{what} shutdown at {done} done, {enqueued} enqueued")
            self.store.restart(down_seconds=REDIS_DOWN_SECONDS)
            self.in_flight_slots += self.workers * self.concurrency
            self.event(f"{what} started again (same port, same AOF dir)")
            self.stage = "cut" if self.cut is not None else "done"
        elif self.stage == "cut" and done >= CUT_AT * self.n_jobs:
            closed = self.cut()
            self.cuts += 1
            self.in_flight_slots += len(self.fleet.live()) * self.concurrency
            self.event(
                f"RabbitMQ: cut all {closed} connections to the soak's vhost at {done} done, {enqueued} enqueued"
            )
            self.stage = "done"

    def _maybe_kill(self, done: int, enqueued: int) -> None:
        if self._kill_by is None:
            self._kill_by = time.monotonic() + KILL_WAIT_SECONDS
            self.sim.set_latency("*", SLOW_CALL_MS)
        holdings = [(self._unfinished(self.fleet.held(w)), w) for w in self.fleet.live()]
        if not holdings:
            return  # every worker exited by itself: supervise() restarts them
        unfinished, victim = max(holdings, key=lambda h: len(h[0]))
        if not unfinished and time.monotonic() < self._kill_by:
            return
        self.fleet.kill(victim)
        self.sim.set_latency("*", SIMULATOR_LATENCY_MS)
        self.in_flight_slots += self.concurrency
        self.abandoned = self._unfinished(unfinished)
        self.event(
            f"SIGKILL worker {victim.name} at {done} done, {enqueued} enqueued; it held "
            f"{len(self.abandoned)} jobs without a result: {sorted(self.abandoned)[:3]}"
        )
        self.stage = "redis"

    def _unfinished(self, job_ids: set[str]) -> set[str]:
        return {j for j in job_ids if not self.client.exists(JOB_RESULT.format(job_id=j))}
