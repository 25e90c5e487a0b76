"""A small web app that enqueues LLM jobs and relays a streaming job as Server-Sent Events.

Run: pip install -e ".[worker,examples]"; start a worker; then
    uvicorn examples.webapp:app --port 8000
It imports only the producer API (no task code, no SDKs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from worker.producer import JobHandle, stream_job, submit_classification, submit_completion

app = FastAPI(title="llm-orchestrator example")


class CompletionIn(BaseModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    provider: str | None = None
    stream: bool = False


class SignalIn(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)
    id: str | None = None


@app.post("/jobs/completion")
def enqueue_completion(body: CompletionIn) -> dict[str, str]:
    return {"job_id": submit_completion(body.prompt, provider=body.provider, stream=body.stream).id}


@app.post("/jobs/classification")
def enqueue_classification(body: SignalIn) -> dict[str, str]:
    return {"job_id": submit_classification(body.text, signal_id=body.id).id}


@app.get("/jobs/{job_id}")
def job_status(job_id: str) -> dict:
    handle = JobHandle(job_id)
    status = handle.status
    if status != "SUCCESS":
        return {"job_id": job_id, "state": status}
    return {"job_id": job_id, "state": status, "result": handle.get(timeout=1)}


@app.get("/jobs/{job_id}/stream")
def job_stream(job_id: str) -> StreamingResponse:
    """Relay a streaming completion job: `data:` events with text, then an `event: result`."""

    def events() -> Iterator[str]:
        for item in stream_job(job_id, timeout=60):
            if isinstance(item, dict):
                yield f"event: result\ndata: {json.dumps(item)}\n\n"
            else:
                yield f"data: {json.dumps(item)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
