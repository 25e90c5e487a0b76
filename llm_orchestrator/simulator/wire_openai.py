"""OpenAI wire format: ``/openai/v1/chat/completions`` (JSON and SSE) and ``/openai/v1/models``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator import responder
from llm_orchestrator.simulator.engine import Call, Failure, Reply, answer_for, new_request_id, process
from llm_orchestrator.simulator.state import SimState
from llm_orchestrator.simulator.wire_common import (
    MALFORMED_BODY, STREAM_BREAKS, bad_key, bearer, data_line, json_body, non_stream_failure, record_reply, retry_headers, sse,
)

PROVIDER = "openai"
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
               404: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
FINISH = {"stop": "stop", "length": "length", "refusal": "content_filter"}
CREATED = 1763800000


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    err_type = "insufficient_quota" if code == "insufficient_quota" else ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def error(status: int, message: str, request_id: str, code: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code), status_code=status,
                        headers={"x-request-id": request_id, **(headers or {})})


def failure_message(failure: Failure) -> str:
    messages = {404: "The model does not exist or you do not have access to it.",
                429: "You exceeded your current quota." if failure.code == "insufficient_quota" else "Rate limit reached.",
                401: "Incorrect API key provided."}
    return messages.get(failure.status, "The server had an error.")


def _failure_response(failure: Failure) -> JSONResponse:
    return error(failure.status, failure_message(failure), failure.request_id, failure.code, retry_headers(failure))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_write_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0}}


async def chat_completions(request: Request) -> Response:
    state: SimState = request.app.state.sim
    request_id = new_request_id("req_")
    if bad_key(bearer(request)):
        return error(401, "Incorrect API key provided.", request_id, "invalid_api_key")
    body = await json_body(request)
    call = parse_call(body)
    if isinstance(call, str):
        return error(400, call, request_id)
    model = call.model
    outcome = await process(state, call, request_id)
    if not call.stream:
        if isinstance(outcome, Failure):
            return await non_stream_failure(request, PROVIDER, model, outcome, _failure_response)
        record_reply(state, PROVIDER, model, outcome)
        return JSONResponse(completion(outcome, model), headers={"x-request-id": request_id})
    if isinstance(outcome, Failure) and outcome.kind not in STREAM_BREAKS:
        return await non_stream_failure(request, PROVIDER, model, outcome, _failure_response)
    include_usage = bool(((body or {}).get("stream_options") or {}).get("include_usage"))
    return sse(_events(state, call, outcome, include_usage), {"x-request-id": request_id})


def parse_call(body: dict[str, Any] | None) -> Call | str:
    """A chat-completions body as a :class:`Call`, or the 400 message saying what is wrong."""
    if body is None or not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        return "Invalid body: 'model' and 'messages' are required."
    messages = body["messages"]
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    prompt = "\n".join(_text(m.get("content")) for m in messages if m.get("role") not in ("system", "developer"))
    return Call(PROVIDER, body["model"], system, prompt, len(messages),
                body.get("max_completion_tokens") or body.get("max_tokens"), bool(body.get("stream")))


def completion(reply: Reply, model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-" + reply.request_id[4:], "object": "chat.completion", "created": CREATED,
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                         "finish_reason": FINISH[reply.finish]}],
            "usage": _usage(reply)}


async def _events(state: SimState, call: Call, outcome: Reply | Failure, include_usage: bool) -> AsyncIterator[bytes]:
    reply = outcome if isinstance(outcome, Reply) else answer_for(state, call, outcome.request_id)
    base = {"id": "chatcmpl-" + reply.request_id[4:], "object": "chat.completion.chunk", "created": CREATED,
            "model": call.model}
    extra = {"usage": None} if include_usage else {}
    yield data_line({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}], **extra})
    for i, piece in enumerate(responder.pieces(reply.text)):
        if isinstance(outcome, Failure) and i >= outcome.after_chunks:
            if outcome.kind == "malformed":
                yield b"data: " + MALFORMED_BODY + b"\n\n"
            else:
                yield data_line({"error": {"message": "The server had an error while streaming.",
                                           "type": "server_error", "code": None}})
            state.record(call.provider, call.model, outcome.kind)  # type: ignore[arg-type]
            return
        yield data_line({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                         **extra})
    yield data_line({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": FINISH[reply.finish]}], **extra})
    if include_usage:
        yield data_line({**base, "choices": [], "usage": _usage(reply)})
    yield b"data: [DONE]\n\n"
    record_reply(state, call.provider, call.model, reply)


def _model(model_id: str) -> dict[str, Any]:
    owner = "acme" if model_id.startswith("ft:") else "system"
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owner}


async def list_models(request: Request) -> Response:
    if bad_key(bearer(request)):
        return error(401, "Incorrect API key provided.", new_request_id("req_"), "invalid_api_key")
    models = request.app.state.sim.list_models(PROVIDER)
    return JSONResponse({"object": "list", "data": [_model(m) for m in models]})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model"]
    if model_id not in request.app.state.sim.list_models(PROVIDER):
        return error(404, f"The model '{model_id}' does not exist", new_request_id("req_"), "model_not_found")
    return JSONResponse(_model(model_id))


ROUTES = [
    Route("/openai/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/openai/v1/models", list_models, methods=["GET"]),
    Route("/openai/v1/models/{model:path}", get_model, methods=["GET"]),
]
