"""Anthropic adapter on the official ``anthropic`` SDK (Messages API).

The system prompt goes in the top-level ``system`` field; with ``cache_system`` it is sent as a
text block carrying ``cache_control`` so the static part of a prompt is cached. ``temperature``
is never sent: API version 2026-10-21 (the SDK's default) rejects it, even for 1.0. Calls go
through ``with_raw_response`` so the ``anthropic-ratelimit-*`` headers reach the rate limiter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import (
    AuthenticationError,
    BatchItemNotRunError,
    BatchNotFoundError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from llm_orchestrator.providers._common import PerLoop, anthropic_rate_limits, elapsed_ms, item_response, retry_after
from llm_orchestrator.providers.base import (
    BaseLLMProvider,
    BatchItem,
    BatchState,
    BatchStatus,
    FinishReason,
    LLMResponse,
    Message,
    RateLimits,
    RemoteModel,
    RequestOptions,
    StreamChunk,
    Usage,
)

log = logging.getLogger(__name__)
PROVIDER = "anthropic"
FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
REFUSED = "refused (stop_reason: refusal)"  # LLMResponse.refusal when no explanation came with it
SPEND_LIMIT_CODES = ("enforced_spend_limit_reached", "contract_spend_limit_reached")  # 429s waiting cannot fix
SDK_ERRORS = (anthropic.APIError, json.JSONDecodeError, httpx2.TransportError)
BATCHES_PATH = "/v1/messages/batches"
# An errored batch item carries only the error type; this is the status a live call would have had.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicAdapter(BaseLLMProvider):
    """Messages through ``anthropic.Anthropic`` / ``AsyncAnthropic`` with SDK retries off."""

    name = PROVIDER

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._client: anthropic.Anthropic | None = None
        self._aclients: PerLoop[anthropic.AsyncAnthropic] = PerLoop(
            lambda: anthropic.AsyncAnthropic(**self._client_args())
        )

    def _client_args(self) -> dict[str, Any]:
        t = self._config.timeout
        args: dict[str, Any] = {
            "api_key": self._config.api_key.get_secret_value(),
            "max_retries": 0,
            "timeout": anthropic.Timeout(t.read, connect=t.connect),
        }
        if self._config.base_url:
            args["base_url"] = self._config.base_url
        return args

    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            self._client = anthropic.Anthropic(**self._client_args())
        return self._client

    def _request(self, messages: list[Message], model: str, options: RequestOptions) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": options.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
        }
        if system:
            block: dict[str, Any] = {"type": "text", "text": system}
            if options.cache_system:
                block["cache_control"] = {"type": "ephemeral"}
            request["system"] = [block]
        if options.stop:
            request["stop_sequences"] = list(options.stop)
        if options.timeout is not None:
            request["timeout"] = options.timeout
        if options.temperature is not None:
            log.debug("temperature is not sent to Anthropic (rejected by API version 2026-10-21)")
        return request

    def generate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = self.client.messages.with_raw_response.create(**self._request(messages, model, options))
            parsed = raw.parse()
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(parsed, model, started, anthropic_rate_limits(raw.headers))

    async def agenerate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = await self._aclients.get().messages.with_raw_response.create(
                **self._request(messages, model, options)
            )
            parsed = await raw.parse()
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(parsed, model, started, anthropic_rate_limits(raw.headers))

    def stream(self, messages: list[Message], model: str, options: RequestOptions) -> Iterator[StreamChunk]:
        started = time.perf_counter()
        acc = _StreamState(model)
        try:
            raw = self.client.messages.with_raw_response.create(**self._request(messages, model, options), stream=True)
            acc.rate_limits = anthropic_rate_limits(raw.headers)
            for event in raw.parse():
                text = acc.add(event)
                if text:
                    yield StreamChunk(text=text)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        yield acc.final(started)

    async def astream(self, messages: list[Message], model: str, options: RequestOptions) -> AsyncIterator[StreamChunk]:
        started = time.perf_counter()
        acc = _StreamState(model)
        try:
            raw = await self._aclients.get().messages.with_raw_response.create(
                **self._request(messages, model, options), stream=True
            )
            acc.rate_limits = anthropic_rate_limits(raw.headers)
            stream = await raw.parse()
            async for event in stream:
                text = acc.add(event)
                if text:
                    yield StreamChunk(text=text)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        yield acc.final(started)

    def list_models(self) -> list[RemoteModel]:
        try:
            return [_remote(m) for m in self.client.models.list()]  # the pager follows after_id
        except SDK_ERRORS as e:
            raise _error(e, None) from e

    # -- batch lane: Message Batches ---------------------------------------------------------

    def submit_batch(self, items: list[BatchItem], model: str) -> str:
        requests = []
        for item in items:
            params = self._request(item.messages, model, item.options)
            params.pop("timeout", None)
            requests.append({"custom_id": item.custom_id, "params": params})
        try:
            batch = self.client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return batch.id

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._batch(batch_id)
        c = batch.request_counts
        state: BatchState = "running"
        if batch.processing_status == "ended":
            state = "cancelled" if batch.cancel_initiated_at is not None else "expired" if c.expired else "done"
        return BatchStatus(
            batch_id=batch.id,
            state=state,
            provider_state=batch.processing_status,
            total=c.processing + c.succeeded + c.errored + c.canceled + c.expired,
            succeeded=c.succeeded,
            failed=c.errored + c.canceled + c.expired,
        )

    def batch_results(self, batch_id: str) -> dict[str, LLMResponse | ProviderError]:
        batch = self._batch(batch_id)
        if batch.processing_status != "ended":
            raise InvalidRequestError(
                PROVIDER, None, f"batch has not ended yet ({batch.processing_status})", code="batch_running"
            )
        results: dict[str, LLMResponse | ProviderError] = {}
        try:
            for line in self.client.messages.batches.results(batch_id):
                results[line.custom_id] = self._item(line.result)
        except SDK_ERRORS as e:
            raise _batch_error(e, batch_id) from e
        return results

    def cancel_batch(self, batch_id: str) -> None:
        try:
            self.client.messages.batches.cancel(batch_id)
        except SDK_ERRORS as e:
            raise _batch_error(e, batch_id) from e

    def _batch(self, batch_id: str) -> Any:
        try:
            return self.client.messages.batches.retrieve(batch_id)
        except SDK_ERRORS as e:
            raise _batch_error(e, batch_id) from e

    def _item(self, result: Any) -> LLMResponse | ProviderError:
        """One batch result: ``succeeded``, ``errored``, ``canceled`` or ``expired``."""
        if result.type == "succeeded":
            return _response(result.message, result.message.model, time.perf_counter())
        if result.type in ("canceled", "expired"):
            return BatchItemNotRunError(
                PROVIDER, None, f"the batch ended before this item ran ({result.type})", code=result.type
            )
        body = result.error.to_dict()
        status = ERROR_STATUS.get(body.get("error", {}).get("type"), 500)
        sdk_error = self.client._make_status_error_from_response(item_response(status, body, BATCHES_PATH))
        err = _error(sdk_error, None)
        err.__cause__ = sdk_error
        return err

    def warm_up(self) -> None:
        """Touch the lazily imported SDK resources (no request is sent)."""
        client = self.client
        _ = (client.messages, client.models)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _StreamState:
    """Accumulates Messages stream events (message_start … message_stop)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.request_id: str | None = None
        self.stopped = False
        self.rate_limits: RateLimits | None = None

    def add(self, event: Any) -> str:
        kind = event.type
        if kind == "message_start":
            self.request_id = event.message.id
            self.model = event.message.model or self.model
            self.usage.update(_usage_fields(event.message.usage))
        elif kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            self.parts.append(event.delta.text)
            return event.delta.text
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.usage.update(_usage_fields(event.usage))  # cumulative: overwrites the snapshot
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def final(self, started: float) -> StreamChunk:
        if not self.stopped:
            raise ServerError(PROVIDER, self.model, "stream ended before message_stop")
        response = LLMResponse.from_usage(
            content="".join(self.parts),
            provider=PROVIDER,
            model=self.model,
            finish_reason=FINISH.get(self.stop_reason or "", "error"),
            usage=_to_usage(self.usage),
            latency_ms=elapsed_ms(started),
            request_id=self.request_id,
            refusal=REFUSED if self.stop_reason == "refusal" else None,
            rate_limits=self.rate_limits,
        )
        return StreamChunk(text="", done=True, response=response)


def _usage_fields(usage: Any) -> dict[str, int]:
    fields = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return {f: v for f in fields if (v := getattr(usage, f, None)) is not None}


def _to_usage(u: dict[str, int]) -> Usage:
    """Anthropic's ``input_tokens`` excludes cache reads and writes; ours includes them."""
    read, write = u.get("cache_read_input_tokens", 0), u.get("cache_creation_input_tokens", 0)
    return Usage(
        prompt_tokens=u.get("input_tokens", 0) + read + write,
        completion_tokens=u.get("output_tokens", 0),
        cached_tokens=read,
        cache_write_tokens=write,
    )


def _response(raw: Any, model: str, started: float, rate_limits: RateLimits | None = None) -> LLMResponse:
    text = "".join(block.text for block in raw.content or [] if getattr(block, "type", None) == "text")
    return LLMResponse.from_usage(
        content=text,
        provider=PROVIDER,
        model=raw.model or model,
        finish_reason=FINISH.get(raw.stop_reason or "", "error"),
        usage=_to_usage(_usage_fields(raw.usage)),
        latency_ms=elapsed_ms(started),
        request_id=getattr(raw, "_request_id", None) or raw.id,
        refusal=_refusal(raw),
        rate_limits=rate_limits,
    )


def _refusal(raw: Any) -> str | None:
    """``stop_reason: "refusal"``: the explanation in ``stop_details`` when given, else a fixed word."""
    if raw.stop_reason != "refusal":
        return None
    details = getattr(raw, "stop_details", None)
    explanation = getattr(details, "explanation", None) if details is not None else None
    return explanation or REFUSED


def _remote(m: Any) -> RemoteModel:
    return RemoteModel(
        id=m.id,
        created=getattr(m, "created_at", None),
        deprecated=getattr(m, "lifecycle", None) in ("deprecated", "retired"),
    )


def _error(e: Exception, model: str | None) -> ProviderError:
    """Map one SDK error to the library's error tree, class by class."""
    if isinstance(e, anthropic.APITimeoutError):
        return RequestTimeoutError(PROVIDER, model, "request timed out")
    if isinstance(e, anthropic.APIConnectionError):
        return ServerError(PROVIDER, model, "connection failed")
    if isinstance(e, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return AuthenticationError(PROVIDER, model, "API key rejected", status=e.status_code)
    if isinstance(e, anthropic.PaymentRequiredError):
        return QuotaExceededError(PROVIDER, model, "billing: payment required", status=402)
    if isinstance(e, anthropic.RateLimitError):
        if e.error_code in SPEND_LIMIT_CODES:
            return QuotaExceededError(PROVIDER, model, "spend limit reached", status=429, code=e.error_code)
        return RateLimitError(
            PROVIDER, model, "rate limited", status=429, code=e.error_code, retry_after=retry_after(e.response.headers)
        )
    if isinstance(e, anthropic.NotFoundError):
        return ModelNotFoundError(PROVIDER, model, "model not found", status=404)
    if isinstance(e, anthropic.RequestTimeoutError):
        return RequestTimeoutError(PROVIDER, model, "request timeout", status=408)
    if isinstance(e, anthropic.BadRequestError | anthropic.UnprocessableEntityError | anthropic.ContentTooLargeError):
        return InvalidRequestError(PROVIDER, model, "invalid request", status=e.status_code, code=e.error_code)
    if isinstance(e, anthropic.InternalServerError):  # incl. 503, 504 and 529 OverloadedError
        reason = "overloaded" if isinstance(e, anthropic.OverloadedError) else "server error"
        return ServerError(PROVIDER, model, reason, status=e.status_code, retry_after=retry_after(e.response.headers))
    if isinstance(e, anthropic.APIStatusError):
        return _other_status(e, model)
    if isinstance(e, json.JSONDecodeError):
        return ServerError(PROVIDER, model, "malformed response body")
    if isinstance(e, httpx2.TimeoutException):
        return RequestTimeoutError(PROVIDER, model, "stream read timed out")
    return ServerError(PROVIDER, model, f"transport error ({type(e).__name__})")


def _batch_error(e: Exception, batch_id: str) -> ProviderError:
    """Like :func:`_error` for a call about an existing batch, where 404 means an unknown batch id."""
    if isinstance(e, anthropic.NotFoundError):
        return BatchNotFoundError(PROVIDER, None, f"unknown batch id {batch_id!r}", status=404)
    return _error(e, None)


def _other_status(e: anthropic.APIStatusError, model: str | None) -> ProviderError:
    if e.status_code == 200:  # an `event: error` inside a stream (e.g. overloaded_error)
        return ServerError(PROVIDER, model, f"error event in stream ({e.type or 'unknown'})")
    if e.status_code == 409 or e.status_code >= 500:
        return ServerError(PROVIDER, model, "server error", status=e.status_code)
    return InvalidRequestError(PROVIDER, model, "invalid request", status=e.status_code, code=e.error_code)
