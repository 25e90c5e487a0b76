"""``llm.complete``, ``llm.classify``, ``llm.classify_batch`` (and ``llm.noop`` for benchmarks).

Each task: validate → claim (the stored result, or the lease: one round trip) → library call (two
round trips) → finish (store the result, close the outbox record, release the lease: one round trip). A long wait (open breaker, long Retry-After, local rate limit) becomes a Celery
countdown; an error no retry can fix fails the job with a redacted message. Failed jobs are
returned as ``{"status": "failed", ...}`` dicts (Celery state SUCCESS), so every caller reads
one shape; a Celery FAILURE state means a bug.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.transport.native_delayed_delivery import MAX_NUMBER_OF_BITS_TO_USE
from pydantic import BaseModel, ValidationError

from llm_orchestrator.classification.lane import LaneJob, Wait
from llm_orchestrator.exceptions import LLMOrchestratorError
from llm_orchestrator.redis_client import unreachable_errors
from tasks.payloads import BatchPayload, CompletionPayload, SignalPayload
from tasks.results import LEDGER_TOTAL, failed, succeeded, with_job_total
from worker import outbox, resources, settings
from worker.app import celery_app
from worker.keys import JOB_RESULT, JOB_STREAM, STREAM_TTL_SECONDS
from worker.leases import JobLease

log = logging.getLogger(__name__)
MAX_RETRIES = 5
MAX_NOOP_SLEEP_MS = 5000
MAX_TWIN_WAITS = 100  # redeliveries waiting for a running twin (their own budget, not MAX_RETRIES)
REDIS_DOWN = unreachable_errors()  # on a cluster also CLUSTERDOWN / TRYAGAIN
REDIS_WAIT_ROUNDS = 3  # in-process reruns of a job interrupted by a Redis outage, then a Celery retry
DELAY_PREFIX = re.compile(rf"^(?:[01]\.){{{MAX_NUMBER_OF_BITS_TO_USE}}}")  # amqp delayed delivery: routing key prefix


class JobTask(Task):
    """An LLM job task. A crash (a bug: an exception ``run_job`` does not turn into a result) still
    stores a ``failed`` result, so the job's outbox record closes and its caller is answered."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        try:
            _finish(
                resources.redis_client(),
                task_id,
                failed(task_id, None, "the task crashed; see worker logs", type(exc).__name__),
            )
        except REDIS_DOWN:
            log.warning("job %s crashed and its failed result could not be stored (Redis unreachable)", task_id)


TASK_OPTIONS = {
    "bind": True,
    "base": JobTask,
    "max_retries": MAX_RETRIES,
    "default_retry_delay": 10,
    "acks_late": True,
    "resultrepr_maxsize": 200,
}


class BatchStillRunning(Exception):  # noqa: N818 - not a failure: the job polls again later
    def __init__(self, seconds: float) -> None:
        super().__init__(f"provider batch running; next look in {seconds:.0f} s")
        self.seconds = seconds


class StreamBroke(Exception):  # noqa: N818 - carries the error that broke a stream after output
    """A streamed answer failed after some of it was relayed: the job fails, it is never re-run
    (a second attempt's text would be spliced onto the first one's in the job's stream)."""

    def __init__(self, error: LLMOrchestratorError) -> None:
        super().__init__(str(error))
        self.error = error


def countdown(err: Exception, retries: int) -> float:
    """Seconds before the next try: the error's own wait (plus jitter) or exponential backoff."""
    wait = getattr(err, "retry_after", None)
    if wait is None:
        wait = 5 * 2**retries
    return min(max(float(wait), 1.0) + random.uniform(0, 1), settings.MAX_COUNTDOWN)


def run_job(
    task: Task, payload: Any, schema: type[BaseModel], work: Callable[[BaseModel, str, int], dict[str, Any]]
) -> dict[str, Any]:
    """The shared skeleton of every LLM task (see module docstring), riding out a Redis restart.

    Redis going away mid-job (ledger, lease or result write) must not fail the task: Celery would
    ack the message of a failed task and the job would be lost. Instead wait for Redis and run the
    job again in this process, same attempt (the done marker and the ledger's per-attempt row
    make the second run safe); if Redis stays away, leave it to a Celery retry.
    """
    lease = JobLease(resources.redis_client(), task.request.id, settings.JOB_LEASE_SECONDS)
    for _ in range(REDIS_WAIT_ROUNDS):
        try:
            return _run_job(task, payload, schema, work, lease)
        except REDIS_DOWN as err:
            log.warning(
                "job %s: Redis unreachable (%s); running it again once Redis answers",
                task.request.id,
                type(err).__name__,
            )
            _wait_for_redis(resources.redis_client(), settings.SOFT_TIME_LIMIT / (2 * REDIS_WAIT_ROUNDS))
    raise reschedule(
        task, countdown(TimeoutError(), task.request.retries), max_retries=task.request.retries + MAX_TWIN_WAITS
    )


def reschedule(task: Task, seconds: float, max_retries: int | None = None) -> Exception:
    """``task.retry(countdown=seconds)`` that survives the broker being away while the retry is sent.

    When the retry message cannot be published Celery rejects the running message without
    requeueing it: the job would be lost. Instead wait for Redis and publish again, for up to half
    the soft time limit; after that Celery's reject runs (if Redis is still away the message stays
    unacked and comes back after the visibility timeout; if not, the outbox sweeper re-sends it).

    On RabbitMQ (quorum queues) the countdown waits in the broker (Celery's native delayed
    delivery), which counts whole seconds: it is rounded up, so the message never arrives before
    its ETA (a message held for its ETA would block one slot of the quorum queue's static prefetch;
    under a second would raise). The retry also names the job's queue: native delayed delivery
    routes by queue, which would otherwise be the task's route, not a queue the job was sent to.
    """
    options: dict[str, Any] = {"countdown": seconds}
    if settings.broker_kind(task.app.conf.broker_url) == settings.AMQP:
        options = {"countdown": math.ceil(seconds), **_delivered_queue(task)}
    # Celery's retry copies the task's args but not how they are shown: without these, Flower and
    # the logs would show the retried job's prompt, and its result would go to the backend too.
    options.update(
        argsrepr=getattr(task.request, "argsrepr", None) or "()",
        kwargsrepr=getattr(task.request, "kwargsrepr", None) or "{'payload': '<redacted>'}",
        ignore_result=bool(getattr(task.request, "ignore_result", False)),
    )
    deadline = time.monotonic() + settings.SOFT_TIME_LIMIT / 2
    while True:
        try:
            return task.retry(max_retries=max_retries, throw=False, **options)
        except Reject:
            if time.monotonic() > deadline:
                raise
            log.warning(
                "job %s: could not publish its retry (broker or Redis unreachable); trying again", task.request.id
            )
            _wait_for_redis(resources.redis_client(), 2.0)


def _delivered_queue(task: Task) -> dict[str, str]:
    """``{"queue": name}`` of the queue the running message came from (amqp), or ``{}`` if unknown.

    A message that waited in the delayed-delivery queues carries a routing key prefixed with its
    delay in binary (28 ``0.``/``1.`` words); the queue is what follows (our routing key = queue name).
    """
    key = (task.request.delivery_info or {}).get("routing_key") or ""
    name = DELAY_PREFIX.sub("", key, count=1)
    return {"queue": name} if name in settings.QUEUES else {}


def _wait_for_redis(client: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except REDIS_DOWN:
            time.sleep(0.5)


def _run_job(
    task: Task,
    payload: Any,
    schema: type[BaseModel],
    work: Callable[[BaseModel, str, int], dict[str, Any]],
    lease: JobLease,
) -> dict[str, Any]:
    job_id = task.request.id
    try:
        data = schema.model_validate(payload)
    except ValidationError as e:
        return lease.finish(failed(job_id, None, _invalid(e, payload), "InvalidPayload"), settings.RESULT_EXPIRES)
    claim = lease.claim()
    if claim.done is not None:  # finished before (a redelivered copy): its result, not a second run
        return claim.done
    if not claim.leased:  # a twin holds the lease: it is running, or died and its lease will lapse
        wait = max(1.0, claim.busy_for) + random.uniform(0, 1)
        raise reschedule(task, wait, max_retries=task.request.retries + MAX_TWIN_WAITS)
    finished = False
    try:
        provider = getattr(data, "provider", None)
        try:
            result = work(data, job_id, task.request.retries)
        except BatchStillRunning as wait:  # polling: its own budget, like a twin's wait
            raise reschedule(task, wait.seconds, max_retries=task.request.retries + 1) from None
        except StreamBroke as broke:
            result = failed(job_id, provider or resources.config().active_provider, broke.error)
        except LLMOrchestratorError as err:
            # `retryable` is the error table's job_retry (ON_ERROR); for AllFallbacksFailedError it is
            # true when some model of the chain may still succeed later.
            if err.retryable and task.request.retries < MAX_RETRIES:
                log.info("job %s waits %s: retrying later", job_id, type(err).__name__)
                raise reschedule(task, countdown(err, task.request.retries)) from None
            result = failed(job_id, provider or resources.config().active_provider, err)
        except SoftTimeLimitExceeded:
            if task.request.retries < MAX_RETRIES:
                log.warning("job %s hit the soft time limit: retrying later", job_id)
                raise reschedule(task, countdown(TimeoutError(), task.request.retries)) from None
            result = failed(job_id, provider, "the job exceeded its time limit", "TimeLimitExceeded")
        stored = lease.finish(with_job_total(result, _ledger_total(result, job_id)), settings.RESULT_EXPIRES)
        finished = True
        return stored
    finally:
        if not finished:
            lease.release()


def _ledger_total(result: dict[str, Any], job_id: str) -> Any:
    """What the ledger holds for the job: from the last settled call when it said (no round trip)."""
    known = result.pop(LEDGER_TOTAL, None)
    if known is not None:
        return Decimal(known)
    return resources.orchestrator().cost_tracker.get_session_cost(job_id)


def _invalid(e: ValidationError, payload: Any) -> str:
    """One line naming each bad field (and, for a batch, the signal's id) and what is wrong with it."""
    problems = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        if len(err["loc"]) >= 2 and err["loc"][0] == "signals" and isinstance(err["loc"][1], int):
            signal = (payload.get("signals") or [])[err["loc"][1]] if isinstance(payload, dict) else None
            if isinstance(signal, dict) and signal.get("id"):
                loc += f" (signal {str(signal['id'])[:64]!r})"
        problems.append(f"{loc}: {err['msg']}")
    return "invalid payload: " + "; ".join(sorted(problems))[:400]


def _finish(client: Any, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Store the final result (first writer wins) and close the job's outbox record, atomically."""
    key = JOB_RESULT.format(job_id=job_id)
    pipe = client.pipeline()
    pipe.set(key, json.dumps(result), ex=settings.RESULT_EXPIRES, nx=True)
    outbox.close(pipe, job_id)
    pipe.get(key)
    stored = pipe.execute()[-1]
    return json.loads(stored) if stored is not None else result


def job_deadline(orch: Any) -> float:
    """Seconds for all of a job's model calls: the config's ``retry.deadline``, at most the soft
    time limit. Prefork enforces the time limits itself; a threads or gevent pool does not, and
    this keeps a job inside its lease there (a job past its lease could be run a second time)."""
    return float(min(orch.config.retry.deadline, settings.SOFT_TIME_LIMIT))


# -- completion -------------------------------------------------------------------------------


def _complete(data: CompletionPayload, job_id: str, attempt: int) -> dict[str, Any]:
    orch = resources.orchestrator(data.provider)
    args = {
        "system": data.system,
        "model": data.model,
        "max_tokens": data.max_tokens,
        "job_id": job_id,
        "session_id": job_id,
        "attempt": attempt,
        "tenant": data.tenant,
        "deadline": job_deadline(orch),
    }
    if not data.stream:
        r = orch.send_request(data.prompt, **args)
    else:
        r = _relay_stream(orch.send_streaming_request(data.prompt, **args), job_id)
    result = succeeded(
        job_id,
        r.provider,
        r.model,
        [r],
        content=r.content,
        finish_reason=r.finish_reason,
        latency_ms=r.latency_ms,
        request_id=r.request_id,
        attempts=r.attempts,
    )
    if data.stream:  # what the stored result will be (the ledger total is for this task only)
        _stream_append(job_id, {"result": json.dumps({k: v for k, v in result.items() if k != LEDGER_TOTAL})})
    return result


def _stream_append(job_id: str, fields: dict[str, str]) -> None:
    client = resources.redis_client()
    key = JOB_STREAM.format(job_id=job_id)
    client.xadd(key, fields, maxlen=10_000, approximate=True)
    client.expire(key, STREAM_TTL_SECONDS)


def _relay_stream(chunks: Any, job_id: str) -> Any:
    """Copy each chunk to the job's Redis Stream; return the final LLMResponse."""
    relayed = False
    try:
        for chunk in chunks:
            if chunk.text:
                _stream_append(job_id, {"text": chunk.text})
                relayed = True
            if chunk.done:
                return chunk.response
    except LLMOrchestratorError as err:
        if relayed:
            raise StreamBroke(err) from err
        raise
    raise RuntimeError("stream ended without a final chunk")  # adapters guarantee one; a bug otherwise


@celery_app.task(name="llm.complete", **TASK_OPTIONS)
def complete(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one completion job. Payload: see ``tasks.payloads.CompletionPayload``."""
    return run_job(self, payload, CompletionPayload, _complete)


# -- classification ---------------------------------------------------------------------------


def classify_many(
    signals: list[tuple[str | None, str]], provider: str | None, tenant: str | None, job_id: str, attempt: int
) -> tuple[list[dict[str, Any]], list[Any], str]:
    """Run the classifier (see ``SignalClassifier``). Returns (answers, LLMResponses, provider)."""
    classifier = resources.classifier(provider)
    run = classifier.classify(
        signals, job_id=job_id, attempt=attempt, tenant=tenant, deadline=job_deadline(classifier.orch)
    )
    return [r.answer() for r in run.results], run.responses, classifier.orch.provider


def _classify(data: SignalPayload, job_id: str, attempt: int) -> dict[str, Any]:
    answers, responses, provider = classify_many([(data.id, data.text)], data.provider, data.tenant, job_id, attempt)
    answer = answers[0]
    answer.pop("cost_usd")  # the job's cost is the result's `cost` block
    return succeeded(job_id, provider, answer.pop("model"), responses, **answer)


def _classify_batch(data: BatchPayload, job_id: str, attempt: int) -> dict[str, Any]:
    signals = [(s.id or str(i), s.text) for i, s in enumerate(data.signals)]
    if data.lane == "batch":
        answers, responses, provider = _lane_step(signals, data, job_id)
    else:
        answers, responses, provider = classify_many(signals, data.provider, data.tenant, job_id, attempt)
    model = responses[-1].model if responses else None
    return succeeded(
        job_id,
        provider,
        model,
        responses,
        results=answers,
        cache_hit_rate=_cache_hit_rate(responses),
        call_latencies_ms=[round(r.latency_ms, 2) for r in responses],
    )


def _lane_step(
    signals: list[tuple[str | None, str]], data: BatchPayload, job_id: str
) -> tuple[list[dict[str, Any]], list[Any], str]:
    """One step of a batch-lane job (see ``classification.lane``); waits become countdowns."""
    classifier = resources.classifier(data.provider)
    orch = classifier.orch
    out = LaneJob(classifier, job_id, data.tenant, settings.BATCH_POLL_SECONDS).step(signals)
    if isinstance(out, Wait):
        raise BatchStillRunning(out.seconds)
    return [r.answer() for r in out.results], out.responses, orch.provider


def _cache_hit_rate(responses: list[Any]) -> float | None:
    prompt = sum(r.prompt_tokens for r in responses)
    return round(sum(r.cached_tokens for r in responses) / prompt, 4) if prompt else None


@celery_app.task(name="llm.classify", **TASK_OPTIONS)
def classify(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Classify one product signal. Payload: see ``tasks.payloads.SignalPayload``."""
    return run_job(self, payload, SignalPayload, _classify)


@celery_app.task(name="llm.classify_batch", **TASK_OPTIONS)
def classify_batch(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Classify many signals (keywords, cache, batched cascade). Payload: ``BatchPayload``."""
    return run_job(self, payload, BatchPayload, _classify_batch)


@celery_app.task(name="llm.noop", bind=True, acks_late=True)
def noop(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Does nothing (or only sleeps ``payload["sleep_ms"]``, at most 5 s): the throughput benchmark's baseline."""
    sleep_ms = payload.get("sleep_ms") if isinstance(payload, dict) else None
    if isinstance(sleep_ms, int | float) and 0 < sleep_ms <= MAX_NOOP_SLEEP_MS:
        time.sleep(sleep_ms / 1000)
    return {"job_id": self.request.id, "status": "succeeded"}
