"""What every reply of a provider carries, added in one place instead of in each handler.

- A request id on every response: OpenAI ``x-request-id``, Anthropic ``request-id`` (models,
  files and batches included, errors too); a handler's own id is kept.
- Rate-limit headers on every chat reply that named a model, success or error, derived from that
  model's window (``SimState.rate_window``; the handler leaves the model in ``request.state``):
  OpenAI ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
  (reset as a duration: ``6m0s``, ``1.5s``, ``20ms``), Anthropic
  ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (reset as RFC 3339).
  Gemini documents none.
- A handler that trips over a bad query parameter (``ValueError``) answers 400 in the provider's
  JSON error shape, and any other exception a 500 in that shape, never a text page.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from llm_orchestrator.simulator.engine import new_request_id
from llm_orchestrator.simulator.state import RateWindow, SimState

log = logging.getLogger(__name__)
CHAT_PATHS = {"/openai/v1/chat/completions": "openai", "/anthropic/v1/messages": "anthropic"}
MODEL_STATE = "sim_model"  # request.state key: the model a chat request named
OUTPUT_SHARE = 5  # the simulator's output-token limit is a fifth of its token limit
ID_HEADERS = {"openai": "x-request-id", "anthropic": "request-id"}


def _provider(path: str) -> str | None:
    for name in ("openai", "anthropic", "gemini"):
        if path.startswith(f"/{name}/"):
            return name
    return None


def openai_rate_headers(w: RateWindow) -> dict[str, str]:
    reset = _duration(w.reset_seconds)
    return {
        "x-ratelimit-limit-requests": str(w.rpm),
        "x-ratelimit-limit-tokens": str(w.tpm),
        "x-ratelimit-remaining-requests": str(w.requests_left),
        "x-ratelimit-remaining-tokens": str(w.tokens_left),
        "x-ratelimit-reset-requests": reset,
        "x-ratelimit-reset-tokens": reset,
    }


def anthropic_rate_headers(w: RateWindow) -> dict[str, str]:
    reset = (datetime.now(timezone.utc) + timedelta(seconds=w.reset_seconds)).isoformat(timespec="seconds")
    reset = reset.replace("+00:00", "Z")
    output_limit = max(1, w.tpm // OUTPUT_SHARE)
    return {
        "anthropic-ratelimit-requests-limit": str(w.rpm),
        "anthropic-ratelimit-requests-remaining": str(w.requests_left),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": str(w.tpm),
        "anthropic-ratelimit-tokens-remaining": str(w.tokens_left),
        "anthropic-ratelimit-tokens-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": str(w.tpm),
        "anthropic-ratelimit-input-tokens-remaining": str(w.tokens_left),
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": str(output_limit),
        "anthropic-ratelimit-output-tokens-remaining": str(output_limit),
        "anthropic-ratelimit-output-tokens-reset": reset,
    }


def should_retry(status: int) -> str:
    """Anthropic's own ``x-should-retry`` on an error: true for 408/409/429/5xx, false otherwise."""
    return "true" if status in (408, 409, 429) or status >= 500 else "false"


def _duration(seconds: float) -> str:
    """OpenAI's duration format: ``6m0s``, ``1.5s``, ``20ms``."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def error_body(provider: str | None, status: int, message: str, request_id: str) -> dict[str, Any]:
    if provider == "anthropic":
        kind = "invalid_request_error" if status == 400 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    if provider == "gemini":
        return {
            "error": {"code": status, "message": message, "status": "INVALID_ARGUMENT" if status == 400 else "INTERNAL"}
        }
    kind = "invalid_request_error" if status == 400 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class ProviderHeaders:
    """Pure ASGI middleware (streaming bodies pass through untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        provider = _provider(path)
        request_id = new_request_id("req_")
        started = False
        if provider is not None:
            scope["app"].state.sim.arrived()  # stats count it only if no reset comes before its reply

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(
                    scope, path, provider, request_id, message["status"], list(message.get("headers", []))
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as e:
            if started:
                raise
            status, text = (400, f"Invalid request: {e}") if isinstance(e, ValueError) else (500, "Internal error")
            if status == 500:
                log.exception("simulator handler failed on %s", path)
            body = json.dumps(error_body(provider, status, text, request_id)).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})

    def _headers(
        self,
        scope: dict[str, Any],
        path: str,
        provider: str | None,
        request_id: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
    ) -> list[tuple[bytes, bytes]]:
        names = {k.lower() for k, _ in headers}
        extra: dict[str, str] = {}
        if provider == "anthropic" and status >= 400:
            extra["x-should-retry"] = should_retry(status)
        id_header = ID_HEADERS.get(provider or "")
        if id_header and id_header.encode() not in names:
            extra[id_header] = request_id
        chat = CHAT_PATHS.get(path)
        model = scope.get("state", {}).get(MODEL_STATE)  # set by the chat handler once it parsed the body
        if chat is not None and model:
            state: SimState = scope["app"].state.sim
            window = state.rate_window(chat, model)
            extra.update(openai_rate_headers(window) if chat == "openai" else anthropic_rate_headers(window))
        return headers + [(k.encode(), v.encode()) for k, v in extra.items()]
