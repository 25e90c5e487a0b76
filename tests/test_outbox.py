"""The outbox sweeper re-sends a job whose broker message was lost, and nothing else (real Redis)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.worker_fixtures import stack  # noqa: F401 - fixture
from worker import outbox
from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_MSG, OUTBOX_OPEN, OUTBOX_SUSPECT

PREFIX = "llmorch:"
QUEUES = ("llm.interactive", "llm.batch", "maintenance")
T0 = 1_000_000.0


@pytest.fixture
def db(redis_client):
    """A clean database, flushed again afterwards: a junk queue entry would stop a later test's worker."""
    yield redis_client
    redis_client.flushdb()


class Sent(list):
    def __call__(self, job_id, task, payload, queue, summary):
        self.append((job_id, task, payload, queue, summary))


def _open(client, job_id: str, at: float = T0) -> None:
    pipe = client.pipeline()
    outbox.record(pipe, job_id, "llm.complete", {"prompt": "hi"}, None, "<prompt: 2 chars>", now=at)
    pipe.execute()


def _sweep(client, sent, now: float, **kw):
    return outbox.sweep(client, sent, QUEUES, PREFIX, older_than=60, confirm_after=30, now=now, **kw)


def _kombu_message(job_id: str) -> str:
    return json.dumps({"body": "e30=", "headers": {"id": job_id, "task": "llm.complete"}, "properties": {}})


def test_a_job_found_nowhere_twice_is_published_again_once(db):
    _open(db, "lost-1")
    sent = Sent()
    first = _sweep(db, sent, T0 + 61)
    assert first.suspect == 1 and not sent  # first sighting: only suspected
    assert _sweep(db, sent, T0 + 70).republished == []  # not yet confirm_after later
    third = _sweep(db, sent, T0 + 95)
    assert third.republished == ["lost-1"]
    assert sent == [("lost-1", "llm.complete", {"prompt": "hi"}, None, "<prompt: 2 chars>")]
    assert db.zscore(OUTBOX_SUSPECT, "lost-1") is None
    assert db.zscore(OUTBOX_OPEN, "lost-1") is not None  # open until its result is stored


def test_young_queued_unacked_running_and_finished_jobs_are_left_alone(db):
    for j in ("young", "queued", "prio", "unacked", "running", "finished"):
        _open(db, j, at=T0 + 50 if j == "young" else T0)
    db.lpush(PREFIX + "llm.interactive", _kombu_message("queued"))
    db.lpush(PREFIX + "llm.batch" + outbox.PRIORITY_SEPARATOR + "3", _kombu_message("prio"))
    db.hset(
        PREFIX + "unacked",
        "tag-1",
        json.dumps([json.loads(_kombu_message("unacked")), "llm.interactive", "llm.interactive"]),
    )
    db.set(JOB_LEASE.format(job_id="running"), "token")
    db.set(JOB_RESULT.format(job_id="finished"), "{}")
    sent = Sent()
    for now in (T0 + 61, T0 + 100):  # 'young' is still under 60 s old at the second sweep
        report = _sweep(db, sent, now)
    assert sent == [] and report.suspect == 0
    assert (report.queued, report.running) == (3, 1)
    assert db.zscore(OUTBOX_OPEN, "finished") is None  # a left-behind record is closed
    assert db.hget(OUTBOX_MSG, "finished") is None


def test_close_forgets_the_job(db):
    _open(db, "j")
    db.zadd(OUTBOX_SUSPECT, {"j": T0})
    pipe = db.pipeline()
    outbox.close(pipe, "j")
    pipe.execute()
    assert not db.exists(OUTBOX_OPEN, OUTBOX_MSG, OUTBOX_SUSPECT)


def test_sweep_stops_above_max_scan_and_says_why(db, caplog):
    _open(db, "lost")
    db.lpush(PREFIX + "llm.interactive", *[_kombu_message(f"other-{i}") for i in range(5)])
    sent = Sent()
    for now in (T0 + 61, T0 + 200):
        report = _sweep(db, sent, now, max_scan=3)
    assert sent == [] and report.skipped == "5 queued messages > max_scan 3"
    assert "outbox sweep skipped" in caplog.text


def test_unparseable_queue_entries_are_ignored(db):
    _open(db, "lost")
    db.lpush(PREFIX + "llm.interactive", "not json", json.dumps({"headers": None}))
    db.hset(PREFIX + "unacked", "t", "[broken")
    sent = Sent()
    _sweep(db, sent, T0 + 61)
    assert _sweep(db, sent, T0 + 95).republished == ["lost"]


@pytest.mark.slow
def test_a_lost_message_gets_its_result_after_a_sweep(stack, sim, redis_url):
    """The broker lost the message (as when Redis stops right after a BRPOP): the sweep re-sends it."""
    import redis

    client = redis.Redis.from_url(redis_url)
    job_id = str(uuid.uuid4())
    _open(client, job_id, at=0)  # recorded long ago, never delivered
    sent: list[str] = []

    def publish(*args):
        sent.append(args[0])
        stack["producer"].publish(*args)

    for now in (1_000.0, 2_000.0):
        outbox.sweep(client, publish, QUEUES, PREFIX, older_than=60, confirm_after=30, now=now)
    assert sent == [job_id]
    result = stack["producer"].JobHandle(job_id).get(timeout=60)
    assert result["status"] == "succeeded" and result["job_id"] == job_id
    assert client.zscore(OUTBOX_OPEN, job_id) is None and client.hget(OUTBOX_MSG, job_id) is None


@pytest.mark.slow
def test_producer_records_and_worker_closes(stack, sim, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    job = stack["producer"].submit_completion("outbox round trip")
    assert job.get(timeout=60)["status"] == "succeeded"
    assert client.zscore(OUTBOX_OPEN, job.id) is None and client.hget(OUTBOX_MSG, job.id) is None
    report = stack["app"].send_task("jobs.sweep_outbox").get(timeout=30)
    assert report["status"] == "succeeded" and report["republished"] == 0


def test_a_job_finished_before_it_was_recorded_stays_closed(db):
    """The worker can store the result before the producer records the job: no open record then."""
    db.set(JOB_RESULT.format(job_id="fast"), "{}")
    _open(db, "fast")
    assert db.zscore(OUTBOX_OPEN, "fast") is None and db.hget(OUTBOX_MSG, "fast") is None


# -- unacked with no holder: put back on the queue, not left for the 1,800 s visibility timeout -------


def _unacked(client, job_id: str, tag: str, delivered_at: float, eta: str | None = None) -> None:
    message = json.loads(_kombu_message(job_id))
    if eta:
        message["headers"]["eta"] = eta
    client.hset(PREFIX + "unacked", tag, json.dumps([message, "llm.interactive", "llm.interactive"]))
    client.zadd(PREFIX + "unacked_index", {tag: delivered_at})


def test_an_unacked_job_with_no_lease_is_restored_once_its_grace_has_passed(db):
    for j in ("dead-holder", "just-delivered", "leased", "countdown"):
        _open(db, j)
    _unacked(db, "dead-holder", "t-dead", delivered_at=T0)
    _unacked(db, "just-delivered", "t-new", delivered_at=T0 + 90)
    _unacked(db, "leased", "t-run", delivered_at=T0)
    db.set(JOB_LEASE.format(job_id="leased"), "token")
    _unacked(db, "countdown", "t-eta", delivered_at=T0, eta="1970-01-12T13:48:20+00:00")  # T0 + 200 s
    restored: list[str] = []
    report = _sweep(db, Sent(), T0 + 100, restore=restored.append, hold_grace=60)
    assert restored == ["t-dead"] and report.restored == ["dead-holder"]
    assert report.republished == [] and report.suspect == 0
    later: list[str] = []
    _sweep(db, Sent(), T0 + 261, restore=later.append, hold_grace=60)  # the ETA + grace has passed too
    assert sorted(later) == ["t-dead", "t-eta", "t-new"]  # (a real restore would have removed t-dead)


@pytest.mark.slow
def test_a_job_whose_worker_was_killed_runs_again_long_before_the_visibility_timeout(
    sim, redis_url, tmp_path, monkeypatch
):
    """Production visibility settings (1,800 s): the sweep restores the killed holder's message."""
    import time
    from functools import partial

    import redis

    from tasks.jobs import restore_unacked
    from tests.worker_fixtures import WorkerProcess, amqp_app, worker_env, write_config
    from worker import producer

    # A broker of its own (another database of the same server): a module worker still consuming the
    # shared queues must not take this job from the victim.
    broker_url = own_database(redis_url)
    app = amqp_app(broker_url)  # the project's settings on that broker (a Redis one here)
    monkeypatch.setattr(producer, "celery_app", app)  # restored even if the test fails early
    client, broker = redis.Redis.from_url(redis_url), redis.Redis.from_url(broker_url)
    broker.flushdb()
    config = write_config(tmp_path / "config.yaml", sim, redis_url)
    env = worker_env(
        config,
        redis_url,
        CELERY_BROKER_URL=broker_url,
        LLM_ORCH_VISIBILITY_TIMEOUT="1800",
        LLM_ORCH_RESTORE_INTERVAL="10",
    )
    victim = WorkerProcess(env, tmp_path, concurrency=1, queues="llm.interactive").start(app)
    sim.set_latency("openai", 8000)
    job = producer.submit_completion("held by a worker about to die", max_tokens=16)
    deadline = time.monotonic() + 30
    while client.get(JOB_LEASE.format(job_id=job.id)) is None:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    victim.kill()
    sim.set_latency("openai", 0)
    rescuer = WorkerProcess(env, tmp_path, concurrency=1, queues="llm.interactive").start(app)
    try:
        grace = 20.0  # tests run with a 15 s hard limit: the job lease is 20 s
        started, restored = time.monotonic(), []
        while not restored:
            assert time.monotonic() - started < 3 * grace, "never restored"
            report = outbox.sweep(
                client,
                producer.publish,
                QUEUES,
                PREFIX,
                older_than=1,
                confirm_after=1,
                restore=partial(restore_unacked, app=app),
                hold_grace=grace,
                broker_client=broker,
            )
            restored = report.restored
            time.sleep(1)
        assert restored == [job.id]
        assert job.get(timeout=60)["status"] == "succeeded"
        assert time.monotonic() - started < 2 * grace + 30  # vs the 1,800 s visibility timeout
        from llm_orchestrator.config.manager import CostTrackingConfig
        from llm_orchestrator.cost_tracker import CostTracker

        rows = [r for r in CostTracker(CostTrackingConfig(log_path=None), redis=client).records() if r.job_id == job.id]
        assert len(rows) == 1  # exactly once in the ledger (the killed call was billed by the provider, never seen)
    finally:
        rescuer.stop()
        broker.flushdb()


def own_database(url: str) -> str:
    """``url`` on another database number of the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + 1) % 16}"))


@pytest.mark.slow
def test_a_job_celery_marked_revoked_reads_pending_until_the_outbox_runs_it(stack, sim, redis_url):
    """Celery can mark a job REVOKED during a Redis restart; the outbox still re-sends it, so a
    caller is never told "failed" for it: it reads pending, then gets the real result."""
    import redis
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    client = redis.Redis.from_url(redis_url)
    job_id = str(uuid.uuid4())
    _open(client, job_id, at=0)
    stack["app"].backend.store_result(job_id, None, "REVOKED")
    handle = stack["producer"].JobHandle(job_id)
    assert handle.status == "PENDING"
    with pytest.raises(CeleryTimeoutError):
        handle.get(timeout=0.5)
    for now in (1_000.0, 2_000.0):
        outbox.sweep(client, stack["producer"].publish, QUEUES, PREFIX, older_than=60, confirm_after=30, now=now)
    result = handle.get(timeout=60)
    assert result["status"] == "succeeded" and handle.status == "SUCCESS"
    gone = stack["producer"].JobHandle(str(uuid.uuid4()))  # revoked and not kept by the outbox: failed
    stack["app"].backend.store_result(gone.id, None, "REVOKED")
    assert gone.get(timeout=5)["status"] == "failed"


def test_a_producer_with_redis_down_fails_fast_and_submits_once_redis_is_back(tmp_path):
    """What a web app hits when it starts before Redis: one clear error in about a second (not
    Celery's 19 s "the Celery application must be restarted"), and the same process works after."""
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.redis_server import RedisServer

    server = RedisServer()
    code = (
        "import time\n"
        "from worker import producer\n"
        "started = time.monotonic()\n"
        "try:\n"
        "    producer.submit_completion('hi')\n"
        "except producer.BrokerUnavailableError as e:\n"
        "    print('DOWN', round(time.monotonic() - started, 1), e)\n"
        "input()\n"
        "print('UP', producer.submit_completion('hi').id)\n"
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": server.url},
        )
        first = proc.stdout.readline().split()
        assert first[0] == "DOWN" and float(first[1]) < 3, first
        server.start()
        out, err = proc.communicate("\n", timeout=60)
        assert out.startswith("UP "), err
    finally:
        server.cleanup()


# -- per broker: RabbitMQ keeps its own messages; a Redis broker may be another Redis -------------------


def test_an_amqp_sweep_never_republishes_or_restores_it_only_closes_finished_jobs(db, caplog, monkeypatch):
    """The sweep cannot see RabbitMQ's queues: every old open job would look lost. On amqp it leaves
    them to the broker, closes the records of finished jobs and says once why."""
    import logging

    monkeypatch.setattr(outbox, "_said", set())
    for j in ("waiting-1", "waiting-2", "running", "finished"):
        _open(db, j)
    db.set(JOB_LEASE.format(job_id="running"), "token")
    db.set(JOB_RESULT.format(job_id="finished"), "{}")
    _unacked(db, "waiting-2", "t-1", delivered_at=T0)  # Redis-transport leftovers must not matter either
    sent, restored = Sent(), []
    with caplog.at_level(logging.INFO, logger="worker.outbox"):
        reports = [
            _sweep(db, sent, now, restore=restored.append, hold_grace=0, broker="amqp")
            for now in (T0 + 61, T0 + 95, T0 + 500)
        ]
    assert sent == [] and restored == []
    assert all(r.republished == [] and r.restored == [] and r.suspect == 0 for r in reports)
    assert (reports[0].finished, reports[-1].running, reports[-1].with_broker) == (1, 1, 2)
    assert db.zscore(OUTBOX_OPEN, "finished") is None and db.hget(OUTBOX_MSG, "finished") is None
    assert db.zscore(OUTBOX_OPEN, "waiting-1") is not None  # open until its result is stored
    assert not db.exists(OUTBOX_SUSPECT)
    assert sum(outbox.BROKER_RESENDS in r.getMessage() for r in caplog.records) == 1  # said once


def test_the_redis_sweep_scans_the_broker_redis_when_it_is_another_one(db):
    """CELERY_BROKER_URL=redis://other: the queues live there, the outbox in REDIS_URL's Redis."""
    import redis

    from tests.redis_server import RedisServer

    server = RedisServer().start()
    try:
        broker = redis.Redis.from_url(server.url)
        for j in ("queued-there", "lost"):
            _open(db, j)
        broker.lpush(PREFIX + "llm.interactive", _kombu_message("queued-there"))
        db.lpush(PREFIX + "llm.interactive", _kombu_message("lost"))  # in the state Redis: not the broker
        sent = Sent()
        for now in (T0 + 61, T0 + 95):
            report = _sweep(db, sent, now, broker_client=broker)
        assert [s[0] for s in sent] == ["lost"] and report.queued == 1
    finally:
        server.cleanup()


def test_an_unknown_broker_kind_is_refused(db):
    with pytest.raises(ValueError, match="unknown broker kind 'sqs'"):
        _sweep(db, Sent(), T0 + 61, broker="sqs")
