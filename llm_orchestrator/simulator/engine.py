"""Provider-neutral request handling: limits, faults, latency, the answer and its usage.

Each wire module parses its provider's request into a :class:`Call`, asks :func:`process`
what happens, and renders the :class:`Reply` or :class:`Failure` in its own format.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llm_orchestrator.simulator import responder
from llm_orchestrator.simulator.state import Fault, SimState, Usage

MIN_CACHEABLE_TOKENS = 1024
CACHE_BLOCK = 128
REFUSE_MARKER = "[[sim:refuse]]"
REFUSAL_TEXT = "I can't help with that request."
TIMEOUT_HOLD_SECONDS = 30.0


@dataclass(frozen=True)
class Call:
    """A parsed chat request."""

    provider: str
    model: str
    system: str
    prompt: str  # all non-system message text, in order
    n_messages: int
    max_tokens: int | None
    stream: bool
    cache_requested: bool = False  # Anthropic cache_control present
    batch: bool = False  # one item of a batch job: no live rate limit, no injected latency


@dataclass(frozen=True)
class Reply:
    text: str
    finish: str  # "stop" | "length" | "refusal"
    usage: Usage  # prompt_tokens includes cached and cache-write tokens
    request_id: str
    model: str = ""  # the id the reply carries: the requested alias or its dated snapshot


@dataclass(frozen=True)
class Failure:
    kind: str  # "status" | "timeout" | "malformed" | "midstream_error"
    status: int
    request_id: str
    retry_after: float | None = None
    retry_after_ms: int | None = None
    code: str | None = None
    after_chunks: int = 2
    limit_type: str = "requests"  # a 429 from the rate limit: "requests" or "tokens" ran out

    @classmethod
    def from_fault(cls, fault: Fault, request_id: str) -> Failure:
        return cls(
            fault.kind,
            fault.status,
            request_id,
            fault.retry_after,
            fault.retry_after_ms,
            fault.code,
            fault.after_chunks,
        )


def new_request_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


async def process(state: SimState, call: Call, request_id: str) -> Reply | Failure:
    """Decide the outcome of one call (after the wire module has checked auth and body)."""
    prompt_tokens = responder.tokens(call.system) + responder.tokens(call.prompt) + 3 * call.n_messages
    if not state.serves(call.provider, call.model):
        return Failure("status", 404, request_id, code="model_not_found")
    refused = None if call.batch else state.admit(call.provider, call.model, prompt_tokens + (call.max_tokens or 0))
    if refused is not None:
        wait, limit_type = refused
        return Failure(
            "status", 429, request_id, retry_after=round(wait, 3), code="rate_limit_exceeded", limit_type=limit_type
        )
    fault = state.pick_fault(call.provider, call.model)
    if fault is not None and fault.kind == "midstream_error" and not call.stream:
        return Failure("status", 500, request_id)  # a non-stream request cannot break mid-stream
    if fault is not None and fault.kind != "midstream_error":
        return Failure.from_fault(fault, request_id)
    delay = 0.0 if call.batch else state.latency(call.provider)
    if delay:
        await asyncio.sleep(delay)
    if fault is not None:  # midstream_error on a stream: the wire module sends some chunks, then breaks
        return Failure.from_fault(fault, request_id)
    model = state.answered_as(call.provider, call.model)
    if REFUSE_MARKER in call.prompt:
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=8)
        return Reply(REFUSAL_TEXT, "refusal", usage, request_id, model)
    text, cut = responder.truncate(responder.answer(call.prompt, call.system, call.model), call.max_tokens)
    usage = _usage(state, call, prompt_tokens, responder.tokens(text))
    return Reply(text, "length" if cut else "stop", usage, request_id, model)


def answer_for(state: SimState, call: Call, request_id: str) -> Reply:
    """The reply a stream would have carried (used to stream chunks before a midstream error)."""
    text, cut = responder.truncate(responder.answer(call.prompt, call.system, call.model), call.max_tokens)
    prompt_tokens = responder.tokens(call.system) + responder.tokens(call.prompt) + 3 * call.n_messages
    return Reply(
        text,
        "length" if cut else "stop",
        Usage(prompt_tokens, responder.tokens(text)),
        request_id,
        state.answered_as(call.provider, call.model),
    )


def _usage(state: SimState, call: Call, prompt_tokens: int, completion_tokens: int) -> Usage:
    """Token usage incl. prompt caching (automatic for OpenAI/Gemini; opt-in for Anthropic)."""
    prefix = responder.tokens(call.system)
    cacheable = prefix >= MIN_CACHEABLE_TOKENS and (call.provider != "anthropic" or call.cache_requested)
    if not cacheable:
        return Usage(prompt_tokens, completion_tokens)
    key = call.provider + "\0" + call.model + "\0" + hashlib.sha256(call.system.encode()).hexdigest()
    hit = state.cache_hit(key)
    if call.provider == "anthropic":
        return Usage(
            prompt_tokens,
            completion_tokens,
            cached_tokens=prefix if hit else 0,
            cache_write_tokens=0 if hit else prefix,
        )
    cached = (prefix // CACHE_BLOCK) * CACHE_BLOCK if hit else 0
    return Usage(prompt_tokens, completion_tokens, cached_tokens=cached)


async def hold_for_timeout(is_disconnected: Callable[[], Awaitable[bool]]) -> None:
    """A 'timeout' fault: answer nothing until the client gives up (or 30 s pass)."""
    deadline = time.monotonic() + TIMEOUT_HOLD_SECONDS
    while time.monotonic() < deadline and not await is_disconnected():
        await asyncio.sleep(0.05)
