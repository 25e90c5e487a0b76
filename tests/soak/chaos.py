"""The chaos soak: N jobs through real workers, one worker SIGKILLed, Redis restarted, then an audit.

What runs (all real, nothing faked):

- its own ``redis-server`` with AOF on (``appendonly yes``, ``appendfsync everysec``: what production
  should run; a clean SHUTDOWN fsyncs the AOF, so a restart loses nothing, and only a crash of the
  Redis host could lose the last second of writes);
- the provider simulator in its own process, with ~20 % of calls failing across every provider and
  every fault kind (429 with Retry-After short and long, 500, 503, 529, timeout, malformed body,
  a stream broken mid-way);
- two ``celery worker`` processes (prefork).

The producer API enqueues a mix of ``llm.complete`` (some streaming) and ``llm.classify`` jobs.
When a quarter of the jobs are done one worker is SIGKILLed (whole process group) and a
replacement started; at about 55 % Redis is shut down and started again on the same port with
the same AOF directory. Afterwards the audit checks, and prints:

- every job has exactly one final result dict (``succeeded``/``failed``), the same in the job's
  result key and in Celery's result (no job lost, none left PENDING/STARTED/RETRY);
- no (job_id, attempt) has two ledger rows;
- ledger total == sum of the jobs' result costs == what the simulator billed for answered calls
  (priced per call with the library's price table). The only billed calls allowed to be missing
  from the ledger are ones answered while their worker was being SIGKILLed (at most one per child
  of the killed worker), or answered while Redis was away (the ledger could not be written, so the job ran
  again once Redis returned: at most one per child): the provider charged for an answer nobody kept.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
FAULT_RATE = 0.20
# (kind, status, retry_after): each rule fires with the same probability, tried in order
FAULTS = [("status", 429, 0.5), ("status", 429, 3.0), ("status", 500, None), ("status", 503, None),
          ("status", 529, None), ("timeout", 504, None), ("malformed", 200, None), ("midstream_error", 500, None)]
PROVIDERS = ("openai", "anthropic", "gemini")
# Worker settings for the soak, through the LLM_ORCH_* overrides (production defaults unchanged).
# Kept: job lease (hard limit + 5 s = 15 s) < visibility timeout (20 s).
SOAK_ENV = {"LLM_ORCH_VISIBILITY_TIMEOUT": "20", "LLM_ORCH_RESTORE_INTERVAL": "1",
            "LLM_ORCH_SOFT_TIME_LIMIT": "8", "LLM_ORCH_TIME_LIMIT": "10"}
CLASSIFY_TEXTS = ["The app crashes every time I open settings", "hmm, interesting week",
                  "We would like to add 200 more seats next quarter", "Please add dark mode to the dashboard",
                  "not sure what to make of the new release", "Your pricing is too expensive, we are leaving"]
TERMINAL = ("SUCCESS", "FAILURE", "REVOKED")


@dataclass
class Job:
    id: str
    kind: str  # complete | stream | classify
    provider: str | None


@dataclass
class Report:
    """Figures and problems of one soak run (``problems`` empty = pass)."""

    jobs: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = ["chaos soak: " + ("PASS" if self.ok else "FAIL")]
        lines += [f"  {k:<34} {v}" for k, v in self.figures.items()]
        lines += ["  events:"] + [f"    {e}" for e in self.events]
        if self.problems:
            lines += ["  problems:"] + [f"    - {p}" for p in self.problems[:40]]
        return "\n".join(lines)


class SimulatorProcess:
    """``python -m llm_orchestrator.simulator`` on a free port, controlled over HTTP."""

    def __init__(self, log_dir: Path) -> None:
        from llm_orchestrator.simulator import Simulator
        from tests.redis_server import free_port

        self.port = free_port()
        self.control = Simulator(port=self.port)  # not started here: used for base_url() and /_sim calls
        self.log_path = log_dir / "simulator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SimulatorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([sys.executable, "-m", "llm_orchestrator.simulator", "--port", str(self.port)],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.control.stats()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("simulator did not start; log:\n" + self.log_path.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def write_soak_config(path: Path, sim: Any, redis_url: str) -> Path:
    from tests.conftest import MODELS, make_config

    cfg = make_config(sim, "openai")
    for p in PROVIDERS:
        cfg["providers"][p]["default_model"] = MODELS[p][0]
        cfg["providers"][p]["timeout"] = {"connect": 2, "read": 2}  # a 'timeout' fault costs 2 s, not 5
    cfg["redis"] = {"url": redis_url}
    cfg["retry"] = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05, "deadline": 7, "max_inline_wait": 1}
    path.write_text(yaml.safe_dump(cfg))
    return path


def add_faults(sim: Any, rate: float) -> float:
    """One rule per fault kind, all providers; returns each rule's probability."""
    p = 1 - (1 - rate) ** (1 / len(FAULTS))
    for kind, status, retry_after in FAULTS:
        sim.add_fault(provider="*", kind=kind, status=status, probability=p, retry_after=retry_after)
    return p


def plan(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, provider, text) per job: ~45 % completions, ~20 % streaming completions, ~35 % classifications."""
    out = []
    for i in range(n):
        roll, provider = rng.random(), PROVIDERS[i % 3]
        if roll < 0.45:
            out.append(("complete", provider, f"soak question {i}"))
        elif roll < 0.65:
            out.append(("stream", provider, f"soak stream {i}"))
        else:
            out.append(("classify", provider, f"{CLASSIFY_TEXTS[i % len(CLASSIFY_TEXTS)]} (#{i})"))
    return out


class Enqueuer(threading.Thread):
    """Sends the planned jobs through the producer API at ``rate`` jobs/s, riding out Redis outages.

    A send that fails (Redis away) is retried with the same idempotency key, so a retry can never
    become a second job. Job ``lose_at`` is recorded in the outbox but its message is never sent:
    what the broker does when Redis stops right after a worker's BRPOP (the sweeper must find it).
    """

    def __init__(self, producer: Any, planned: list[tuple[str, str, str]], rate: float, run_id: str) -> None:
        super().__init__(name="soak-enqueuer", daemon=True)
        self.producer, self.planned, self.rate, self.run_id = producer, planned, rate, run_id
        self.jobs: list[Job] = []
        self.lose_at = len(planned) * 2 // 5
        self.lost_on_purpose: str | None = None
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        t0 = time.monotonic()
        for i, (kind, provider, text) in enumerate(self.planned):
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while True:
                try:
                    self.jobs.append(Job(self._send(i, kind, provider, text).id, kind, provider))
                    if i == self.lose_at:
                        self.lost_on_purpose = self.jobs[-1].id
                    break
                except Exception as e:  # noqa: BLE001 - any broker error while Redis is away: retry
                    self.retries += 1
                    self.errors[type(e).__name__] += 1
                    time.sleep(0.5)

    def _send(self, i: int, kind: str, provider: str, text: str) -> Any:
        if i == self.lose_at:
            real, self.producer.publish = self.producer.publish, lambda *_: None
            try:
                return self._submit(i, kind, provider, text)
            finally:
                self.producer.publish = real
        return self._submit(i, kind, provider, text)

    def _submit(self, i: int, kind: str, provider: str, text: str) -> Any:
        key = f"{self.run_id}-{i}"
        if kind == "classify":
            return self.producer.submit_classification(text, signal_id=f"s-{i}", provider=provider, tenant="soak",
                                                       idempotency_key=key)
        return self.producer.submit_completion(text, provider=provider, tenant="soak", max_tokens=64,
                                               stream=kind == "stream", idempotency_key=key)


class Supervisor:
    """Restarts a worker that exits by itself, as systemd, Kubernetes or compose's restart policy would.

    Celery/kombu 5.7 can exit the worker on a Redis connection loss (``AttributeError: 'NoneType'
    object has no attribute 'hostname'`` while closing the channel); production runs workers under
    a supervisor, so the soak does too, and reports each such exit.
    """

    def __init__(self, fleet: list[Any], env: dict[str, str], tmp: Path, concurrency: int, app: Any,
                 event: Any) -> None:
        self.fleet, self.env, self.tmp, self.concurrency, self.app, self.event = fleet, env, tmp, concurrency, app, event
        self.killed_on_purpose: set[str] = set()
        self.restarts: list[str] = []

    def check(self) -> None:
        from tests.worker_fixtures import WorkerProcess

        for w in list(self.fleet):
            if w.name in self.killed_on_purpose or w.proc is None or w.proc.poll() is None:
                continue
            self.killed_on_purpose.add(w.name)  # handled: never restarted twice
            self.restarts.append(w.name)
            fresh = WorkerProcess(self.env, self.tmp, concurrency=self.concurrency)
            self.fleet.append(fresh)
            fresh.launch()
            self.event(f"worker {w.name} exited by itself (exit {w.proc.returncode}; see its log); "
                       f"restarted as {fresh.name}")


class Sweeper:
    """Plays beat's ``jobs.sweep_outbox`` (worker/outbox.py) on a short period: re-sends a job the broker lost."""

    PERIOD, OLDER_THAN = 5.0, 30.0

    def __init__(self, client: Any, publish: Any) -> None:
        self.client, self.publish = client, publish
        self.next_at = time.monotonic() + self.PERIOD
        self.sweeps = self.republished = 0

    def maybe_sweep(self, event: Any) -> None:
        import redis

        from worker import outbox, settings

        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.PERIOD
        try:
            report = outbox.sweep(self.client, self.publish, settings.QUEUES, settings.KEY_PREFIX,
                                  older_than=self.OLDER_THAN, confirm_after=self.PERIOD - 1)
        except (redis.ConnectionError, redis.TimeoutError):
            return
        self.sweeps += 1
        if report.republished:
            self.republished += len(report.republished)
            event(f"outbox sweep re-sent {len(report.republished)} jobs the broker lost: {report.republished[:3]}")


def _mget_json(client: Any, keys: list[str]) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(keys), 1000):
        out += [None if v is None else json.loads(v) for v in client.mget(keys[i:i + 1000])]
    return out


def count_done(client: Any, jobs: list[Job]) -> int:
    from worker.keys import JOB_RESULT

    keys = [JOB_RESULT.format(job_id=j.id) for j in jobs]
    return sum(1 for i in range(0, len(keys), 1000) for v in client.mget(keys[i:i + 1000]) if v is not None)


def run_soak(n_jobs: int = 200, workers: int = 2, concurrency: int = 3, fault_rate: float = FAULT_RATE,
             rate: float = 25.0, timeout: float = 600, seed: int = 7, log: Any = print) -> Report:
    """Run the soak end to end and audit it. Never raises for a failed check: see ``Report.problems``."""
    from tests.redis_server import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="llmorch-soak-"))
    redis_server = RedisServer(appendonly=True, appendfsync="everysec").start()
    os.environ["REDIS_URL"] = redis_server.url  # before worker.app is imported: the producer's broker
    sim = SimulatorProcess(tmp).start()
    fleet: list[Any] = []
    report = Report(jobs=n_jobs)
    try:
        _run(report, redis_server, sim, fleet, tmp, n_jobs, workers, concurrency, fault_rate, rate, timeout, seed,
             log)
    finally:
        for w in fleet:
            w.stop()
        sim.stop()
        redis_server.stop()
        report.figures["logs"] = str(tmp)
    if report.ok:
        redis_server.cleanup()
    return report


def _run(report: Report, redis_server: Any, sim: SimulatorProcess, fleet: list[Any], tmp: Path, n_jobs: int,
         workers: int, concurrency: int, fault_rate: float, rate: float, timeout: float, seed: int,
         log: Any) -> None:
    import redis

    from tests.worker_fixtures import WorkerProcess, worker_env
    from worker import producer
    from worker.app import celery_app

    started = time.monotonic()

    def event(text: str) -> None:
        line = f"t+{time.monotonic() - started:6.1f}s {text}"
        report.events.append(line)
        log(line)

    config = write_soak_config(tmp / "config.yaml", sim.control, redis_server.url)
    env = worker_env(config, redis_server.url)
    env.update(SOAK_ENV)
    fleet += [WorkerProcess(env, tmp, concurrency=concurrency) for _ in range(workers)]
    threads = [threading.Thread(target=w.start, args=(celery_app,)) for w in fleet]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    event(f"{workers} workers x {concurrency} children up; redis {redis_server.url} (AOF everysec)")
    sim.control.set_latency("*", 30)  # calls in flight when the worker is killed
    p = add_faults(sim.control, fault_rate)
    event(f"faults: {len(FAULTS)} rules x p={p:.4f} (~{fault_rate:.0%} of calls fail)")

    planned = plan(n_jobs, random.Random(seed))
    sweeper = Sweeper(redis.Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=5),
                      producer.publish)
    enqueuer = Enqueuer(producer, planned, rate, f"soak-{os.getpid()}-{int(time.time())}")
    enqueuer.start()
    event(f"enqueueing {n_jobs} jobs at {rate:g}/s: "
          + ", ".join(f"{k}={v}" for k, v in sorted(Counter(p[0] for p in planned).items())))

    client = redis.Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=5)
    killed_slots = rerun_slots = 0
    done = 0
    deadline = started + timeout
    stage = "kill"
    replacement: threading.Thread | None = None
    supervisor = Supervisor(fleet, env, tmp, concurrency, celery_app, event)
    while time.monotonic() < deadline:
        jobs = list(enqueuer.jobs)
        try:
            done = count_done(client, jobs)
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        if stage == "kill" and done >= 0.25 * n_jobs:
            victim = fleet[0]
            supervisor.killed_on_purpose.add(victim.name)
            victim.kill()  # SIGKILL the process group: the main process and its children
            killed_slots = concurrency
            event(f"SIGKILL worker {victim.name} at {done} done, {len(jobs)} enqueued")
            fresh = WorkerProcess(env, tmp, concurrency=concurrency)
            fleet.append(fresh)
            replacement = threading.Thread(target=fresh.start, args=(celery_app,))
            replacement.start()
            stage = "redis"
        elif stage == "redis" and done >= 0.5 * n_jobs:
            event(f"redis shutdown at {done} done, {len(jobs)} enqueued")
            redis_server.restart(down_seconds=2)
            rerun_slots = workers * concurrency  # a call answered while Redis was away is run again
            event("redis started again (same port, same AOF dir)")
            stage = "drain"
        elif done >= n_jobs:
            break
        sweeper.maybe_sweep(event)
        supervisor.check()
        time.sleep(0.2)
    if replacement is not None:
        replacement.join()
        event(f"replacement worker {fresh.name} was up")
    enqueuer.join(timeout=1)
    jobs = enqueuer.jobs
    report.figures["enqueue retries (Redis away)"] = f"{enqueuer.retries} {dict(enqueuer.errors)}"
    report.figures["workers that exited by themselves"] = f"{len(supervisor.restarts)} (restarted) {supervisor.restarts}"
    report.figures["outbox sweeps / jobs re-sent"] = f"{sweeper.sweeps} / {sweeper.republished} " \
                                                     f"(1 message dropped on purpose: {enqueuer.lost_on_purpose})"
    if enqueuer.lost_on_purpose and not sweeper.republished:
        report.problems.append(f"the outbox sweeper never re-sent job {enqueuer.lost_on_purpose}, whose message was "
                               "dropped on purpose")
    if len(jobs) < n_jobs:
        report.problems.append(f"only {len(jobs)} of {n_jobs} jobs could be enqueued")
    event(f"{done}/{n_jobs} jobs have a result")
    settle(client, jobs, min(60.0, max(0.0, deadline - time.monotonic())), event, tick=supervisor.check)
    report.figures["wall time (s)"] = round(time.monotonic() - started, 1)
    audit(report, client, sim, jobs, killed_slots + rerun_slots)


def settle(client: Any, jobs: list[Job], seconds: float, event: Any, tick: Any = lambda: None) -> None:
    """Wait until no message is queued or unacked and no job is mid-state (twins finish too)."""
    deadline = time.monotonic() + seconds
    busy, states = -1, Counter()
    while True:
        busy = sum(client.llen(f"llmorch:{q}") for q in ("llm.interactive", "llm.batch", "maintenance"))
        busy += client.hlen("llmorch:unacked")
        states = Counter(m.get("status") if m else "PENDING" for m in _mget_json(client, _meta_keys(jobs)))
        if not busy and set(states) <= set(TERMINAL):
            event("settled: queues and unacked empty, every Celery state terminal")
            return
        if time.monotonic() > deadline:
            break
        tick()
        time.sleep(1)
    event(f"did not settle: queued+unacked={busy}, states={dict(states)}")


def _meta_keys(jobs: list[Job]) -> list[str]:
    return [f"llmorch:celery-task-meta-{j.id}" for j in jobs]


def audit(report: Report, client: Any, sim: SimulatorProcess, jobs: list[Job], in_flight_slots: int) -> None:
    from llm_orchestrator.config.manager import CostTrackingConfig
    from llm_orchestrator.cost_tracker import CostTracker
    from llm_orchestrator.pricing import from_micros, load_prices, to_micros
    from llm_orchestrator.providers.base import Usage
    from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_OPEN

    f, problems = report.figures, report.problems
    results = _mget_json(client, [JOB_RESULT.format(job_id=j.id) for j in jobs])
    metas = _mget_json(client, _meta_keys(jobs))
    lost = [j.id for j, r in zip(jobs, results) if r is None]
    states = Counter(m.get("status") if m else "PENDING" for m in metas)
    stuck = [j.id for j, m in zip(jobs, metas) if not m or m.get("status") not in TERMINAL]
    mismatch = [j.id for j, r, m in zip(jobs, results, metas)
                if r is not None and m and m.get("status") == "SUCCESS" and m.get("result") != r]
    crashed = [j.id for j, m in zip(jobs, metas) if m and m.get("status") != "SUCCESS" and m.get("status") in TERMINAL]
    bad_shape = [j.id for j, r in zip(jobs, results) if r is not None and r.get("status") not in ("succeeded", "failed")]
    outcome = Counter(r["status"] for r in results if r)
    errors = Counter(r["error"]["type"] for r in results if r and r.get("status") == "failed")
    f["jobs"] = len(jobs)
    f["succeeded / failed"] = f"{outcome['succeeded']} / {outcome['failed']}"
    if errors:
        f["failed by error type"] = dict(errors)
    f["lost (no final result)"] = len(lost)
    f["celery states"] = dict(states)
    f["stuck (not terminal)"] = len(stuck)
    f["result key != celery result"] = len(mismatch)
    if lost:
        problems.append(f"{len(lost)} jobs lost (no result), e.g. {lost[:3]}")
    if stuck:
        problems.append(f"{len(stuck)} jobs stuck in a non-terminal Celery state, e.g. {stuck[:3]}")
    if mismatch:
        problems.append(f"{len(mismatch)} jobs have two different final results, e.g. {mismatch[:3]}")
    if crashed:
        problems.append(f"{len(crashed)} jobs ended in Celery FAILURE/REVOKED (a bug), e.g. "
                        f"{[(i, (m or {}).get('result')) for i, m in zip(crashed[:3], _mget_json(client, [f'llmorch:celery-task-meta-{c}' for c in crashed[:3]]))]}")
    if bad_shape:
        problems.append(f"{len(bad_shape)} results without status succeeded/failed")
    still_open = sum(1 for score in client.zmscore(OUTBOX_OPEN, [j.id for j in jobs]) if score is not None) if jobs else 0
    f["outbox records left open"] = still_open
    if still_open and not lost:
        problems.append(f"{still_open} finished jobs still open in the outbox")
    leases = sum(client.exists(JOB_LEASE.format(job_id=j.id)) for j in jobs)
    f["leftover leases"] = leases
    if leases:
        problems.append(f"{leases} job leases left behind")

    tracker = CostTracker(CostTrackingConfig(log_path=None), redis=client)
    ids = {j.id for j in jobs}
    rows = [r for r in tracker.records() if r.job_id.split(":")[0] in ids]
    per_attempt = Counter((r.job_id, r.attempt) for r in rows)
    dups = {k: n for k, n in per_attempt.items() if n > 1}
    f["ledger rows"] = len(rows)
    f["duplicate ledger rows"] = sum(n - 1 for n in dups.values())
    if dups:
        problems.append(f"duplicate ledger rows for {len(dups)} (job_id, attempt), e.g. {list(dups)[:3]}")
    unpriced = [r for r in rows if r.cost_micros is None]
    if unpriced:
        problems.append(f"{len(unpriced)} ledger rows without a price")
    ledger_micros = sum(r.cost_micros or 0 for r in rows)
    result_usd = sum((Decimal(r["cost"]["usd"]) for r in results if r and r["cost"]["usd"] is not None), Decimal(0))
    f["ledger total (USD)"] = str(from_micros(ledger_micros))
    f["sum of job result costs (USD)"] = str(result_usd)
    if from_micros(ledger_micros) != result_usd:
        problems.append(f"ledger total {from_micros(ledger_micros)} != sum of result costs {result_usd}")
        _explain_result_gap(report, rows, results, jobs)

    prices = load_prices()
    billed: Counter[tuple[Any, ...]] = Counter()
    billed_calls = 0
    for b in sim.control.stats()["billed"]:
        key = (b["provider"], b["model"], b["prompt_tokens"], b["completion_tokens"], b["cached_tokens"],
               b["cache_write_tokens"], bool(b["batch"]))
        billed[key] += b["count"]
        billed_calls += b["count"]
    ledgered = Counter((r.provider, r.model, r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                        r.cache_write_tokens, r.batch) for r in rows)
    not_billed = ledgered - billed
    orphans = billed - ledgered

    def price(key: tuple[Any, ...]) -> int:
        provider, model, pt, ct, cached, cw, batch = key
        return to_micros(prices[(provider, model)].cost(Usage(pt, ct, cached, cw), batch=batch))

    billed_micros = sum(price(k) * n for k, n in billed.items())
    orphan_micros = sum(price(k) * n for k, n in orphans.items())
    f["simulator: answered (billed) calls"] = billed_calls
    f["simulator: billed (USD)"] = str(from_micros(billed_micros))
    f["billed but not in ledger (calls)"] = f"{sum(orphans.values())} (${from_micros(orphan_micros)}; " \
                                           f"allowed <= {in_flight_slots}: in flight at SIGKILL or Redis restart)"
    f["in ledger but never billed (calls)"] = sum(not_billed.values())
    f["ledger pending markers left"] = len(tracker.pending(older_than=0))
    if not_billed:
        problems.append(f"{sum(not_billed.values())} ledger rows match no billed call, e.g. {list(not_billed)[:2]}")
    if sum(orphans.values()) > in_flight_slots:
        problems.append(f"{sum(orphans.values())} billed calls missing from the ledger (only {in_flight_slots} "
                        f"may be, in flight at SIGKILL or Redis restart), e.g. {list(orphans)[:2]}")
    if billed_micros - orphan_micros != ledger_micros:
        problems.append(f"simulator billed {from_micros(billed_micros)} - orphans {from_micros(orphan_micros)} "
                        f"!= ledger {from_micros(ledger_micros)}")
    calls = Counter(str(r["status"]) for r in sim.control.stats()["requests"] for _ in range(r["count"]))
    f["simulator: calls by status"] = dict(sorted(calls.items()))


def _explain_result_gap(report: Report, rows: list[Any], results: list[Any], jobs: list[Job]) -> None:
    by_job: dict[str, int] = Counter()
    for r in rows:
        by_job[r.job_id.split(":")[0]] += r.cost_micros or 0
    from llm_orchestrator.pricing import to_micros

    odd = []
    for j, r in zip(jobs, results):
        res = to_micros(Decimal(r["cost"]["usd"])) if r and r["cost"]["usd"] is not None else 0
        if by_job.get(j.id, 0) != res:
            odd.append((j.id, j.kind, by_job.get(j.id, 0), res, r and r.get("status")))
    report.problems.append(f"{len(odd)} jobs whose ledger rows != result cost (id, kind, ledger micros, "
                           f"result micros, status), e.g. {odd[:4]}")
