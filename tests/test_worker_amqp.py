"""The job worker with RabbitMQ as the broker (``CELERY_BROKER_URL=amqp://…``), Redis kept for state.

Real RabbitMQ on 127.0.0.1:5672 in a vhost of this run's own (``amqp_vhost``: created with
rabbitmqctl, deleted at the end; skipped, saying why, when RabbitMQ is not there), real worker
processes, real SDKs against the simulator. The settings tests at the top need no RabbitMQ.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis

from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from tests.redis_server import free_port
from tests.worker_fixtures import (  # noqa: F401 - fixtures
    AMQP_HOST,
    AMQP_PASSWORD,
    AMQP_PORT,
    AMQP_USER,
    WorkerProcess,
    amqp_app,
    amqp_stack,
    amqp_vhost,
    rabbitmqctl,
    ready_messages,
)
from worker import outbox, settings
from worker.keys import JOB_LEASE, OUTBOX_MSG, OUTBOX_OPEN

DELAY_LEVELS = 28  # kombu.transport.native_delayed_delivery: celery_delayed_0 … celery_delayed_27
REDIS_ONLY_OPTIONS = {"visibility_timeout", "unacked_restore_interval", "unacked_restore_throttle", "global_keyprefix"}


def ledger_rows(redis_url: str, job_id: str) -> list[Any]:
    tracker = CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url))
    return [r for r in tracker.records() if r.job_id == job_id]


# -- settings: which broker, which options (no RabbitMQ needed) ----------------------------------------


def test_without_celery_broker_url_the_broker_is_redis_url_with_the_redis_transport_options(monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    config = settings.celery_config()
    assert config["broker_url"] == config["result_backend"] == "redis://127.0.0.1:6390/3"
    assert set(config["broker_transport_options"]) >= REDIS_ONLY_OPTIONS
    assert config["broker_transport_options"]["global_keyprefix"] == settings.KEY_PREFIX
    assert all(q.exchange.type == "direct" and not q.queue_arguments for q in config["task_queues"])
    assert "worker_detect_quorum_queues" not in config


def test_an_amqp_broker_gets_durable_quorum_queues_and_confirms_and_no_redis_only_option(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://llm:secret@rabbit.internal:5672/llmorch")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    config = settings.celery_config()
    assert config["broker_url"] == "amqp://llm:secret@rabbit.internal:5672/llmorch"
    assert config["result_backend"] == "redis://127.0.0.1:6390/3"  # state and results stay in Redis
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_acks_late"] and config["worker_prefetch_multiplier"] == 1
    assert config["worker_detect_quorum_queues"] and config["broker_native_delayed_delivery_queue_type"] == "quorum"
    queues = config["task_queues"]
    assert [q.name for q in queues] == list(settings.QUEUES)
    for q in queues:  # topic exchanges: native delayed delivery skips direct ones
        assert q.durable and q.exchange.durable and q.exchange.type == "topic" and q.routing_key == q.name
        assert q.queue_arguments == {"x-queue-type": "quorum"}  # no x-max-priority: quorum queues < 4.0 refuse it


def test_a_redis_broker_apart_from_the_state_redis_keeps_the_redis_options(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://10.0.0.9:6379/2")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    config = settings.celery_config()
    assert config["broker_url"] == "redis://10.0.0.9:6379/2" and config["result_backend"] == "redis://127.0.0.1:6390/3"
    assert set(config["broker_transport_options"]) >= REDIS_ONLY_OPTIONS


def test_an_unsupported_broker_url_is_refused_by_its_scheme(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "sqs://key:secret@")
    with pytest.raises(ValueError, match=r"amqp:// or redis:// URL, not sqs://"):
        settings.celery_config()


# -- the RabbitMQ server and the connection ----------------------------------------------------------


def test_publisher_confirms_are_on_for_the_amqp_connection(amqp_vhost):
    app = amqp_app(amqp_vhost.url)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.connection.confirm_publish is True  # py-amqp's name for kombu's transport option


def test_the_servers_consumer_timeout_exceeds_the_longest_time_a_message_stays_unacked(amqp_vhost):
    """RabbitMQ closes a channel that holds a delivery unacked past ``consumer_timeout`` (3.10: a server
    setting, default 30 min) and requeues its messages. Ours stay unacked for at most a queue wait
    after delivery plus the hard time limit (countdowns wait in the broker)."""
    value = rabbitmqctl("eval", "application:get_env(rabbit, consumer_timeout).").strip()
    found = re.fullmatch(r"\{ok,(\d+)\}", value)
    if found is None:
        assert value in ("undefined", "{ok,undefined}", "{ok,infinity}"), value  # no timeout at all
        return
    assert int(found[1]) / 1000 > 2 * settings.TIME_LIMIT, f"consumer_timeout {found[1]} ms is too short"


def test_quorum_queues_take_no_message_priorities_before_rabbitmq_4(amqp_vhost):
    from amqp.exceptions import PreconditionFailed
    from kombu import Connection, Exchange, Queue

    with Connection(amqp_vhost.url) as conn:
        conn.ensure_connection(max_retries=1)
        version = conn.connection.server_properties.get("version", "0")
        if isinstance(version, bytes):
            version = version.decode()
        if int(version.split(".")[0]) >= 4:
            pytest.skip(f"RabbitMQ {version}: quorum queues have two priorities since 4.0")
        queue = Queue(
            f"prio-{uuid.uuid4().hex[:6]}",
            Exchange("prio", type="topic"),
            routing_key="prio",
            queue_arguments={"x-queue-type": "quorum", "x-max-priority": 9},
        )
        with pytest.raises(PreconditionFailed, match="x-max-priority"):
            queue(conn.channel()).declare()


# -- jobs end to end on RabbitMQ ----------------------------------------------------------------------


@pytest.fixture
def maintenance_empty(amqp_stack) -> Iterator[None]:
    """``maintenance`` (no module worker consumes it) is empty before and after the test."""
    app = amqp_stack["app"]
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("maintenance")
    yield
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("maintenance")


def test_queues_are_durable_quorum_queues_with_the_delayed_delivery_levels(amqp_stack):
    """The module's worker consumes no ``maintenance``, yet declares it at start (``worker.app``): Celery
    binds every task queue for delayed delivery then, and a queue not declared yet would get no binding
    (its countdowns would be dropped by the broker, celery/celery#9960)."""
    queues = amqp_stack["vhost"].queues()
    for name in settings.QUEUES:
        assert queues[name][:2] == ("quorum", True), (name, queues.get(name))
    assert all(queues[f"celery_delayed_{n}"][:2] == ("quorum", True) for n in range(DELAY_LEVELS))
    log = amqp_stack["worker"].log_path.read_text()
    assert "Failed to bind queue" not in log and "Failed to setup delayed delivery" not in log


def test_completion_jobs_succeed_with_one_ledger_row_each(amqp_stack, sim, redis_url):
    p = amqp_stack["producer"]
    providers = ["openai", "anthropic", "gemini"]
    jobs = [p.submit_completion(f"question {i}", provider=providers[i % 3], tenant="acme") for i in range(30)]
    results = [j.get(timeout=120) for j in jobs]
    assert all(r["status"] == "succeeded" for r in results), [r for r in results if r["status"] != "succeeded"][:2]
    assert {r["provider"] for r in results} == set(providers)
    assert all(len(ledger_rows(redis_url, j.id)) == 1 for j in jobs)
    client = redis.Redis.from_url(redis_url)
    assert all(client.zscore(OUTBOX_OPEN, j.id) is None for j in jobs)  # each record closed with its result


def test_streaming_job_relays_chunks_then_result(amqp_stack, sim):
    p = amqp_stack["producer"]
    job = p.submit_completion("stream to a browser", provider="gemini", stream=True)
    items = list(p.stream_job(job.id, timeout=30))
    text, final = "".join(i for i in items if isinstance(i, str)), items[-1]
    assert isinstance(final, dict) and final["status"] == "succeeded" and final["content"] == text


def test_classify_batch_job_answers_every_signal(amqp_stack, sim):
    signals = [
        {"id": "a1", "text": "The app crashes every time I open settings"},
        {"id": "a2", "text": "hmm, interesting week"},
        {"id": "a3", "text": "We would like to add 200 more seats next quarter"},
    ]
    result = amqp_stack["producer"].submit_classification_batch(signals, tenant="acme").get(timeout=60)
    assert result["status"] == "succeeded", result
    assert [r["id"] for r in result["results"]] == ["a1", "a2", "a3"]


def test_batch_lane_polls_with_countdowns_through_the_broker(amqp_stack, sim):
    sim.set_batch_delay(1500)  # the first look finds the provider batch still running: a countdown
    signals = [{"id": "v1", "text": "The dashboard looks different today"}]
    result = amqp_stack["producer"].submit_classification_batch(signals, lane="batch").get(timeout=90)
    assert result["status"] == "succeeded" and [r["id"] for r in result["results"]] == ["v1"]


def test_a_countdown_retry_waits_in_the_broker_then_runs_in_its_own_queue(amqp_stack, sim, maintenance_empty):
    """A long Retry-After becomes ``task.retry(countdown=…)``: on quorum queues the message waits in
    RabbitMQ's delayed-delivery queues (not in a worker's memory), whole seconds, and comes back
    to the queue the job was sent to (``maintenance``), not to the task's route (``llm.interactive``)."""
    app = amqp_stack["app"]
    w = WorkerProcess(amqp_stack["env"], amqp_stack["tmp"], concurrency=1, queues="maintenance").start(app)
    try:
        sim.add_fault(provider="openai", status=429, retry_after=3, count=3)  # every model refuses once
        started = time.monotonic()
        job = amqp_stack["producer"].submit_completion("hello later", queue="maintenance")
        w.wait_for_log(f"job {job.id} waits")
        # The "waits" line is logged before the retry is published: poll the delayed queues a while.
        delayed, until = 0, time.monotonic() + 2.5
        while not delayed and time.monotonic() < until:
            delayed = sum(ready_messages(app, f"celery_delayed_{n}") for n in range(DELAY_LEVELS))
            time.sleep(0.05)
        held = app.control.inspect(destination=[w.node], timeout=1).scheduled() or {}
        result = job.get(timeout=60)
        assert result["status"] == "succeeded", result
        assert time.monotonic() - started >= 3
        assert not any(held.values()), held  # no ETA message held by the worker
        assert delayed >= 1  # it waited in a celery_delayed_<n> queue
        log = w.log_path.read_text()
        assert log.count(f"llm.complete[{job.id}] received") >= 2  # first try and the retry, both here
        assert re.search(rf"llm.complete\[{job.id}\] retry: Retry in \d+s", log)  # whole seconds
        assert job.id not in amqp_stack["worker"].log_path.read_text()  # never went to llm.interactive
    finally:
        w.stop()


@pytest.mark.slow
def test_a_worker_sigkilled_mid_job_loses_nothing_and_the_job_runs_once(amqp_stack, sim, redis_url, maintenance_empty):
    """RabbitMQ requeues a dead consumer's unacked message when its connection closes: no visibility
    timeout and no outbox sweep is involved. The killed holder's lease runs out first (a twin wait)."""
    app, client = amqp_stack["app"], redis.Redis.from_url(redis_url)
    sim.set_latency("anthropic", 3000)
    victim = WorkerProcess(amqp_stack["env"], amqp_stack["tmp"], concurrency=1, queues="maintenance").start(app)
    job = amqp_stack["producer"].submit_completion("survive a crash", provider="anthropic", queue="maintenance")
    deadline = time.monotonic() + 30
    while not client.exists(JOB_LEASE.format(job_id=job.id)):
        assert time.monotonic() < deadline, victim.log()
        time.sleep(0.1)
    victim.kill()  # SIGKILL the whole worker mid-call
    sim.set_latency("anthropic", 0)
    rescuer = WorkerProcess(amqp_stack["env"], amqp_stack["tmp"], concurrency=1, queues="maintenance").start(app)
    try:
        result = job.get(timeout=90)
        assert result["status"] == "succeeded", (result, rescuer.log())
        assert f"llm.complete[{job.id}] received" in rescuer.log_path.read_text()  # redelivered to the rescuer
        assert len(ledger_rows(redis_url, job.id)) == 1
        assert not client.exists(JOB_LEASE.format(job_id=job.id))
        assert ready_messages(app, "maintenance") == 0
    finally:
        rescuer.stop()


def test_a_duplicate_delivery_runs_the_provider_once(amqp_stack, sim, redis_url):
    sim.set_latency("openai", 1500)
    app, job_id = amqp_stack["app"], str(uuid.uuid4())
    payload = {"payload": {"prompt": "only once please", "max_tokens": 64}}
    app.send_task("llm.complete", kwargs=payload, task_id=job_id)
    time.sleep(0.5)
    app.send_task("llm.complete", kwargs=payload, task_id=job_id)  # a redelivered twin (waits with a countdown)
    result = amqp_stack["producer"].JobHandle(job_id).get(timeout=60)
    assert result["status"] == "succeeded"
    # the twin found the lease and went back to the broker (a countdown of the lease's life)
    amqp_stack["worker"].wait_for_log(f"llm.complete[{job_id}] retry: Retry in")
    assert len(ledger_rows(redis_url, job_id)) == 1
    assert sim.count(provider="openai", status=200) == 1


def test_the_outbox_sweep_never_republishes_a_backlog_queued_in_rabbitmq(amqp_stack, sim, redis_url, maintenance_empty):
    """Jobs queued with no worker consuming: the sweep cannot see RabbitMQ's queues, so on amqp it must
    leave them to the broker (on Redis it would re-send each one found in no Redis queue)."""
    app, p, client = amqp_stack["app"], amqp_stack["producer"], redis.Redis.from_url(redis_url)
    jobs = [p.submit_completion(f"backlog {i}", queue="maintenance") for i in range(5)]
    assert ready_messages(app, "maintenance") == 5
    sent: list[str] = []
    restored: list[str] = []

    def publish(*args: Any) -> None:
        sent.append(args[0])
        p.publish(*args)

    reports = []
    for _ in range(2):  # a tiny stale window, swept twice: on Redis this would re-send all five
        reports.append(
            outbox.sweep(
                client,
                publish,
                settings.QUEUES,
                settings.KEY_PREFIX,
                older_than=0,
                confirm_after=0,
                now=time.time() + 1,
                restore=restored.append,
                hold_grace=0,
                broker=settings.broker_kind(app.conf.broker_url),
            )
        )
        time.sleep(0.2)
    assert sent == [] and restored == []
    assert all(r.republished == [] and r.restored == [] and r.suspect == 0 for r in reports)
    assert reports[-1].with_broker >= 5
    assert ready_messages(app, "maintenance") == 5  # the queue is unchanged
    assert all(client.zscore(OUTBOX_OPEN, j.id) is not None for j in jobs)  # still open: not finished yet
    # the beat task, in a worker (tasks.jobs.sweep_once picks the branch from the worker's broker)
    beat = app.send_task("jobs.sweep_outbox", queue="llm.interactive").get(timeout=30)
    assert beat["status"] == "succeeded" and beat["republished"] == beat["restored"] == 0 and "with_broker" in beat
    assert ready_messages(app, "maintenance") == 5
    drain = WorkerProcess(amqp_stack["env"], amqp_stack["tmp"], concurrency=2, queues="maintenance").start(app)
    try:
        assert all(j.get(timeout=60)["status"] == "succeeded" for j in jobs)
        assert all(len(ledger_rows(redis_url, j.id)) == 1 for j in jobs)  # each ran once
        assert all(client.hget(OUTBOX_MSG, j.id) is None for j in jobs)
    finally:
        drain.stop()


# -- the producer when RabbitMQ is down, refuses, or stops answering ------------------------------------


class TcpRelay:
    """A TCP relay from 127.0.0.1:``port`` to RabbitMQ: a broker address that can be down (not started),
    up, or frozen (accepts and keeps connections but forwards nothing, like a broker that stopped
    reading: a resource alarm blocking publishers, or a dead link)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frozen = threading.Event()
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> TcpRelay:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.frozen.clear()
        for s in [self._server, *self._sockets]:
            if s is not None:
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection((AMQP_HOST, AMQP_PORT))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                while self.frozen.is_set():
                    time.sleep(0.05)
                if not data:
                    return
                sink.sendall(data)
            except OSError:
                return


@pytest.fixture
def producer_on(amqp_vhost) -> Iterator[Any]:
    """``producer_on(url)`` points the producer API at ``url`` for the test (then back)."""
    from worker import producer

    shared = producer.celery_app

    def bind(url: str) -> Any:
        producer.celery_app = amqp_app(url)
        return producer

    yield bind
    producer.celery_app = shared


def _url(port: int, vhost: Any) -> str:
    return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{port}/{quote(vhost.name, safe='')}"


def test_a_producer_with_rabbitmq_down_fails_fast_and_submits_once_it_is_back(amqp_vhost, producer_on, redis_client):
    port = free_port()
    producer = producer_on(_url(port, amqp_vhost))
    started = time.monotonic()
    with pytest.raises(producer.BrokerUnavailableError, match=rf"amqp://127.0.0.1:{port} is unreachable") as e:
        producer.submit_completion("hi", queue="maintenance")
    assert time.monotonic() - started < 3, e.value
    assert redis_client.zcard(OUTBOX_OPEN) == 0  # nothing recorded for a message never sent
    relay = TcpRelay(port).start()  # RabbitMQ is back at that address
    try:
        job = producer.submit_completion("hi", queue="maintenance")
        assert redis_client.zscore(OUTBOX_OPEN, job.id) is not None
    finally:
        relay.stop()
        app = amqp_app(amqp_vhost.url)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("maintenance")


def test_a_message_rabbitmq_refuses_raises_and_leaves_no_outbox_record(amqp_vhost, producer_on, redis_client):
    """A nack (here: a max-length policy with reject-publish on ``maintenance``) is one clear error."""
    producer = producer_on(amqp_vhost.url)
    app = producer.celery_app
    with app.connection_for_write() as conn:  # declared here: no worker may have run on this vhost yet
        app.amqp.queues["maintenance"](conn.default_channel).declare()
        conn.default_channel.queue_purge("maintenance")
    rabbitmqctl(
        "set_policy",
        "-p",
        amqp_vhost.name,
        "full",
        "^maintenance$",
        '{"max-length": 1, "overflow": "reject-publish"}',
        "--apply-to",
        "queues",
    )
    try:
        accepted, refused, until = [], [], time.monotonic() + 20
        while time.monotonic() < until:  # the policy reaches the queue asynchronously (seconds when busy)
            try:
                accepted.append(producer.submit_completion(f"fill {len(accepted)}", queue="maintenance").id)
            except producer.BrokerUnavailableError as e:
                refused.append(str(e))
                break
            time.sleep(0.2)
        assert refused and "refused the message (nack" in refused[0], (accepted, refused)
        assert redis_client.zcard(OUTBOX_OPEN) == len(accepted)  # the refused one left nothing behind
        assert producer.submit_completion("other queue", queue="llm.batch").id  # the connection still works
    finally:
        rabbitmqctl("clear_policy", "-p", amqp_vhost.name, "full")
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("maintenance")
            conn.default_channel.queue_purge("llm.batch")


@pytest.mark.slow
def test_a_broker_that_stops_answering_gives_one_error_after_the_confirm_timeout(amqp_vhost, producer_on, monkeypatch):
    port = free_port()
    relay = TcpRelay(port).start()
    producer = producer_on(_url(port, amqp_vhost))
    monkeypatch.setattr(producer, "CONFIRM_TIMEOUT_SECONDS", 1)
    try:
        producer.submit_completion("before", queue="maintenance")
        relay.frozen.set()
        started = time.monotonic()
        with pytest.raises(producer.BrokerUnavailableError, match="did not confirm the message within 1 s"):
            producer.submit_completion("while frozen", queue="maintenance")
        assert time.monotonic() - started < 30  # three tries of 1 s plus reconnect timeouts: never a hang
    finally:
        relay.stop()
        app = amqp_app(amqp_vhost.url)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("maintenance")


# -- queue depth on RabbitMQ (the /metrics gauge the "queue depth growing" alert reads) -------------


def depth_samples(collector: Any) -> dict[str, float]:
    return {s.labels["queue"]: s.value for family in collector.collect() for s in family.samples}


def test_queue_depth_on_rabbitmq_counts_the_messages_waiting_in_each_queue(amqp_vhost):
    from kombu import Connection, Exchange, Producer, Queue

    from worker.queue_depth import AmqpQueueDepthCollector

    name = f"depth-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})
    collector = AmqpQueueDepthCollector(amqp_vhost.url, (name, "never-declared"))
    with Connection(amqp_vhost.url) as conn:
        queue(conn.channel()).declare()
        assert depth_samples(collector) == {name: 0, "never-declared": 0}
        producer = Producer(conn.channel(), exchange=queue.exchange, routing_key=name)
        for i in range(3):
            producer.publish({"n": i}, declare=[queue])
        deadline = time.monotonic() + 5  # unconfirmed publishes: let the queue take them
        while depth_samples(collector)[name] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert depth_samples(collector) == {name: 3, "never-declared": 0}
        queue(conn.channel()).delete()
    collector.close()


def test_queue_depth_with_rabbitmq_away_has_no_sample_rather_than_a_false_zero():
    from worker.queue_depth import AmqpQueueDepthCollector

    collector = AmqpQueueDepthCollector(f"amqp://guest:guest@127.0.0.1:{free_port()}//", ("llm.interactive",))
    assert depth_samples(collector) == {}


def test_the_worker_metrics_read_queue_depth_from_the_broker_not_from_the_state_redis(monkeypatch):
    from llm_orchestrator.observability.metrics import QueueDepthCollector
    from worker.metrics_server import queue_depth_collector
    from worker.queue_depth import AmqpQueueDepthCollector

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    assert isinstance(queue_depth_collector(), AmqpQueueDepthCollector)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://10.0.0.9:6379/2")
    collector = queue_depth_collector()
    assert isinstance(collector, QueueDepthCollector)
    assert collector.redis.connection_pool.connection_kwargs["host"] == "10.0.0.9"
