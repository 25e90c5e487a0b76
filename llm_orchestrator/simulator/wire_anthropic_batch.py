"""Anthropic Message Batches wire format under ``/anthropic/v1/messages/batches``.

``POST`` (``{"requests":[{"custom_id","params":{…}}]}``), ``GET`` list (``after_id``/``limit``),
``GET /{id}`` (``processing_status`` ``in_progress|canceling|ended``, ``request_counts``,
``results_url``), ``POST /{id}/cancel`` and ``GET /{id}/results`` (JSONL of
``{"custom_id","result":{"type":"succeeded"|"errored"|"canceled"|"expired",…}}``). ``results_url`` is
an absolute URL to this simulator, as the real API gives one to its own host.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator.batches import BatchStore, SimBatch, SimItem, item_status, settle
from llm_orchestrator.simulator.engine import Failure, Reply, new_request_id
from llm_orchestrator.simulator.wire_anthropic import (
    check_headers,
    error,
    error_body,
    failure_body,
    message,
    parse_call,
)
from llm_orchestrator.simulator.wire_common import json_body

PROVIDER = "anthropic"
BASE = "/anthropic/v1/messages/batches"
WINDOW_SECONDS = 24 * 3600
DEFAULT_PAGE = 20


def _store(request: Request) -> BatchStore:
    return request.app.state.batches


def _unauthorised(request: Request) -> Response | None:
    return check_headers(request, new_request_id("req_"))


def _not_found() -> Response:
    return error(404, "message batch not found", new_request_id("req_"))


async def create_batch(request: Request) -> Response:
    request_id = new_request_id("req_")
    if (denied := _unauthorised(request)) is not None:
        return denied
    body = await json_body(request)
    requests = body.get("requests") if body else None
    if not isinstance(requests, list) or not requests:
        return error(400, "requests: Field required (a non-empty list)", request_id)
    items: list[SimItem] = []
    seen: set[str] = set()
    for n, entry in enumerate(requests):
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or custom_id in seen:
            return error(400, f"requests.{n}.custom_id: missing or not unique", request_id)
        seen.add(custom_id)
        params = entry.get("params")
        call = parse_call(params if isinstance(params, dict) else None)
        items.append(SimItem(custom_id, None, call) if isinstance(call, str) else SimItem(custom_id, call))
    model = next((i.call.model for i in items if i.call is not None), "")
    batch = _store(request).create(PROVIDER, model, items, "msgbatch_")
    return JSONResponse(_batch(request, batch))


async def get_batch(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batch = _store(request).get(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return _not_found()
    return JSONResponse(_batch(request, await settle(request.app.state.sim, _store(request), batch)))


async def cancel_batch(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batch = _store(request).cancel(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return _not_found()
    return JSONResponse(_batch(request, batch, "canceling" if batch.cancelled else None))


async def list_batches(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batches = _store(request).listing(PROVIDER)
    ids = [b.id for b in batches]
    after = request.query_params.get("after_id")
    limit = int(request.query_params.get("limit") or DEFAULT_PAGE)
    start = ids.index(after) + 1 if after in ids else 0
    page = batches[start : start + limit]
    return JSONResponse(
        {
            "data": [_batch(request, b) for b in page],
            "has_more": start + limit < len(batches),
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }
    )


async def results(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batch = _store(request).get(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return _not_found()
    if not batch.ended:
        return error(404, "results are available once processing has ended", new_request_id("req_"))
    lines = (
        json.dumps({"custom_id": i.custom_id, "result": _result(i, batch.model)}, separators=(",", ":")) + "\n"
        for i in batch.items
    )
    return Response("".join(lines).encode(), media_type="application/binary")


def _result(item: SimItem, model: str) -> dict[str, Any]:
    outcome = item.outcome
    if isinstance(outcome, Reply):
        return {"type": "succeeded", "message": message(outcome)}
    if isinstance(outcome, Failure):
        body = failure_body(outcome, item.call.model if item.call else model)
        if outcome.kind != "status":
            body = error_body(item_status(outcome), "Error", outcome.request_id)
        return {"type": "errored", "error": body}
    if item.call is None:
        return {"type": "errored", "error": error_body(400, item.invalid, new_request_id("req_"))}
    return {"type": "canceled"}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _batch(request: Request, batch: SimBatch, status: str | None = None) -> dict[str, Any]:
    counts = batch.counts()
    ended = batch.ended
    results_url = str(request.url.replace(path=f"{BASE}/{batch.id}/results", query="")) if ended else None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status or ("ended" if ended else "in_progress"),
        "request_counts": {
            "processing": 0 if ended else counts["total"],
            "succeeded": counts["succeeded"] if ended else 0,
            "errored": counts["errored"] if ended else 0,
            "canceled": counts["not_run"] if ended else 0,
            "expired": 0,
        },
        "created_at": _iso(batch.created),
        "expires_at": _iso(batch.created + WINDOW_SECONDS),
        "ended_at": _iso(batch.ended_at),
        "archived_at": None,
        "cancel_initiated_at": _iso(batch.ended_at) if batch.cancelled else None,
        "results_url": results_url,
    }


ROUTES = [
    Route(BASE, create_batch, methods=["POST"]),
    Route(BASE, list_batches, methods=["GET"]),
    Route(BASE + "/{batch_id}", get_batch, methods=["GET"]),
    Route(BASE + "/{batch_id}/cancel", cancel_batch, methods=["POST"]),
    Route(BASE + "/{batch_id}/results", results, methods=["GET"]),
]
