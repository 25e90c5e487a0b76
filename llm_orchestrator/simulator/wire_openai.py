"""OpenAI wire format: ``/openai/v1/chat/completions`` (JSON and SSE) and ``/openai/v1/models``.

Bodies follow the official OpenAPI spec (``tests/conformance/openai_openapi_subset.json``, checked
by ``tests/test_conformance_openai.py``): ``choices[].logprobs`` and ``message.refusal`` are always
present (null when absent); a refusal is ``finish_reason: "stop"`` with ``message.refusal`` set and
``content: null`` (``content_filter`` means content was omitted by a filter). A 429 from the rate
limit says which budget ran out (``type``: ``requests``/``tokens``, ``code``:
``rate_limit_exceeded``) and "Please try again in 2.844s" in its message.
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

PROVIDER = "openai"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}
FINISH = {"stop": "stop", "length": "length", "refusal": "stop"}  # a refusal in words is a natural stop
CREATED = 1763800000
SYSTEM_FINGERPRINT = "fp_simulator"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
LIMIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


def error_body(status: int, message: str, code: str | None = None, err_type: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": err_type or ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }


def error(
    status: int,
    message: str,
    request_id: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    err_type: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, code, err_type),
        status_code=status,
        headers={"x-request-id": request_id, **(headers or {})},
    )


def failure_body(failure: Failure, model: str) -> dict[str, Any]:
    """The error body of a failed call, as the real API words it."""
    if failure.status == 429 and failure.code == "insufficient_quota":
        return error_body(429, QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota")
    if failure.status == 429:
        wait = failure.retry_after if failure.retry_after is not None else 1.0
        message = (
            f"Rate limit reached for {model} in organization org-simulator on "
            f"{LIMIT_NAMES[failure.limit_type]}. Please try again in {_duration(wait)}. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        return error_body(429, message, failure.code or "rate_limit_exceeded", failure.limit_type)
    if failure.status == 404:
        return error_body(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            failure.code or "model_not_found",
        )
    if failure.status == 401:
        return error_body(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            failure.code or "invalid_api_key",
        )
    if failure.status >= 500:
        return error_body(
            failure.status, "The server had an error while processing your request. Sorry about that!", failure.code
        )
    return error_body(failure.status, "Simulated error.", failure.code)


def _duration(seconds: float) -> str:
    """OpenAI's wording of a wait: ``2.844s``, ``120ms``."""
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _failure_response(failure: Failure, model: str) -> JSONResponse:
    return JSONResponse(
        failure_body(failure, model),
        status_code=failure.status,
        headers={"x-request-id": failure.request_id, **retry_headers(failure)},
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "audio_tokens": 0,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


async def chat_completions(request: Request) -> Response:
    state: SimState = request.app.state.sim
    request_id = new_request_id("req_")
    if bad_key(bearer(request)):
        return error(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            request_id,
            "invalid_api_key",
        )
    body = await json_body(request)
    call = parse_call(body)
    if isinstance(call, str):
        return error(400, call, request_id)
    model = call.model
    request.state.sim_model = model  # for the rate-limit headers (middleware)
    outcome = await process(state, call, request_id)

    def failure_response(failure: Failure) -> JSONResponse:
        return _failure_response(failure, model)

    if not call.stream:
        if isinstance(outcome, Failure):
            return await non_stream_failure(request, PROVIDER, model, outcome, failure_response)
        record_reply(state, PROVIDER, model, outcome)
        return JSONResponse(completion(outcome), headers={"x-request-id": request_id})
    if isinstance(outcome, Failure) and outcome.kind not in STREAM_BREAKS:
        return await non_stream_failure(request, PROVIDER, model, outcome, failure_response)
    include_usage = bool(((body or {}).get("stream_options") or {}).get("include_usage"))
    return sse(_events(state, call, outcome, include_usage), {"x-request-id": request_id})


def parse_call(body: dict[str, Any] | None) -> Call | str:
    """A chat-completions body as a :class:`Call`, or the 400 message saying what is wrong."""
    if body is None or not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        return "Invalid body: 'model' and 'messages' are required."
    messages = body["messages"]
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    prompt = "\n".join(_text(m.get("content")) for m in messages if m.get("role") not in ("system", "developer"))
    return Call(
        PROVIDER,
        body["model"],
        system,
        prompt,
        len(messages),
        body.get("max_completion_tokens") or body.get("max_tokens"),
        bool(body.get("stream")),
    )


def completion(reply: Reply) -> dict[str, Any]:
    refused = reply.finish == "refusal"
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if refused else reply.text,
        "refusal": reply.text if refused else None,
        "annotations": [],
    }
    return {
        "id": "chatcmpl-" + reply.request_id[4:],
        "object": "chat.completion",
        "created": CREATED,
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[reply.finish]}],
        "usage": _usage(reply),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


async def _events(state: SimState, call: Call, outcome: Reply | Failure, include_usage: bool) -> AsyncIterator[bytes]:
    reply = outcome if isinstance(outcome, Reply) else answer_for(state, call, outcome.request_id)
    base = {
        "id": "chatcmpl-" + reply.request_id[4:],
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": reply.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    extra = {"usage": None} if include_usage else {}
    field = "refusal" if reply.finish == "refusal" else "content"
    yield data_line(
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", field: ""}, "logprobs": None, "finish_reason": None}
            ],
            **extra,
        }
    )
    for i, piece in enumerate(responder.pieces(reply.text)):
        if isinstance(outcome, Failure) and i >= outcome.after_chunks:
            if outcome.kind == "malformed":
                yield b"data: " + MALFORMED_BODY + b"\n\n"
            else:
                yield data_line(
                    {
                        "error": {
                            "message": "The server had an error while streaming.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                )
            state.record(call.provider, call.model, outcome.kind)
            return
        yield data_line(
            {
                **base,
                "choices": [{"index": 0, "delta": {field: piece}, "logprobs": None, "finish_reason": None}],
                **extra,
            }
        )
    yield data_line(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": FINISH[reply.finish]}],
            **extra,
        }
    )
    if include_usage:
        yield data_line({**base, "choices": [], "usage": _usage(reply)})
    yield b"data: [DONE]\n\n"
    record_reply(state, call.provider, call.model, reply)


def _model(model_id: str) -> dict[str, Any]:
    owner = "acme" if model_id.startswith("ft:") else "system"
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owner}


def unauthorised(request: Request) -> Response | None:
    """The 401 for a missing or bad key (every endpoint checks it first)."""
    if bad_key(bearer(request)):
        return error(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            new_request_id("req_"),
            "invalid_api_key",
        )
    return None


async def list_models(request: Request) -> Response:
    if (refused := unauthorised(request)) is not None:
        return refused
    models = request.app.state.sim.list_models(PROVIDER)
    return JSONResponse(
        {"object": "list", "data": [_model(m) for m in models]}, headers={"x-request-id": new_request_id("req_")}
    )


async def get_model(request: Request) -> Response:
    if (refused := unauthorised(request)) is not None:
        return refused
    model_id = request.path_params["model"]
    if model_id not in request.app.state.sim.list_models(PROVIDER):
        return error(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            new_request_id("req_"),
            "model_not_found",
        )
    return JSONResponse(_model(model_id), headers={"x-request-id": new_request_id("req_")})


ROUTES = [
    Route("/openai/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/openai/v1/models", list_models, methods=["GET"]),
    Route("/openai/v1/models/{model:path}", get_model, methods=["GET"]),
]
