"""OpenAI Batch API wire format under ``/openai/v1``: files and batches.

``POST /files`` (multipart, ``purpose=batch``, a JSONL file of
``{"custom_id","method":"POST","url":"/v1/chat/completions","body":{…}}``), ``GET /files/{id}``,
``GET /files/{id}/content``, ``POST /batches``, ``GET /batches/{id}``, ``POST /batches/{id}/cancel``
and ``GET /batches?after=&limit=`` (cursor page). An input file that fails validation gives a
batch with status ``failed`` and ``errors``, as the real API does. When a batch ends, answered
items go to ``output_file_id`` and failed or cancelled ones to ``error_file_id``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from email import policy
from email.parser import BytesParser
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator.batches import BatchStore, SimBatch, SimItem, item_status, settle
from llm_orchestrator.simulator.engine import Failure, Reply, new_request_id
from llm_orchestrator.simulator.wire_common import bad_key, bearer, json_body
from llm_orchestrator.simulator.wire_openai import completion, error, error_body, failure_body, parse_call

PROVIDER = "openai"
ENDPOINT = "/v1/chat/completions"
WINDOW_SECONDS = 24 * 3600
DEFAULT_PAGE = 20


def _store(request: Request) -> BatchStore:
    return request.app.state.batches


def _unauthorised(request: Request) -> Response | None:
    if bad_key(bearer(request)):
        return error(401, "Incorrect API key provided.", new_request_id("req_"), "invalid_api_key")
    return None


def _form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name → (filename, bytes)."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "content"}


async def upload_file(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    fields = _form(request.headers.get("content-type", ""), await request.body())
    if "file" not in fields or "purpose" not in fields:
        return error(400, "'file' and 'purpose' are required multipart fields.", new_request_id("req_"))
    filename, content = fields["file"]
    purpose = fields["purpose"][1].decode("utf-8", "replace")
    return JSONResponse(_public(_store(request).add_file(content, filename or "upload", purpose)))


async def get_file(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    entry = _store(request).file(request.path_params["file_id"])
    if entry is None:
        return error(404, "No such File object.", new_request_id("req_"))
    return JSONResponse(_public(entry))


async def file_content(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    entry = _store(request).file(request.path_params["file_id"])
    if entry is None:
        return error(404, "No such File object.", new_request_id("req_"))
    return Response(entry["content"], media_type="application/octet-stream")


def _items(content: bytes) -> tuple[list[SimItem], str, str]:
    """Parse the input JSONL into items; returns (items, model, why the file is invalid or "")."""
    items: list[SimItem] = []
    seen: set[str] = set()
    models: set[str] = set()
    for n, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            return [], "", f"line {n}: invalid JSON"
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or custom_id in seen:
            return [], "", f"line {n}: custom_id missing or duplicated"
        if entry.get("url") != ENDPOINT or entry.get("method") != "POST":
            return [], "", f"line {n}: url must be {ENDPOINT} with method POST"
        seen.add(custom_id)
        call = parse_call(entry.get("body") if isinstance(entry.get("body"), dict) else None)
        if isinstance(call, str):
            items.append(SimItem(custom_id, None, call))
            continue
        models.add(call.model)
        items.append(SimItem(custom_id, call))
    if not items:
        return [], "", "the input file has no requests"
    if len(models) > 1:
        return [], "", "all requests in a batch must use the same model"
    return items, next(iter(models), ""), ""


async def create_batch(request: Request) -> Response:
    request_id = new_request_id("req_")
    if (denied := _unauthorised(request)) is not None:
        return denied
    body = await json_body(request)
    if body is None or not isinstance(body.get("input_file_id"), str):
        return error(400, "Invalid body: 'input_file_id' is required.", request_id)
    if body.get("endpoint") != ENDPOINT:
        return error(400, f"The simulator supports only endpoint {ENDPOINT}.", request_id)
    if body.get("completion_window") != "24h":
        return error(400, "completion_window must be '24h'.", request_id)
    store = _store(request)
    entry = store.file(body["input_file_id"])
    if entry is None:
        return error(400, f"File {body['input_file_id']} not found.", request_id)
    items, model, invalid = _items(entry["content"])
    batch = store.create(
        PROVIDER,
        model,
        items,
        "batch_",
        failed=invalid,
        extra={"input_file_id": entry["id"], "metadata": body.get("metadata")},
    )
    return JSONResponse(_batch(batch, "failed" if invalid else "validating"))


async def get_batch(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batch = _store(request).get(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return error(404, "No batch found with that id.", new_request_id("req_"))
    batch = await settle(request.app.state.sim, _store(request), batch)
    _write_results(_store(request), batch)
    return JSONResponse(_batch(batch))


async def cancel_batch(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batch = _store(request).cancel(PROVIDER, request.path_params["batch_id"])
    if batch is None:
        return error(404, "No batch found with that id.", new_request_id("req_"))
    _write_results(_store(request), batch)
    return JSONResponse(_batch(batch, "cancelling" if batch.cancelled else None))


async def list_batches(request: Request) -> Response:
    if (denied := _unauthorised(request)) is not None:
        return denied
    batches = _store(request).listing(PROVIDER)
    after = request.query_params.get("after")
    limit = int(request.query_params.get("limit") or DEFAULT_PAGE)
    ids = [b.id for b in batches]
    start = ids.index(after) + 1 if after in ids else 0
    page = batches[start : start + limit]
    body: dict[str, Any] = {
        "object": "list",
        "data": [_batch(b) for b in page],
        "has_more": start + limit < len(batches),
    }
    if page:  # the spec types first_id/last_id as strings: an empty page leaves them out
        body.update(first_id=page[0].id, last_id=page[-1].id)
    return JSONResponse(body)


def _status(batch: SimBatch) -> str:
    if batch.failed:
        return "failed"
    if batch.cancelled:
        return "cancelled"
    return {"in_progress": "in_progress", "running": "finalizing"}.get(batch.phase, "completed")


def _batch(batch: SimBatch, status: str | None = None) -> dict[str, Any]:
    status = status or _status(batch)
    counts = batch.counts()
    ended = int(batch.ended_at) if batch.ended_at else None
    created = int(batch.created)
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "errors": {
            "object": "list",
            "data": [{"code": "invalid_request", "message": batch.failed, "line": None, "param": None}],
        }
        if batch.failed
        else None,
        "input_file_id": batch.extra.get("input_file_id"),
        "completion_window": "24h",
        "status": status,
        "output_file_id": batch.extra.get("output_file_id"),
        "error_file_id": batch.extra.get("error_file_id"),
        "created_at": created,
        "in_progress_at": None if batch.failed else created,
        "expires_at": created + WINDOW_SECONDS,
        "finalizing_at": ended if status == "completed" else None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if batch.failed else None,
        "expired_at": None,
        "cancelling_at": ended if batch.cancelled else None,
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {
            "total": counts["total"] if not batch.failed else 0,
            "completed": counts["succeeded"],
            "failed": counts["errored"] + (counts["not_run"] if batch.ended else 0),
        },
        "metadata": batch.extra.get("metadata"),
        **({"model": batch.model} if batch.model else {}),
    }


def _write_results(store: BatchStore, batch: SimBatch) -> None:
    """Once a batch has ended, store its output and error files (once)."""
    if not batch.ended or batch.failed or "output_file_id" in batch.extra:
        return
    output = [_line(i, batch.model) for i in batch.items if i.succeeded]
    errors = [_line(i, batch.model) for i in batch.items if not i.succeeded]
    with store.lock:
        if "output_file_id" in batch.extra:
            return
        for key, lines in (("output_file_id", output), ("error_file_id", errors)):
            if not lines:
                batch.extra[key] = None
                continue
            content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
            file_id = "file-" + uuid.uuid4().hex[:24]
            store.files[file_id] = {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(batch.ended_at or 0),
                "filename": f"{batch.id}_{key}.jsonl",
                "purpose": "batch_output",
                "status": "processed",
                "content": content,
            }
            batch.extra[key] = file_id


def _line(item: SimItem, model: str) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": "batch_req_" + uuid.uuid4().hex[:24],
        "custom_id": item.custom_id,
        "response": None,
        "error": None,
    }
    outcome = item.outcome
    if isinstance(outcome, Reply):
        line["response"] = {"status_code": 200, "request_id": outcome.request_id, "body": completion(outcome)}
    elif isinstance(outcome, Failure):
        status = item_status(outcome)
        line["response"] = {
            "status_code": status,
            "request_id": outcome.request_id,
            "body": failure_body(replace(outcome, status=status), model),
        }
    elif item.call is None:
        line["response"] = {
            "status_code": 400,
            "request_id": new_request_id("req_"),
            "body": error_body(400, item.invalid),
        }
    else:
        line["error"] = {"code": "batch_cancelled", "message": "The batch was cancelled before this request ran."}
    return line


ROUTES = [
    Route("/openai/v1/files", upload_file, methods=["POST"]),
    Route("/openai/v1/files/{file_id}", get_file, methods=["GET"]),
    Route("/openai/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/openai/v1/batches", create_batch, methods=["POST"]),
    Route("/openai/v1/batches", list_batches, methods=["GET"]),
    Route("/openai/v1/batches/{batch_id}", get_batch, methods=["GET"]),
    Route("/openai/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]
