"""The Starlette application: the three providers' routes plus the ``/_sim`` control plane."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llm_orchestrator.simulator import (
    wire_anthropic,
    wire_anthropic_batch,
    wire_gemini,
    wire_gemini_batch,
    wire_openai,
    wire_openai_batch,
)
from llm_orchestrator.simulator.batches import BatchStore
from llm_orchestrator.simulator.middleware import ProviderHeaders
from llm_orchestrator.simulator.state import PROVIDERS, Fault, SimState


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _state(request: Request) -> SimState:
    return request.app.state.sim


async def faults(request: Request) -> Response:
    if request.method == "DELETE":
        _state(request).clear_faults()
        return JSONResponse({"ok": True})
    try:
        fault = Fault.from_json(await _body(request))
    except (ValueError, TypeError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    _state(request).add_fault(fault)
    return JSONResponse({"ok": True})


async def models(request: Request) -> Response:
    try:
        data = await _body(request)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    if data.get("provider") not in PROVIDERS:
        return JSONResponse({"error": f"provider must be one of {PROVIDERS}"}, status_code=400)
    snapshots = data.get("snapshots") or {}
    if not isinstance(snapshots, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in snapshots.items()
    ):
        return JSONResponse({"error": "snapshots must map alias ids to snapshot ids"}, status_code=400)
    _state(request).change_models(
        data["provider"], list(data.get("add") or []), list(data.get("remove") or []), snapshots
    )
    return JSONResponse({"models": _state(request).list_models(data["provider"])})


async def limits(request: Request) -> Response:
    try:
        data = await _body(request)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    if data.get("provider") not in PROVIDERS:
        return JSONResponse({"error": f"provider must be one of {PROVIDERS}"}, status_code=400)
    _state(request).set_limit(data["provider"], data.get("rpm"), data.get("tpm"))
    return JSONResponse({"ok": True})


async def latency(request: Request) -> Response:
    try:
        data = await _body(request)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    state = _state(request)
    with state.lock:
        state.latency_ms[data.get("provider", "*")] = float(data.get("ms", 0))
    return JSONResponse({"ok": True})


async def stats(request: Request) -> Response:
    if request.method == "DELETE":
        _state(request).reset_stats()
        return JSONResponse({"ok": True})
    return JSONResponse(_state(request).stats())


async def batch(request: Request) -> Response:
    """``{"delay_ms": n}``: how long a new batch job stays in progress before it runs."""
    try:
        data = await _body(request)
        delay_ms = float(data["delay_ms"])
    except (ValueError, TypeError, KeyError):
        return JSONResponse({"error": 'body must be {"delay_ms": <number>}'}, status_code=400)
    request.app.state.batches.set_delay(delay_ms)
    return JSONResponse({"ok": True})


async def reset(request: Request) -> Response:
    _state(request).reset()
    request.app.state.batches.reset()
    return JSONResponse({"ok": True})


CONTROL_ROUTES = [
    Route("/_sim/faults", faults, methods=["POST", "DELETE"]),
    Route("/_sim/models", models, methods=["POST"]),
    Route("/_sim/limits", limits, methods=["POST"]),
    Route("/_sim/latency", latency, methods=["POST"]),
    Route("/_sim/stats", stats, methods=["GET", "DELETE"]),
    Route("/_sim/batch", batch, methods=["POST"]),
    Route("/_sim/reset", reset, methods=["POST"]),
]


def create_app(state: SimState | None = None) -> Starlette:
    """Build the simulator app around ``state`` (a fresh one by default)."""
    # batch routes first: Gemini's models/{m}:batchGenerateContent would match models/{target:path}
    app = Starlette(
        routes=[
            *CONTROL_ROUTES,
            *wire_openai_batch.ROUTES,
            *wire_anthropic_batch.ROUTES,
            *wire_gemini_batch.ROUTES,
            *wire_openai.ROUTES,
            *wire_anthropic.ROUTES,
            *wire_gemini.ROUTES,
        ],
        middleware=[Middleware(ProviderHeaders)],
    )
    app.state.sim = state or SimState()
    app.state.batches = BatchStore()
    return app
