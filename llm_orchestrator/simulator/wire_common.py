"""Helpers shared by the three wire modules: SSE framing, auth, outcome bookkeeping."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from llm_orchestrator.simulator.engine import Failure, Reply, hold_for_timeout
from llm_orchestrator.simulator.state import SimState

STREAM_BREAKS = ("midstream_error", "malformed")  # faults a stream shows after some chunks
MALFORMED_BODY = b'{"id": "broken", "choices": [ {"message": '  # invalid JSON on purpose


def bad_key(key: str | None) -> bool:
    """Missing keys and keys containing 'invalid' are rejected with 401."""
    return not key or "invalid" in key


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


async def json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def retry_headers(failure: Failure) -> dict[str, str]:
    """``retry-after`` in whole seconds (rounded up, as the real APIs send it); ``retry-after-ms``
    only when a fault asks for it (the OpenAI SDK reads it first)."""
    headers: dict[str, str] = {}
    if failure.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(failure.retry_after)))
    if failure.retry_after_ms is not None:
        headers["retry-after-ms"] = str(failure.retry_after_ms)
    return headers


def sse(events: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers})


def data_line(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n").encode()


async def non_stream_failure(
    request: Request, provider: str, model: str, failure: Failure, error_response: Callable[[Failure], Response]
) -> Response:
    """Render a failure that happens before any answer (status, timeout, malformed)."""
    state: SimState = request.app.state.sim
    if failure.kind == "timeout":
        state.record(provider, model, "timeout")
        await hold_for_timeout(request.is_disconnected)
        return JSONResponse({"error": "timeout"}, status_code=504)
    if failure.kind == "malformed":
        state.record(provider, model, "malformed")
        return Response(MALFORMED_BODY, media_type="application/json")
    state.record(provider, model, failure.status)
    return error_response(failure)


def record_reply(state: SimState, provider: str, model: str, reply: Reply) -> None:
    state.record(provider, model, 200, reply.usage)
