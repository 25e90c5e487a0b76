"""Gemini Developer API wire format under ``/gemini/{v1|v1beta|v1alpha}/``.

``models/{m}:generateContent``, ``models/{m}:streamGenerateContent?alt=sse`` (only ``data: ``
lines; an in-stream error is a data line whose first key is ``error`` with a numeric code),
``models`` (paginated), ``models/{m}`` and ``tunedModels``.

Errors as the real API sends them (README, provider notes): a bad key is HTTP 400
``INVALID_ARGUMENT`` with a ``google.rpc.ErrorInfo`` whose reason is ``API_KEY_INVALID``; a
missing key 403 ``PERMISSION_DENIED``; a 429 ``RESOURCE_EXHAUSTED`` carries
``google.rpc.QuotaFailure`` (which quota: a fault's ``code`` sets the ``quotaId``) and
``google.rpc.RetryInfo`` (``retryDelay: "19s"``) and no Retry-After header.
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
    MALFORMED_BODY,
    STREAM_BREAKS,
    bad_key,
    data_line,
    json_body,
    non_stream_failure,
    record_reply,
    sse,
)

PROVIDER = "gemini"
VERSIONS = ("v1", "v1beta", "v1alpha")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
BLOCKED_RATINGS = [
    {"category": c, "probability": p}
    for c, p in (
        ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
        ("HARM_CATEGORY_HATE_SPEECH", "HIGH"),
        ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
        ("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
    )
]
PAGE_SIZE = 2  # the real default is 50; small here so clients must paginate
EMBEDDING_ONLY = ("text-embedding",)


ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
LOCALIZED_MESSAGE = "type.googleapis.com/google.rpc.LocalizedMessage"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
HELP = "type.googleapis.com/google.rpc.Help"
SERVICE = "generativelanguage.googleapis.com"
RATE_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel"
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    err: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        err["details"] = details
    return JSONResponse({"error": err}, status_code=status)


def unauthorised(request: Request) -> JSONResponse | None:
    """403 for a missing key, 400 API_KEY_INVALID for a bad one; None when the key is fine."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        return error(403, NO_KEY_MESSAGE)
    if bad_key(key):
        return error(
            400,
            BAD_KEY_MESSAGE,
            [
                {
                    "@type": ERROR_INFO,
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": SERVICE},
                },
                {"@type": LOCALIZED_MESSAGE, "locale": "en-US", "message": BAD_KEY_MESSAGE},
            ],
        )
    return None


def bad_request(field: str, problem: str) -> JSONResponse:
    """400 INVALID_ARGUMENT naming the field, with a ``google.rpc.BadRequest`` as the real API sends."""
    message = f"Invalid JSON payload received. {problem}"
    return error(400, message, [{"@type": BAD_REQUEST, "fieldViolations": [{"field": field, "description": message}]}])


def _failure_response(failure: Failure, model: str, version: str) -> JSONResponse:
    if failure.status == 429:
        return _quota_response(failure, model)
    if failure.status == 404:
        return error(
            404,
            f"models/{model} is not found for API version {version}, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        )
    message = {
        500: "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        503: "The model is overloaded. Please try again later.",
    }.get(failure.status, "Simulated failure.")
    retry = [_retry_info(failure.retry_after)] if failure.retry_after is not None else None
    return error(failure.status, message, retry)


def _retry_info(seconds: float) -> dict[str, Any]:
    """``google.rpc.RetryInfo``: a protobuf Duration in JSON (``"19s"``, ``"0.5s"``)."""
    return {"@type": RETRY_INFO, "retryDelay": f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"}


def _quota_response(failure: Failure, model: str) -> JSONResponse:
    """A real 429: which quota ran out (QuotaFailure) and when to come back (RetryInfo); no header."""
    delay = failure.retry_after if failure.retry_after is not None else 19.0
    quota_id = failure.code if failure.code and failure.code != "rate_limit_exceeded" else RATE_QUOTA_ID
    metric = f"{SERVICE}/generate_content_{'free_tier_' if 'FreeTier' in quota_id else ''}requests"
    details = [
        {
            "@type": QUOTA_FAILURE,
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "15",
                }
            ],
        },
        {
            "@type": HELP,
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        _retry_info(delay),
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information "
        "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
        f"* Quota exceeded for metric: {metric}, limit: 15, model: {model}. Please retry in {delay:.1f}s."
    )
    return error(429, message, details)


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))


def _usage(reply: Reply) -> dict[str, Any]:
    """usageMetadata; like proto3 JSON, zero counts are left out (no thinking: no thoughtsTokenCount)."""
    u = reply.usage
    usage: dict[str, Any] = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": u.completion_tokens,
        "totalTokenCount": u.prompt_tokens + u.completion_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt_tokens}],
    }
    if u.cached_tokens:
        usage["cachedContentTokenCount"] = u.cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached_tokens}]
    return usage


def parse_call(model: str, body: dict[str, Any] | None, stream: bool) -> Call | str:
    """A GenerateContentRequest body as a :class:`Call`, or the 400 message saying what is wrong."""
    if body is None or not isinstance(body.get("contents"), list):
        return "Invalid JSON payload: contents is required."
    contents = body["contents"]
    system = _text((body.get("systemInstruction") or body.get("system_instruction") or {}).get("parts"))
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = config.get("maxOutputTokens") or config.get("max_output_tokens")
    return Call(
        PROVIDER, model, system, "\n".join(_text(c.get("parts")) for c in contents), len(contents), max_tokens, stream
    )


def response(reply: Reply) -> dict[str, Any]:
    """The whole (non-streamed) GenerateContentResponse for a reply."""
    return _response(reply, reply.text, FINISH.get(reply.finish))


def _response(reply: Reply, text: str, finish: str | None) -> dict[str, Any]:
    if reply.finish == "refusal":
        return {
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": BLOCKED_RATINGS},
            "usageMetadata": _usage(reply),
            "modelVersion": reply.model,
            "responseId": reply.request_id,
        }
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(reply),
        "modelVersion": reply.model,
        "responseId": reply.request_id,
    }


async def model_action(request: Request) -> Response:
    """``POST /gemini/{v}/models/{model}:{method}``."""
    state: SimState = request.app.state.sim
    version, target = request.path_params["version"], request.path_params["target"]
    model, _, method = target.rpartition(":")
    if version not in VERSIONS or method not in ("generateContent", "streamGenerateContent"):
        return error(404, f"Method not found: {target}")
    if (refused := unauthorised(request)) is not None:
        return refused
    stream = method == "streamGenerateContent"
    call = parse_call(model, await json_body(request), stream)
    if isinstance(call, str):
        return bad_request("contents", call)
    outcome = await process(state, call, new_request_id(""))
    if isinstance(outcome, Failure) and (not stream or outcome.kind not in STREAM_BREAKS):
        return await non_stream_failure(
            request, PROVIDER, model, outcome, lambda f: _failure_response(f, model, version)
        )
    if not stream:
        record_reply(state, PROVIDER, model, outcome)  # type: ignore[arg-type]
        reply: Reply = outcome  # type: ignore[assignment]
        return JSONResponse(response(reply))
    return sse(_events(state, call, outcome), {})


async def _events(state: SimState, call: Call, outcome: Reply | Failure) -> AsyncIterator[bytes]:
    reply = outcome if isinstance(outcome, Reply) else answer_for(state, call, outcome.request_id)
    if reply.finish == "refusal":
        yield data_line(_response(reply, "", None))
        record_reply(state, call.provider, call.model, reply)
        return
    chunks = responder.pieces(reply.text)
    for i, piece in enumerate(chunks):
        if isinstance(outcome, Failure) and i >= outcome.after_chunks:
            if outcome.kind == "malformed":
                yield b"data: " + MALFORMED_BODY + b"\n\n"
            else:
                yield data_line(
                    {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
                )
            state.record(call.provider, call.model, outcome.kind)
            return
        last = i == len(chunks) - 1
        event = _response(reply, piece, FINISH.get(reply.finish) if last else None)
        event["usageMetadata"]["serviceTier"] = "standard"  # stream chunks carry it (captured 2026)
        yield data_line(event)
    record_reply(state, call.provider, call.model, reply)


def _model(model_id: str) -> dict[str, Any]:
    embedding = model_id.startswith(EMBEDDING_ONLY)
    methods = ["embedContent"] if embedding else ["generateContent", "countTokens", "streamGenerateContent"]
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": model_id,
        "description": f"Simulated {model_id}",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": methods,
    }


async def list_models(request: Request) -> Response:
    if (refused := unauthorised(request)) is not None:
        return refused
    models = request.app.state.sim.list_models(PROVIDER)
    size_text = request.query_params.get("pageSize") or str(PAGE_SIZE)
    token = request.query_params.get("pageToken") or "0"
    if not size_text.isdigit() or not token.isdigit():
        return error(400, "Invalid value for pageSize or pageToken.")
    size, start = max(1, int(size_text)), int(token)
    body: dict[str, Any] = {"models": [_model(m) for m in models[start : start + size]]}
    if start + size < len(models):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


async def get_model(request: Request) -> Response:
    if (refused := unauthorised(request)) is not None:
        return refused
    model_id = request.path_params["target"]
    if model_id not in request.app.state.sim.list_models(PROVIDER):
        return error(404, f"models/{model_id} is not found")
    return JSONResponse(_model(model_id))


async def tuned_models(request: Request) -> Response:
    if (refused := unauthorised(request)) is not None:
        return refused
    return JSONResponse(
        {
            "tunedModels": [
                {"name": n, "baseModel": "models/gemini-3.5-flash-lite", "state": "ACTIVE"} for n in GEMINI_TUNED
            ]
        }
    )


ROUTES = [
    Route("/gemini/{version}/models", list_models, methods=["GET"]),
    Route("/gemini/{version}/tunedModels", tuned_models, methods=["GET"]),
    Route("/gemini/{version}/models/{target:path}", model_action, methods=["POST"]),
    Route("/gemini/{version}/models/{target:path}", get_model, methods=["GET"]),
]
