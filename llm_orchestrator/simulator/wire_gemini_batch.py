"""Gemini Developer API batch wire format under ``/gemini/{v1|v1beta|v1alpha}/``.

``POST models/{m}:batchGenerateContent`` with inlined requests
(``{"batch":{"displayName","inputConfig":{"requests":{"requests":[{"request":{…},"metadata":{"key":…}}]}}}}``),
``GET batches/{id}``, ``GET batches`` (``operations``, ``nextPageToken``) and
``POST batches/{id}:cancel``. A batch is a long-running operation whose ``metadata`` carries
``state`` (``BATCH_STATE_PENDING|RUNNING|SUCCEEDED|CANCELLED``) and, once it ended,
``output.inlinedResponses.inlinedResponses`` in request order, each ``{"response"}`` or
``{"error": google.rpc.Status}`` with the item's ``metadata`` echoed. Error codes are gRPC codes;
items a cancelled batch never ran get code 1 (CANCELLED) — what the real API returns for them
is UNVERIFIED. File input (``fileName``) is not simulated.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator.batches import BatchStore, SimBatch, SimItem, item_status, settle
from llm_orchestrator.simulator.engine import Failure, Reply
from llm_orchestrator.simulator.wire_common import json_body
from llm_orchestrator.simulator.wire_gemini import VERSIONS, error, parse_call, response, unauthorised

PROVIDER = "gemini"
METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4, 529: 14}
GRPC_CANCELLED = 1
GRPC_UNKNOWN = 2
DEFAULT_PAGE = 50


def _store(request: Request) -> BatchStore:
    return request.app.state.batches


def _refused(request: Request) -> Response | None:
    if request.path_params["version"] not in VERSIONS:
        return error(404, "Version not found.")
    return unauthorised(request)


async def create_batch(request: Request) -> Response:
    if (denied := _refused(request)) is not None:
        return denied
    model = request.path_params["model"]
    body = await json_body(request)
    batch_spec = (body or {}).get("batch") or {}
    requests = ((batch_spec.get("inputConfig") or {}).get("requests") or {}).get("requests")
    if not isinstance(requests, list) or not requests:
        return error(
            400, "Invalid JSON payload: batch.inputConfig.requests.requests is required (file input is not simulated)."
        )
    items: list[SimItem] = []
    for n, entry in enumerate(requests):
        if not isinstance(entry, dict):
            return error(400, f"Invalid JSON payload: requests[{n}] must be an object.")
        key = (entry.get("metadata") or {}).get("key")
        custom_id = key if isinstance(key, str) else str(n)
        call = parse_call(model, entry.get("request") if isinstance(entry.get("request"), dict) else None, False)
        items.append(SimItem(custom_id, None, call) if isinstance(call, str) else SimItem(custom_id, call))
    batch = _store(request).create(
        PROVIDER,
        model,
        items,
        "",
        extra={"display_name": batch_spec.get("displayName") or "", "metadata": [e.get("metadata") for e in requests]},
    )
    return JSONResponse(_operation(batch))


async def get_batch(request: Request) -> Response:
    if (denied := _refused(request)) is not None:
        return denied
    batch = _store(request).get(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return error(404, f"Batch batches/{request.path_params['batch_id']} not found.")
    return JSONResponse(_operation(await settle(request.app.state.sim, _store(request), batch)))


async def cancel_batch(request: Request) -> Response:
    if (denied := _refused(request)) is not None:
        return denied
    batch = _store(request).cancel(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return error(404, f"Batch batches/{request.path_params['batch_id']} not found.")
    return JSONResponse({})


async def list_batches(request: Request) -> Response:
    if (denied := _refused(request)) is not None:
        return denied
    batches = _store(request).listing(PROVIDER)
    size = int(request.query_params.get("pageSize") or DEFAULT_PAGE)
    start = int(request.query_params.get("pageToken") or 0)
    body: dict[str, Any] = {"operations": [_operation(b) for b in batches[start : start + size]]}
    if start + size < len(batches):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


def _state(batch: SimBatch) -> str:
    if batch.cancelled:
        return "BATCH_STATE_CANCELLED"
    return {"in_progress": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING"}.get(
        batch.phase, "BATCH_STATE_SUCCEEDED"
    )


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _operation(batch: SimBatch) -> dict[str, Any]:
    counts = batch.counts()
    name = f"batches/{batch.id}"
    metadata: dict[str, Any] = {
        "@type": METADATA_TYPE,
        "name": name,
        "model": f"models/{batch.model}",
        "displayName": batch.extra.get("display_name", ""),
        "state": _state(batch),
        "createTime": _iso(batch.created),
        "updateTime": _iso(batch.ended_at or batch.created),
        "batchStats": {
            "requestCount": str(counts["total"]),
            "successfulRequestCount": str(counts["succeeded"] if batch.ended else 0),
            "failedRequestCount": str(counts["errored"] if batch.ended else 0),
            "pendingRequestCount": str(0 if batch.ended else counts["total"]),
        },
    }
    if batch.ended:
        metadata["endTime"] = _iso(batch.ended_at)
        echoes = batch.extra.get("metadata") or []
        responses = [_inlined(item, echoes[n] if n < len(echoes) else None) for n, item in enumerate(batch.items)]
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
    return {"name": name, "metadata": metadata, "done": batch.ended}


def _inlined(item: SimItem, echo: Any) -> dict[str, Any]:
    outcome = item.outcome
    if isinstance(outcome, Reply):
        out: dict[str, Any] = {"response": response(outcome)}
    elif isinstance(outcome, Failure):
        status = item_status(outcome)
        out = {
            "error": {"code": GRPC_CODES.get(status, GRPC_UNKNOWN), "message": f"Simulated failure (HTTP {status})."}
        }
    elif item.call is None:
        out = {"error": {"code": GRPC_CODES[400], "message": item.invalid}}
    else:
        out = {"error": {"code": GRPC_CANCELLED, "message": "The batch was cancelled before this request ran."}}
    if echo is not None:
        out["metadata"] = echo
    return out


ROUTES = [
    Route("/gemini/{version}/models/{model}:batchGenerateContent", create_batch, methods=["POST"]),
    Route("/gemini/{version}/batches", list_batches, methods=["GET"]),
    Route("/gemini/{version}/batches/{batch_id}:cancel", cancel_batch, methods=["POST"]),
    Route("/gemini/{version}/batches/{batch_id}", get_batch, methods=["GET"]),
]
