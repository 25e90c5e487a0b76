"""Small pieces every adapter needs: Retry-After parsing, per-event-loop async clients, batch items."""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx2

from llm_orchestrator.providers.base import RateLimits

C = TypeVar("C")
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(ms) / 1000.0))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, parsed.timestamp() - time.time()))


class PerLoop(Generic[C]):
    """One async client per running event loop.

    The OpenAI and Anthropic async clients are bound to the loop that first used them; a
    Celery task or a test that calls ``asyncio.run`` twice would otherwise fail with
    "Event loop is closed". Entries vanish with their loop (weak keys).
    """

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = weakref.WeakKeyDictionary()

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client


def item_response(status: int, body: Any, url: str) -> httpx2.Response:
    """The HTTP response a failed batch item would have had as a live call.

    A batch reports each item's error inside its results; rebuilding the response lets the
    SDK pick its own error class for it, so the adapter's usual ``_error`` mapping applies.
    """
    return httpx2.Response(status, json=body, request=httpx2.Request("POST", url))


def openai_rate_limits(headers: Any) -> RateLimits | None:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (reset as ``6m0s``/``1.5s``/``20ms``)."""
    if headers is None or headers.get("x-ratelimit-limit-requests") is None:
        return None
    return RateLimits(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
        limit_tokens=_int(headers.get("x-ratelimit-limit-tokens")),
        remaining_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
        reset_seconds=duration_seconds(headers.get("x-ratelimit-reset-requests")),
    )


def anthropic_rate_limits(headers: Any) -> RateLimits | None:
    """``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (reset as RFC 3339)."""
    if headers is None or headers.get("anthropic-ratelimit-requests-limit") is None:
        return None
    reset = headers.get("anthropic-ratelimit-requests-reset")
    seconds = None
    if reset:
        try:
            seconds = max(0.0, datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp() - time.time())
        except ValueError:
            seconds = None
    return RateLimits(
        limit_requests=_int(headers.get("anthropic-ratelimit-requests-limit")),
        remaining_requests=_int(headers.get("anthropic-ratelimit-requests-remaining")),
        limit_tokens=_int(headers.get("anthropic-ratelimit-tokens-limit")),
        remaining_tokens=_int(headers.get("anthropic-ratelimit-tokens-remaining")),
        reset_seconds=seconds,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def duration_seconds(text: str | None) -> float | None:
    """``1h2m3.5s`` / ``6m0s`` / ``20ms`` → seconds; None when unparseable."""
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
