"""Gemini Developer API wire format under ``/gemini/{v1|v1beta|v1alpha}/``.

``models/{m}:generateContent``, ``models/{m}:streamGenerateContent?alt=sse`` (only ``data: ``
lines; an in-stream error is a data line whose first key is ``error`` with a numeric code),
``models`` (paginated), ``models/{m}`` and ``tunedModels``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator import responder
from llm_orchestrator.simulator.engine import Call, Failure, Reply, answer_for, new_request_id, process
from llm_orchestrator.simulator.state import GEMINI_TUNED, SimState
from llm_orchestrator.simulator.wire_common import (
    MALFORMED_BODY, STREAM_BREAKS, bad_key, data_line, json_body, non_stream_failure, record_reply,
    retry_headers, sse,
)

PROVIDER = "gemini"
VERSIONS = ("v1", "v1beta", "v1alpha")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
PAGE_SIZE = 2  # the real default is 50; small here so clients must paginate
EMBEDDING_ONLY = ("text-embedding",)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
    return JSONResponse(body, status_code=status, headers=headers or {})


def _failure_response(failure: Failure) -> JSONResponse:
    return error(failure.status, "Simulated failure.", retry_headers(failure))


def _key(request: Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query_params.get("key")


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    usage = {"promptTokenCount": u.prompt_tokens, "candidatesTokenCount": u.completion_tokens,
             "totalTokenCount": u.prompt_tokens + u.completion_tokens}
    if u.cached_tokens:
        usage["cachedContentTokenCount"] = u.cached_tokens
    return usage


def parse_call(model: str, body: dict[str, Any] | None, stream: bool) -> Call | str:
    """A GenerateContentRequest body as a :class:`Call`, or the 400 message saying what is wrong."""
    if body is None or not isinstance(body.get("contents"), list):
        return "Invalid JSON payload: contents is required."
    contents = body["contents"]
    system = _text((body.get("systemInstruction") or body.get("system_instruction") or {}).get("parts"))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = config.get("maxOutputTokens") or config.get("max_output_tokens")
    return Call(PROVIDER, model, system, "\n".join(_text(c.get("parts")) for c in contents),
                len(contents), max_tokens, stream)


def response(reply: Reply, model: str) -> dict[str, Any]:
    """The whole (non-streamed) GenerateContentResponse for a reply."""
    return _response(reply, model, reply.text, FINISH.get(reply.finish))


def _response(reply: Reply, model: str, text: str, finish: str | None) -> dict[str, Any]:
    if reply.finish == "refusal":
        return {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": _usage(reply),
                "modelVersion": model, "responseId": reply.request_id}
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": _usage(reply), "modelVersion": model,
            "responseId": reply.request_id}


async def model_action(request: Request) -> Response:
    """``POST /gemini/{v}/models/{model}:{method}``."""
    state: SimState = request.app.state.sim
    version, target = request.path_params["version"], request.path_params["target"]
    model, _, method = target.rpartition(":")
    if version not in VERSIONS or method not in ("generateContent", "streamGenerateContent"):
        return error(404, f"Method not found: {target}")
    if bad_key(_key(request)):
        return error(401, "API key not valid. Please pass a valid API key.")
    stream = method == "streamGenerateContent"
    call = parse_call(model, await json_body(request), stream)
    if isinstance(call, str):
        return error(400, call)
    outcome = await process(state, call, new_request_id(""))
    if isinstance(outcome, Failure) and (not stream or outcome.kind not in STREAM_BREAKS):
        return await non_stream_failure(request, PROVIDER, model, outcome, _failure_response)
    if not stream:
        record_reply(state, PROVIDER, model, outcome)  # type: ignore[arg-type]
        reply: Reply = outcome  # type: ignore[assignment]
        return JSONResponse(_response(reply, model, reply.text, FINISH.get(reply.finish)))
    return sse(_events(state, call, outcome), {})


async def _events(state: SimState, call: Call, outcome: Reply | Failure) -> AsyncIterator[bytes]:
    reply = outcome if isinstance(outcome, Reply) else answer_for(state, call, outcome.request_id)
    if reply.finish == "refusal":
        yield data_line(_response(reply, call.model, "", None))
        record_reply(state, call.provider, call.model, reply)
        return
    chunks = responder.pieces(reply.text)
    for i, piece in enumerate(chunks):
        if isinstance(outcome, Failure) and i >= outcome.after_chunks:
            if outcome.kind == "malformed":
                yield b"data: " + MALFORMED_BODY + b"\n\n"
            else:
                yield data_line({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
            state.record(call.provider, call.model, outcome.kind)  # type: ignore[arg-type]
            return
        last = i == len(chunks) - 1
        yield data_line(_response(reply, call.model, piece, FINISH.get(reply.finish) if last else None))
    record_reply(state, call.provider, call.model, reply)


def _model(model_id: str) -> dict[str, Any]:
    embedding = model_id.startswith(EMBEDDING_ONLY)
    methods = ["embedContent"] if embedding else ["generateContent", "countTokens", "streamGenerateContent"]
    return {"name": f"models/{model_id}", "version": "001", "displayName": model_id,
            "description": f"Simulated {model_id}", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
            "supportedGenerationMethods": methods}


async def list_models(request: Request) -> Response:
    if bad_key(_key(request)):
        return error(401, "API key not valid. Please pass a valid API key.")
    models = request.app.state.sim.list_models(PROVIDER)
    size = int(request.query_params.get("pageSize") or PAGE_SIZE)
    start = int(request.query_params.get("pageToken") or 0)
    body: dict[str, Any] = {"models": [_model(m) for m in models[start:start + size]]}
    if start + size < len(models):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


async def get_model(request: Request) -> Response:
    model_id = request.path_params["target"]
    if model_id not in request.app.state.sim.list_models(PROVIDER):
        return error(404, f"models/{model_id} is not found")
    return JSONResponse(_model(model_id))


async def tuned_models(request: Request) -> Response:
    if bad_key(_key(request)):
        return error(401, "API key not valid. Please pass a valid API key.")
    return JSONResponse({"tunedModels": [{"name": n, "baseModel": "models/gemini-3.5-flash-lite", "state": "ACTIVE"}
                                         for n in GEMINI_TUNED]})


ROUTES = [
    Route("/gemini/{version}/models", list_models, methods=["GET"]),
    Route("/gemini/{version}/tunedModels", tuned_models, methods=["GET"]),
    Route("/gemini/{version}/models/{target:path}", model_action, methods=["POST"]),
    Route("/gemini/{version}/models/{target:path}", get_model, methods=["GET"]),
]
