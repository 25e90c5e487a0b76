"""Anthropic wire format: ``/anthropic/v1/messages`` (JSON and SSE) and ``/anthropic/v1/models``.

Like the 2026-10-21 API: auth by ``Authorization: Bearer`` or ``x-api-key``, the
``anthropic-version`` header is required (and must be a version the API knows), and
``temperature``/``top_p``/``top_k`` are rejected. Every reply carries ``request-id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator import responder
from llm_orchestrator.simulator.engine import Call, Failure, Reply, answer_for, new_request_id, process
from llm_orchestrator.simulator.state import SimState
from llm_orchestrator.simulator.wire_common import (
    MALFORMED_BODY,
    STREAM_BREAKS,
    bad_key,
    bearer,
    data_line,
    json_body,
    non_stream_failure,
    record_reply,
    retry_headers,
    sse,
)

PROVIDER = "anthropic"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STOP = {"stop": "end_turn", "length": "max_tokens", "refusal": "refusal"}
API_VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")  # what the API accepts in anthropic-version
REJECTED_PARAMS = ("temperature", "top_p", "top_k")
CREATED_AT = "2026-10-07T00:00:00Z"
PAGE_SIZE = 2  # the real default is 20; small here so clients must paginate
MAX_PAGE = 1000


def error_body(status: int, message: str, request_id: str, code: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    if code:
        err["details"] = {"error_code": code}
    return {"type": "error", "error": err, "request_id": request_id}


def error(
    status: int, message: str, request_id: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, request_id, code),
        status_code=status,
        headers={"request-id": request_id, **(headers or {})},
    )


def failure_body(failure: Failure, model: str) -> dict[str, Any]:
    """The error body of a failed call, as the real API words it."""
    code = None if failure.code in (None, "rate_limit_exceeded", "model_not_found") else failure.code
    messages = {
        529: "Overloaded",
        404: f"model: {model}",
        500: "Internal server error",
        429: "This request would exceed your organization's rate limit. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
    }
    return error_body(failure.status, messages.get(failure.status, "Error"), failure.request_id, code)


def _failure_response(failure: Failure, model: str) -> JSONResponse:
    return JSONResponse(
        failure_body(failure, model),
        status_code=failure.status,
        headers={"request-id": failure.request_id, **retry_headers(failure)},
    )


def check_headers(request: Request, request_id: str) -> Response | None:
    """401 for a missing/bad key, 400 for a missing or unknown ``anthropic-version``."""
    if bad_key(request.headers.get("x-api-key") or bearer(request)):
        return error(401, "invalid x-api-key", request_id)
    version = request.headers.get("anthropic-version")
    if not version:
        return error(400, "anthropic-version: header is required", request_id)
    if version not in API_VERSIONS:
        return error(400, f"anthropic-version: invalid version {version[:40]!r}", request_id)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _has_cache_control(body: dict[str, Any]) -> bool:
    if body.get("cache_control"):
        return True
    system = body.get("system")
    return isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system)


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    fresh = u.prompt_tokens - u.cached_tokens - u.cache_write_tokens  # Anthropic's input_tokens excludes both
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": u.completion_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


async def messages(request: Request) -> Response:
    state: SimState = request.app.state.sim
    request_id = new_request_id("req_")
    if (refused := check_headers(request, request_id)) is not None:
        return refused
    call = parse_call(await json_body(request))
    if isinstance(call, str):
        return error(400, call, request_id)
    model = call.model
    request.state.sim_model = model  # for the rate-limit headers (middleware)
    outcome = await process(state, call, request_id)
    if isinstance(outcome, Failure) and (not call.stream or outcome.kind not in STREAM_BREAKS):
        return await non_stream_failure(request, PROVIDER, model, outcome, lambda f: _failure_response(f, model))
    if not call.stream:
        record_reply(state, PROVIDER, model, outcome)  # type: ignore[arg-type]
        return JSONResponse(message(outcome), headers={"request-id": request_id})  # type: ignore[arg-type]
    return sse(_events(state, call, outcome), {"request-id": request_id})


def parse_call(body: dict[str, Any] | None) -> Call | str:
    """A Messages body as a :class:`Call`, or the 400 message saying what is wrong."""
    if body is None or not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        return "model and messages are required"
    for param in REJECTED_PARAMS:
        if param in body:
            return f"{param}: Extra inputs are not permitted"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    msgs = body["messages"]
    return Call(
        PROVIDER,
        body["model"],
        _text(body.get("system")),
        "\n".join(_text(m.get("content")) for m in msgs),
        len(msgs) + (1 if body.get("system") else 0),
        body["max_tokens"],
        bool(body.get("stream")),
        cache_requested=_has_cache_control(body),
    )


def message(reply: Reply) -> dict[str, Any]:
    body = {
        "id": "msg_" + reply.request_id[4:],
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": STOP[reply.finish],
        "stop_sequence": None,
        "usage": _usage(reply),
    }
    if reply.finish == "refusal":
        body["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return body


async def _events(state: SimState, call: Call, outcome: Reply | Failure) -> AsyncIterator[bytes]:
    reply = outcome if isinstance(outcome, Reply) else answer_for(state, call, outcome.request_id)
    start = message(reply)
    start.update(content=[], stop_reason=None)
    start["usage"] = {**_usage(reply), "output_tokens": 1}
    yield data_line({"type": "message_start", "message": start}, "message_start")
    yield data_line(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    yield data_line({"type": "ping"}, "ping")
    for i, piece in enumerate(responder.pieces(reply.text)):
        if isinstance(outcome, Failure) and i >= outcome.after_chunks:
            if outcome.kind == "malformed":
                yield b"event: content_block_delta\ndata: " + MALFORMED_BODY + b"\n\n"
            else:
                yield data_line(
                    {
                        "type": "error",
                        "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"},
                        "request_id": reply.request_id,
                    },
                    "error",
                )
            state.record(call.provider, call.model, outcome.kind)
            return
        yield data_line(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            "content_block_delta",
        )
    yield data_line({"type": "content_block_stop", "index": 0}, "content_block_stop")
    usage = _usage(reply)  # message_delta carries the cumulative counts (input and cache too)
    yield data_line(
        {
            "type": "message_delta",
            "delta": {"stop_reason": STOP[reply.finish], "stop_sequence": None},
            "usage": {
                k: usage[k]
                for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
            },
        },
        "message_delta",
    )
    yield data_line({"type": "message_stop"}, "message_stop")
    record_reply(state, call.provider, call.model, reply)


def _model(model_id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": CREATED_AT,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
    }


async def list_models(request: Request) -> Response:
    request_id = new_request_id("req_")
    if (refused := check_headers(request, request_id)) is not None:
        return refused
    models = request.app.state.sim.list_models(PROVIDER)
    after = request.query_params.get("after_id")
    raw_limit = request.query_params.get("limit", str(PAGE_SIZE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        return error(400, f"limit: Input should be an integer from 1 to {MAX_PAGE}", request_id)
    limit = int(raw_limit)
    start = models.index(after) + 1 if after in models else 0
    page = models[start : start + limit]
    return JSONResponse(
        {
            "data": [_model(m) for m in page],
            "has_more": start + limit < len(models),
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        },
        headers={"request-id": request_id},
    )


async def get_model(request: Request) -> Response:
    request_id = new_request_id("req_")
    if (refused := check_headers(request, request_id)) is not None:
        return refused
    model_id = request.path_params["model"]
    if model_id not in request.app.state.sim.list_models(PROVIDER):
        return error(404, f"model: {model_id}", request_id)
    return JSONResponse(_model(model_id), headers={"request-id": request_id})


ROUTES = [
    Route("/anthropic/v1/messages", messages, methods=["POST"]),
    Route("/anthropic/v1/models", list_models, methods=["GET"]),
    Route("/anthropic/v1/models/{model:path}", get_model, methods=["GET"]),
]
