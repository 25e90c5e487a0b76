"""``llm.complete``, ``llm.classify``, ``llm.classify_batch`` (and ``llm.noop`` for benchmarks).

Each task: done-marker check → validate → lease → re-check → library call → store result →
release lease. A long wait (open breaker, long Retry-After, local rate limit) becomes a Celery
countdown; an error no retry can fix fails the job with a redacted message. Failed jobs are
returned as ``{"status": "failed", ...}`` dicts (Celery state SUCCESS), so every caller reads
one shape; a Celery FAILURE state means a bug.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError

from llm_orchestrator.classification.pipeline import classify_signal
from llm_orchestrator.exceptions import (
    AllFallbacksFailedError, CircuitOpenError, LLMOrchestratorError, LocalRateLimitError, RetryLaterError,
)
from tasks.payloads import BatchPayload, CompletionPayload, SignalPayload
from tasks.results import failed, succeeded
from worker import resources, settings
from worker.app import celery_app
from worker.keys import JOB_RESULT, JOB_STREAM, STREAM_TTL_SECONDS
from worker.leases import JobLease

log = logging.getLogger(__name__)
WAIT_ERRORS = (CircuitOpenError, LocalRateLimitError, RetryLaterError, AllFallbacksFailedError)
MAX_RETRIES = 5
LEASE_MARGIN_SECONDS = 5  # past the hard time limit the holder is surely dead: its lease may lapse
MAX_TWIN_WAITS = 100  # redeliveries waiting for a running twin (their own budget, not MAX_RETRIES)
TASK_OPTIONS = {"bind": True, "max_retries": MAX_RETRIES, "default_retry_delay": 10, "acks_late": True,
                "resultrepr_maxsize": 200}


def countdown(err: Exception, retries: int) -> float:
    """Seconds before the next try: the error's own wait (plus jitter) or exponential backoff."""
    wait = getattr(err, "retry_after", None)
    if wait is None:
        wait = 5 * 2**retries
    return min(max(float(wait), 1.0) + random.uniform(0, 1), settings.MAX_COUNTDOWN)


def run_job(task: Task, payload: Any, schema: type[BaseModel],
            work: Callable[[BaseModel, str, int], dict[str, Any]]) -> dict[str, Any]:
    """The shared skeleton of every LLM task (see module docstring)."""
    job_id = task.request.id
    client = resources.redis_client()
    result_key = JOB_RESULT.format(job_id=job_id)
    if (done := client.get(result_key)) is not None:
        return json.loads(done)
    try:
        data = schema.model_validate(payload)
    except ValidationError as e:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "payload" for err in e.errors()})
        return failed(job_id, None, f"invalid payload: bad or missing fields {', '.join(fields)}", "InvalidPayload")
    lease = JobLease(client, job_id, settings.TIME_LIMIT + LEASE_MARGIN_SECONDS)
    if not lease.acquire():  # a twin holds the lease: it is running, or died and its lease will lapse
        wait = max(1.0, lease.ttl_left()) + random.uniform(0, 1)
        raise task.retry(countdown=wait, max_retries=task.request.retries + MAX_TWIN_WAITS)
    try:
        if (done := client.get(result_key)) is not None:
            return json.loads(done)
        provider = getattr(data, "provider", None)
        try:
            result = work(data, job_id, task.request.retries)
        except WAIT_ERRORS as err:
            if getattr(err, "retryable", True) and task.request.retries < MAX_RETRIES:
                log.info("job %s waits %s: retrying later", job_id, type(err).__name__)
                raise task.retry(countdown=countdown(err, task.request.retries)) from None
            result = failed(job_id, provider or resources.config().active_provider, err)
        except LLMOrchestratorError as err:
            result = failed(job_id, provider or resources.config().active_provider, err)
        except SoftTimeLimitExceeded:
            if task.request.retries < MAX_RETRIES:
                log.warning("job %s hit the soft time limit: retrying later", job_id)
                raise task.retry(countdown=countdown(TimeoutError(), task.request.retries)) from None
            result = failed(job_id, provider, "the job exceeded its time limit", "TimeLimitExceeded")
        client.set(result_key, json.dumps(result), ex=settings.celery_config()["result_expires"], nx=True)
        return result
    finally:
        lease.release()


# -- completion -------------------------------------------------------------------------------


def _complete(data: CompletionPayload, job_id: str, attempt: int) -> dict[str, Any]:
    orch = resources.orchestrator(data.provider)
    args = {"system": data.system, "model": data.model, "max_tokens": data.max_tokens, "job_id": job_id,
            "attempt": attempt, "tenant": data.tenant}
    if not data.stream:
        r = orch.send_request(data.prompt, **args)
    else:
        r = _relay_stream(orch.send_streaming_request(data.prompt, **args), job_id)
    result = succeeded(job_id, r.provider, r.model, [r], content=r.content, finish_reason=r.finish_reason,
                       latency_ms=r.latency_ms, request_id=r.request_id, attempts=r.attempts)
    if data.stream:
        _stream_append(job_id, {"result": json.dumps(result)})
    return result


def _stream_append(job_id: str, fields: dict[str, str]) -> None:
    client = resources.redis_client()
    key = JOB_STREAM.format(job_id=job_id)
    client.xadd(key, fields, maxlen=10_000, approximate=True)
    client.expire(key, STREAM_TTL_SECONDS)


def _relay_stream(chunks: Any, job_id: str) -> Any:
    """Copy each chunk to the job's Redis Stream; return the final LLMResponse."""
    for chunk in chunks:
        if chunk.text:
            _stream_append(job_id, {"text": chunk.text})
        if chunk.done:
            return chunk.response
    raise RuntimeError("stream ended without a final chunk")  # adapters guarantee one; a bug otherwise


@celery_app.task(name="llm.complete", **TASK_OPTIONS)
def complete(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one completion job. Payload: see ``tasks.payloads.CompletionPayload``."""
    return run_job(self, payload, CompletionPayload, _complete)


# -- classification ---------------------------------------------------------------------------


def classify_one(data: SignalPayload, job_id: str, attempt: int) -> tuple[dict[str, Any], Any]:
    """Classify one signal (see ``classify_signal``). Returns (answer fields, LLMResponse or None)."""
    orch = resources.orchestrator(data.provider)
    result = classify_signal(orch, data.text, signal_id=data.id, job_id=job_id, attempt=attempt, tenant=data.tenant)
    return result.answer(), result.response


def _classify(data: SignalPayload, job_id: str, attempt: int) -> dict[str, Any]:
    answer, r = classify_one(data, job_id, attempt)
    provider = r.provider if r else data.provider or resources.config().active_provider
    return succeeded(job_id, provider, r.model if r else None, [r] if r else [], **answer)


def _classify_batch(data: BatchPayload, job_id: str, attempt: int) -> dict[str, Any]:
    answers, responses = [], []
    for i, signal in enumerate(data.signals):
        item = signal.model_copy(update={"provider": signal.provider or data.provider,
                                         "tenant": signal.tenant or data.tenant, "id": signal.id or str(i)})
        answer, r = classify_one(item, f"{job_id}:{i}", attempt)  # one ledger row per signal call
        answers.append(answer)
        if r is not None:
            responses.append(r)
    provider = responses[0].provider if responses else data.provider or resources.config().active_provider
    return succeeded(job_id, provider, responses[-1].model if responses else None, responses, results=answers)


@celery_app.task(name="llm.classify", **TASK_OPTIONS)
def classify(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Classify one product signal. Payload: see ``tasks.payloads.SignalPayload``."""
    return run_job(self, payload, SignalPayload, _classify)


@celery_app.task(name="llm.classify_batch", **TASK_OPTIONS)
def classify_batch(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Classify many signals (one call per signal for now). Payload: ``BatchPayload``."""
    return run_job(self, payload, BatchPayload, _classify_batch)


@celery_app.task(name="llm.noop", bind=True, acks_late=True)
def noop(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Does nothing: the baseline for the throughput benchmark."""
    return {"job_id": self.request.id, "status": "succeeded"}
