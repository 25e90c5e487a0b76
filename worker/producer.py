"""The producer API for web apps and scripts. Imports no task code: jobs are sent by name.

    from worker.producer import submit_completion, submit_classification
    job = submit_completion("Summarise ...", tenant="acme")
    result = job.get(timeout=60)          # the job result dict

Arguments shown in Flower and logs are redacted (`argsrepr`/`kwargsrepr`): a length and a short
hash instead of prompt or signal text.

Jobs are sent with ``ignore_result``: the worker stores a job's result once, in the job's own
result key, which :class:`JobHandle` reads (not a second copy in Celery's result backend). With
Redis down, ``submit_*`` raises :class:`BrokerUnavailableError` within about a second (no
connection to the result backend is attempted); the same process submits again once Redis is back.
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

from worker import outbox, settings
from worker.app import celery_app
from worker.keys import IDEMPOTENCY, JOB_RESULT, JOB_STREAM, OUTBOX_OPEN

log = logging.getLogger(__name__)
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c9c5e-9b7e-4d1a-9a55-1d0f6f3f7a10")
# A publish that cannot reach Redis fails after about a second, instead of Celery's default retries.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


class BrokerUnavailableError(ConnectionError):
    """The broker (Redis) cannot be reached: nothing was sent. Safe to submit again later."""
STREAM_BLOCK_MS = 1000
POLL_FIRST_SECONDS = 0.01  # JobHandle.get polls the result key, backing off to POLL_MAX_SECONDS
POLL_MAX_SECONDS = 0.25
FINAL_STATES = ("FAILURE", "REVOKED")


_client: dict[str, Any] = {}


def _redis() -> Any:
    """A plain Redis client on REDIS_URL (created on first use, not at import)."""
    if "client" not in _client:
        import redis

        _client["client"] = redis.Redis.from_url(settings.redis_url(), socket_connect_timeout=5, socket_timeout=30)
    return _client["client"]


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
    def _async(self) -> Any:
        return celery_app.AsyncResult(self.id)

    @property
    def status(self) -> str:
        """SUCCESS once the job has its result dict (read its ``status``), else Celery's state
        (PENDING, STARTED, RETRY); PENDING where Celery says FAILURE/REVOKED but the job will still run."""
        raw, still_open = self._peek()
        if raw is not None:
            return "SUCCESS"
        state = self._async.state
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
            state = self._async.state
            if state in FINAL_STATES and not still_open:  # Celery ended it and nothing will send it again
                return {"job_id": self.id, "status": "failed", "provider": None, "model": None, "cost": {"usd": "0"},
                        "error": {"type": state.title(), "message": f"the task ended {state} without a result"}}
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


def _send(task: str, payload: dict[str, Any], summary: str, idempotency_key: str | None,
          queue: str | None) -> JobHandle:
    import redis
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
    except (OperationalError, redis.ConnectionError, redis.TimeoutError) as e:
        raise BrokerUnavailableError(f"the broker at {_where()} is unreachable ({type(e).__name__}); "
                                     "nothing was sent") from None
    pipe = _redis().pipeline()
    if key:
        pipe.set(key, job_id, ex=86400)
    outbox.record(pipe, job_id, task, payload, queue, summary)
    try:
        pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError) as e:  # sent, but not remembered: say so, return it
        log.warning("job %s was sent but its outbox record could not be written (%s): if the broker loses "
                    "its message, nothing will re-send it", job_id, type(e).__name__)
    return JobHandle(job_id)


def publish(job_id: str, task: str, payload: dict[str, Any], queue: str | None, summary: str) -> None:
    """Send one job message (also used by the outbox sweeper to re-send a lost one)."""
    options: dict[str, Any] = {"task_id": job_id, "argsrepr": "()", "kwargsrepr": f"{{'payload': '{summary}'}}",
                               "ignore_result": True, "retry_policy": PUBLISH_RETRY}
    if queue:
        options["queue"] = queue
    celery_app.send_task(task, kwargs={"payload": payload}, **options)


def _where() -> str:
    """The broker URL without credentials (for error messages)."""
    from urllib.parse import urlsplit

    parts = urlsplit(settings.redis_url())
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"


def submit_completion(prompt: str, *, system: str | None = None, provider: str | None = None,
                      model: str | None = None, max_tokens: int = 256, tenant: str | None = None,
                      idempotency_key: str | None = None, stream: bool = False, queue: str | None = None) -> JobHandle:
    """Enqueue ``llm.complete``. With ``stream=True`` read chunks with :func:`stream_job`."""
    payload = {"prompt": prompt, "system": system, "provider": provider, "model": model, "max_tokens": max_tokens,
               "tenant": tenant, "stream": stream}
    return _send("llm.complete", payload, _describe("prompt", prompt), idempotency_key, queue)


def submit_classification(text: str, *, signal_id: str | None = None, provider: str | None = None,
                          tenant: str | None = None, idempotency_key: str | None = None,
                          queue: str | None = None) -> JobHandle:
    """Enqueue ``llm.classify`` for one product signal."""
    payload = {"text": text, "id": signal_id, "provider": provider, "tenant": tenant}
    return _send("llm.classify", payload, _describe("signal", text), idempotency_key, queue)


def submit_classification_batch(signals: list[dict[str, Any]], *, provider: str | None = None,
                                 tenant: str | None = None, lane: str = "live", idempotency_key: str | None = None,
                                 queue: str | None = None) -> JobHandle:
    """Enqueue ``llm.classify_batch``: ``signals`` is a list of ``{"text": ..., "id": ...}``.

    ``lane="batch"`` sends the model calls through the provider's batch API (half price; the job
    finishes when the provider's batches do, minutes to hours).
    """
    payload = {"signals": signals, "provider": provider, "tenant": tenant, "lane": lane}
    return _send("llm.classify_batch", payload, f"<{len(signals)} signals>", idempotency_key, queue)


def stream_job(job_id: str, timeout: float = 60) -> Iterator[str | dict[str, Any]]:
    """Yield a streaming job's text chunks as they arrive, then its result dict.

    Raises:
        TimeoutError: nothing new arrived for ``timeout`` seconds.
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
