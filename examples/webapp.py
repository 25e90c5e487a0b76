"""A small web app that enqueues LLM jobs and relays a streaming job as Server-Sent Events.

Run: pip install -e ".[worker,examples]"; start a worker; then
    uvicorn examples.webapp:app --port 8000
It imports the producer API and the worker's Redis key names (no task code, no SDKs).

Errors: an unknown provider is a 422 (FastAPI's validation error); a job id this Redis has never
seen (not sent, or its result expired) is a 404, for the status and for the stream alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from llm_orchestrator.config.manager import PROVIDERS
from worker import settings
from worker.keys import JOB_LEASE, JOB_RESULT, OUTBOX_OPEN
from worker.producer import JobHandle, stream_job, submit_classification, submit_completion

app = FastAPI(title="llm-orchestrator example")
STREAM_IDLE_SECONDS = 60  # a known job whose stream stays silent this long ends with an error event
CELERY_RESULT = settings.KEY_PREFIX + "celery-task-meta-{job_id}"  # Celery's result key (global_keyprefix)
_client: dict[str, Any] = {}


class CompletionIn(BaseModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    provider: str | None = None
    stream: bool = False

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str | None) -> str | None:
        if v is not None and v not in PROVIDERS:
            raise ValueError(f"unknown provider; expected one of {', '.join(PROVIDERS)}")
        return v


class SignalIn(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)
    id: str | None = None


def _redis() -> Any:
    if "client" not in _client:
        import redis

        _client["client"] = redis.Redis.from_url(settings.redis_url(), socket_connect_timeout=5, socket_timeout=30)
    return _client["client"]


def _require_known(job_id: str) -> None:
    """404 unless ``job_id`` was sent through the producer and is still open or has a result."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise HTTPException(404, "unknown job id") from None
    pipe = _redis().pipeline()
    pipe.exists(JOB_RESULT.format(job_id=job_id), JOB_LEASE.format(job_id=job_id), CELERY_RESULT.format(job_id=job_id))
    pipe.zscore(OUTBOX_OPEN, job_id)
    found, open_since = pipe.execute()
    if not found and open_since is None:
        raise HTTPException(404, "unknown job id")


@app.post("/jobs/completion")
def enqueue_completion(body: CompletionIn) -> dict[str, str]:
    return {"job_id": submit_completion(body.prompt, provider=body.provider, stream=body.stream).id}


@app.post("/jobs/classification")
def enqueue_classification(body: SignalIn) -> dict[str, str]:
    return {"job_id": submit_classification(body.text, signal_id=body.id).id}


@app.get("/jobs/{job_id}")
def job_status(job_id: str) -> dict:
    _require_known(job_id)
    handle = JobHandle(job_id)
    status = handle.status
    if status != "SUCCESS":
        return {"job_id": job_id, "state": status}
    return {"job_id": job_id, "state": status, "result": handle.get(timeout=1)}


@app.get("/jobs/{job_id}/stream")
def job_stream(job_id: str) -> StreamingResponse:
    """Relay a streaming completion job: `data:` events with text, then an `event: result`
    (or an `event: error` when nothing arrives for ``STREAM_IDLE_SECONDS``)."""
    _require_known(job_id)

    def events() -> Iterator[str]:
        try:
            for item in stream_job(job_id, timeout=STREAM_IDLE_SECONDS):
                if isinstance(item, dict):
                    yield f"event: result\ndata: {json.dumps(item)}\n\n"
                else:
                    yield f"data: {json.dumps(item)}\n\n"
        except TimeoutError:
            yield f"event: error\ndata: {json.dumps({'error': 'no stream data', 'seconds': STREAM_IDLE_SECONDS})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
