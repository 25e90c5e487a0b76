"""The producer API for web apps and scripts. Imports no task code: jobs are sent by name.

    from worker.producer import submit_completion, submit_classification
    job = submit_completion("Summarise ...", tenant="acme")
    result = job.get(timeout=60)          # the job result dict

Arguments shown in Flower and logs are redacted (`argsrepr`/`kwargsrepr`): a length and a short
hash instead of prompt or signal text.

Jobs are sent with ``ignore_result``: the worker stores a job's result once, in the job's own
result key, which :class:`JobHandle` reads (not a second copy in Celery's result backend). With
the broker down (Redis, or RabbitMQ: connection refused), ``submit_*`` raises
:class:`BrokerUnavailableError` within about a second (no connection to the result backend is
attempted); the same process submits again once the broker is back. On RabbitMQ every publish
waits for the broker's confirm: a message the broker refuses (nack: a queue length limit) raises
the same error at once, and one it does not confirm within ``CONFIRM_TIMEOUT_SECONDS`` (a
resource alarm blocks publishers, or the link is dead) raises it after the retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError

from llm_orchestrator.redis_client import is_cluster, unreachable_errors
from worker import outbox, settings
from worker.app import celery_app
from worker.keys import IDEMPOTENCY, JOB_RESULT, JOB_STREAM, OUTBOX_OPEN

log = logging.getLogger(__name__)
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c9c5e-9b7e-4d1a-9a55-1d0f6f3f7a10")
# A publish that cannot reach the broker fails after about a second, instead of Celery's default retries.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}
# RabbitMQ: how long one publish waits for the broker's confirm (each of the PUBLISH_RETRY tries).
CONFIRM_TIMEOUT_SECONDS = 5
DEFAULT_PORTS = {settings.REDIS: 6379, settings.AMQP: 5672}


class BrokerUnavailableError(ConnectionError):
    """The broker (Redis or RabbitMQ) cannot be reached or refused the message: nothing was recorded.
    Safe to submit again later (with the same idempotency key, a message that did arrive runs once)."""


STREAM_BLOCK_MS = 1000
POLL_FIRST_SECONDS = 0.01  # JobHandle.get polls the result key, backing off to POLL_MAX_SECONDS
POLL_MAX_SECONDS = 0.25
FINAL_STATES = ("FAILURE", "REVOKED")


_client: dict[str, Any] = {}


def _redis() -> Any:
    """The state Redis client on REDIS_URL, a cluster client with REDIS_CLUSTER=1 (created on first use)."""
    if "client" not in _client:
        from llm_orchestrator.redis_client import build

        _client["client"] = build(
            settings.redis_url(), cluster=settings.redis_cluster(), socket_connect_timeout=5, socket_timeout=30
        )
    return _client["client"]


def _celery_state(job_id: str) -> str:
    """Celery's state of the job: a hint only; PENDING without a result backend (on a Redis Cluster)."""
    from celery.backends.base import DisabledBackend

    if isinstance(celery_app.backend, DisabledBackend):
        return "PENDING"
    return str(celery_app.AsyncResult(job_id).state)


class JobHandle:
    """A submitted job: ``.id``, ``.status`` and ``.get(timeout)``.

    The job's result is its result key (written once, by the worker that finished it). Celery's
    own state is only a hint: a message Celery marked REVOKED or FAILURE while Redis restarted may
    still run, when the outbox holds the job open and re-sends it, so such a job reads as pending
    until its result exists or the outbox lets it go.
    """

    def __init__(self, job_id: str) -> None:
        self.id = job_id

    @property
    def status(self) -> str:
        """SUCCESS once the job has its result dict (read its ``status``), else Celery's state
        (PENDING, STARTED, RETRY); PENDING where Celery says FAILURE/REVOKED but the job will still run."""
        raw, still_open = self._peek()
        if raw is not None:
            return "SUCCESS"
        state = _celery_state(self.id)
        return "PENDING" if state in FINAL_STATES and still_open else state

    def get(self, timeout: float | None = 60) -> dict[str, Any]:
        """Wait for the result dict. A task Celery ended without one gives a ``failed`` dict.

        Raises:
            celery.exceptions.TimeoutError: not finished within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST_SECONDS
        while True:
            raw, still_open = self._peek()
            if raw is not None:
                return json.loads(raw)
            state = _celery_state(self.id)
            if state in FINAL_STATES and not still_open:  # Celery ended it and nothing will send it again
                return {
                    "job_id": self.id,
                    "status": "failed",
                    "provider": None,
                    "model": None,
                    "cost": {"usd": "0"},
                    "error": {"type": state.title(), "message": f"the task ended {state} without a result"},
                }
            if deadline is not None and time.monotonic() >= deadline:
                raise CeleryTimeoutError(f"job {self.id} has no result after {timeout} s (state {state})")
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(POLL_MAX_SECONDS, delay * 1.5)

    def _peek(self) -> tuple[bytes | None, bool]:
        """(the result JSON or None, whether the outbox still holds the job open) in one round trip."""
        pipe = _redis().pipeline(transaction=False)
        pipe.get(JOB_RESULT.format(job_id=self.id))
        pipe.zscore(OUTBOX_OPEN, self.id)
        raw, opened = pipe.execute()
        return raw, opened is not None


def _describe(kind: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"<{kind}: {len(text)} chars, sha256 {digest}>"


def _send(
    task: str, payload: dict[str, Any], summary: str, idempotency_key: str | None, queue: str | None
) -> JobHandle:
    from kombu.exceptions import OperationalError

    job_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key)) if idempotency_key else str(uuid.uuid4())
    key = IDEMPOTENCY.format(key=hashlib.sha256(idempotency_key.encode()).hexdigest()) if idempotency_key else None
    try:
        if key and _redis().exists(key):
            return JobHandle(job_id)  # already submitted: same job, no second message
        # Publish first, remember after: a failed publish must leave nothing that says "sent". Two
        # producers racing here both publish the same job id; the worker's lease and done marker run
        # it once. The outbox record lets the sweeper re-send a message the broker lost.
        publish(job_id, task, payload, queue, summary)
    except (OperationalError, *unreachable_errors()) as e:
        raise BrokerUnavailableError(_unavailable(e)) from None
    client = _redis()
    pipe = client.pipeline()
    if key:
        pipe.set(key, job_id, ex=86400)
    outbox.record(pipe, job_id, task, payload, queue, summary, cluster=is_cluster(client))
    try:
        pipe.execute()
    except unreachable_errors() as e:  # sent, but not remembered: say so, return it
        log.warning(
            "job %s was sent but its outbox record could not be written (%s): if the broker loses "
            "its message, nothing will re-send it",
            job_id,
            type(e).__name__,
        )
    return JobHandle(job_id)


def publish(job_id: str, task: str, payload: dict[str, Any], queue: str | None, summary: str) -> None:
    """Send one job message (also used by the outbox sweeper to re-send a lost one)."""
    options: dict[str, Any] = {
        "task_id": job_id,
        "argsrepr": "()",
        "kwargsrepr": f"{{'payload': '{summary}'}}",
        "ignore_result": True,
        "retry_policy": PUBLISH_RETRY,
    }
    if queue:
        options["queue"] = queue
    if settings.broker_kind(celery_app.conf.broker_url) == settings.AMQP:
        options["confirm_timeout"] = CONFIRM_TIMEOUT_SECONDS
    celery_app.send_task(task, kwargs={"payload": payload}, **options)


def _unavailable(e: Exception) -> str:
    """The BrokerUnavailableError message for a failed submit: RabbitMQ's nack and confirm timeout named,
    and, with an amqp broker, a Redis error blamed on Redis (the job state), not on the broker."""
    from amqp.exceptions import MessageNacked

    amqp = settings.broker_kind(celery_app.conf.broker_url) == settings.AMQP
    if amqp and isinstance(e, unreachable_errors()):
        return (
            f"Redis (job state) at {_where(settings.redis_url())} is unreachable ({type(e).__name__}); nothing was sent"
        )
    cause = e.__cause__ or e.__context__
    if isinstance(cause, MessageNacked):
        return (
            f"the broker at {_where()} refused the message (nack: a queue length limit or an unavailable "
            "queue); nothing was recorded"
        )
    if isinstance(cause, TimeoutError) and amqp:
        return (
            f"the broker at {_where()} did not confirm the message within {CONFIRM_TIMEOUT_SECONDS} s (a "
            "resource alarm blocks publishers, or the connection is dead); nothing was recorded, the "
            "message may still arrive: submit again with the same idempotency key"
        )
    return f"the broker at {_where()} is unreachable ({type(e).__name__}); nothing was sent"


def _where(url: str | None = None) -> str:
    """``url`` (default: the broker's) without credentials or path (for error messages)."""
    from urllib.parse import urlsplit

    url = url or celery_app.conf.broker_url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or DEFAULT_PORTS[settings.broker_kind(url)]}"


def submit_completion(
    prompt: str,
    *,
    system: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    max_tokens: int = 256,
    tenant: str | None = None,
    idempotency_key: str | None = None,
    stream: bool = False,
    queue: str | None = None,
) -> JobHandle:
    """Enqueue an ``llm.complete`` job (one ``send_request`` in a worker). Arguments are checked by the worker.

    Args:
        prompt: the user message.
        system: a system prompt, or None.
        provider: a configured provider to use instead of the active one (it needs a ``default_model``).
        model: start the provider's chain at this model.
        max_tokens: the answer's length limit in tokens (1 to 64,000).
        tenant: the tenant whose limits and budgets apply.
        idempotency_key: a key sent again within 24 hours returns the same job and sends nothing.
        stream: also relay the answer's chunks; read them with :func:`stream_job`.
        queue: a queue instead of the task's route (``llm.interactive``).

    Returns:
        The job's handle (its id is derived from ``idempotency_key`` when given).

    Raises:
        BrokerUnavailableError: the broker (or Redis) is unreachable or refused the message; safe to retry.
    """
    payload = {
        "prompt": prompt,
        "system": system,
        "provider": provider,
        "model": model,
        "max_tokens": max_tokens,
        "tenant": tenant,
        "stream": stream,
    }
    return _send("llm.complete", payload, _describe("prompt", prompt), idempotency_key, queue)


def submit_classification(
    text: str,
    *,
    signal_id: str | None = None,
    provider: str | None = None,
    tenant: str | None = None,
    idempotency_key: str | None = None,
    queue: str | None = None,
) -> JobHandle:
    """Enqueue an ``llm.classify`` job for one product signal. Arguments are checked by the worker.

    Args:
        text: the signal's text.
        signal_id: an id echoed in the result, or None.
        provider: a configured provider to use instead of the active one (it needs a ``default_model``).
        tenant: the tenant whose limits and budgets apply.
        idempotency_key: a key sent again within 24 hours returns the same job and sends nothing.
        queue: a queue instead of the task's route (``llm.interactive``).

    Returns:
        The job's handle.

    Raises:
        BrokerUnavailableError: the broker (or Redis) is unreachable or refused the message; safe to retry.
    """
    payload = {"text": text, "id": signal_id, "provider": provider, "tenant": tenant}
    return _send("llm.classify", payload, _describe("signal", text), idempotency_key, queue)


def submit_classification_batch(
    signals: list[dict[str, Any]],
    *,
    provider: str | None = None,
    tenant: str | None = None,
    lane: str = "live",
    idempotency_key: str | None = None,
    queue: str | None = None,
) -> JobHandle:
    """Enqueue an ``llm.classify_batch`` job for many signals. Arguments are checked by the worker.

    ``lane="batch"`` sends the model calls through the provider's batch API (half price; the job
    finishes when the provider's batches do, minutes to hours).

    Args:
        signals: up to 1,000 ``{"text": ..., "id": ...}`` dicts (``id`` optional).
        provider: a configured provider to use instead of the active one (it needs a ``default_model``).
        tenant: the tenant whose limits and budgets apply.
        lane: ``"live"`` (normal calls) or ``"batch"`` (the provider's batch API).
        idempotency_key: a key sent again within 24 hours returns the same job and sends nothing.
        queue: a queue instead of the task's route (``llm.batch``).

    Returns:
        The job's handle.

    Raises:
        BrokerUnavailableError: the broker (or Redis) is unreachable or refused the message; safe to retry.
    """
    payload = {"signals": signals, "provider": provider, "tenant": tenant, "lane": lane}
    return _send("llm.classify_batch", payload, f"<{len(signals)} signals>", idempotency_key, queue)


def stream_job(job_id: str, timeout: float = 60) -> Iterator[str | dict[str, Any]]:
    """Yield a streaming job's text chunks as they arrive, then its result dict.

    Reads the job's Redis stream from its start, so chunks written before the call are yielded too.

    Args:
        job_id: the id of a job submitted with ``stream=True``.
        timeout: seconds without new data before giving up.

    Yields:
        Each text chunk (``str``), then the result dict of the succeeded job, then stops.

    Raises:
        TimeoutError: nothing new arrived for ``timeout`` seconds. A failed job ends this way (it writes
            no result to the stream): read its result with ``JobHandle.get()``.
    """
    key = JOB_STREAM.format(job_id=job_id)
    last_id: bytes | str = "0-0"
    idle_since = time.monotonic()
    while True:
        entries = _redis().xread({key: last_id}, block=STREAM_BLOCK_MS, count=100)
        if not entries:
            if time.monotonic() - idle_since > timeout:
                raise TimeoutError(f"no stream data for job {job_id} within {timeout}s")
            continue
        idle_since = time.monotonic()
        for entry_id, fields in entries[0][1]:
            last_id = entry_id
            if b"result" in fields:
                yield json.loads(fields[b"result"])
                return
            yield fields[b"text"].decode()
