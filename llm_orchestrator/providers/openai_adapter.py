"""OpenAI adapter on the official ``openai`` SDK (Chat Completions API).

Calls go through ``with_raw_response`` so the ``x-ratelimit-*`` headers reach the rate limiter
(``LLMResponse.rate_limits``). A 429's wait comes from the precise "Please try again in 2.844s"
of its message when present (``retry-after`` is whole seconds), else from the headers.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx2
import openai
import pydantic
from openai.types.chat import ChatCompletion

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import (
    AuthenticationError,
    BatchItemNotRunError,
    BatchNotFoundError,
    ContentBlockedError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from llm_orchestrator.providers._common import (
    PerLoop,
    duration_seconds,
    elapsed_ms,
    item_response,
    openai_rate_limits,
    retry_after,
)
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
PROVIDER = "openai"
FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
QUOTA_CODES = ("insufficient_quota",)  # a 429 that waiting cannot fix
TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)")
# OpenAI's model list says nothing about capabilities; these id fragments mark non-chat models.
NON_CHAT_MARKERS = ("embedding", "tts", "whisper", "dall-e", "moderation", "transcribe", "image")
SDK_ERRORS = (openai.APIError, json.JSONDecodeError, httpx2.TransportError)
BATCH_ENDPOINT: Final = "/v1/chat/completions"
BATCH_STATES: dict[str, BatchState] = {
    "completed": "done",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}  # validating, in_progress, finalizing,
# cancelling: still running
NOT_RUN_CODES = ("batch_cancelled", "batch_expired")


class OpenAIAdapter(BaseLLMProvider):
    """Chat completions through ``openai.OpenAI`` / ``AsyncOpenAI`` with SDK retries off.

    Args:
        config: the ``providers.openai`` block (key, base_url, timeouts).
    """

    name = PROVIDER

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._client: openai.OpenAI | None = None
        self._aclients: PerLoop[openai.AsyncOpenAI] = PerLoop(lambda: openai.AsyncOpenAI(**self._client_args()))

    def _client_args(self) -> dict[str, Any]:
        t = self._config.timeout
        return {
            "api_key": self._config.api_key.get_secret_value(),
            "base_url": self._config.base_url,
            "max_retries": 0,
            "timeout": openai.Timeout(t.read, connect=t.connect),
        }

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(**self._client_args())
        return self._client

    # -- requests ---------------------------------------------------------------------------

    def _request(self, messages: list[Message], model: str, options: RequestOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_completion_tokens": options.max_tokens,
        }
        if options.temperature is not None:
            request["temperature"] = options.temperature
        if options.stop:
            request["stop"] = list(options.stop)
        if options.timeout is not None:
            request["timeout"] = options.timeout
        return request

    def generate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = self.client.chat.completions.with_raw_response.create(**self._request(messages, model, options))
            parsed = raw.parse()
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(parsed, model, started, openai_rate_limits(raw.headers))

    async def agenerate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = await self._aclients.get().chat.completions.with_raw_response.create(
                **self._request(messages, model, options)
            )
            parsed = raw.parse()
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(parsed, model, started, openai_rate_limits(raw.headers))

    def stream(self, messages: list[Message], model: str, options: RequestOptions) -> Iterator[StreamChunk]:
        started = time.perf_counter()
        request = {**self._request(messages, model, options), "stream": True, "stream_options": {"include_usage": True}}
        acc = _StreamState(model)
        try:
            raw = self.client.chat.completions.with_raw_response.create(**request)
            acc.rate_limits = openai_rate_limits(raw.headers)
            for event in raw.parse():
                text = acc.add(event)
                if text:
                    yield StreamChunk(text=text)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        yield acc.final(started)

    async def astream(self, messages: list[Message], model: str, options: RequestOptions) -> AsyncIterator[StreamChunk]:
        started = time.perf_counter()
        request = {**self._request(messages, model, options), "stream": True, "stream_options": {"include_usage": True}}
        acc = _StreamState(model)
        try:
            raw = await self._aclients.get().chat.completions.with_raw_response.create(**request)
            acc.rate_limits = openai_rate_limits(raw.headers)
            async for event in raw.parse():
                text = acc.add(event)
                if text:
                    yield StreamChunk(text=text)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        yield acc.final(started)

    def list_models(self) -> list[RemoteModel]:
        try:
            page = self.client.models.list()
            return [_remote(m) for m in page]
        except SDK_ERRORS as e:
            raise _error(e, None) from e

    # -- batch lane: a JSONL file of chat requests, then a batch over it ----------------------

    def submit_batch(self, items: list[BatchItem], model: str) -> str:
        lines = []
        for item in items:
            body = self._request(item.messages, model, item.options)
            body.pop("timeout", None)
            lines.append(
                json.dumps({"custom_id": item.custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": body}) + "\n"
            )
        try:
            upload = self.client.files.create(
                file=("batch.jsonl", "".join(lines).encode(), "application/jsonl"), purpose="batch"
            )
            batch = self.client.batches.create(
                input_file_id=upload.id, endpoint=BATCH_ENDPOINT, completion_window="24h"
            )
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return batch.id

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._batch(batch_id)
        counts = batch.request_counts
        return BatchStatus(
            batch_id=batch.id,
            state=BATCH_STATES.get(batch.status, "running"),
            provider_state=batch.status,
            total=counts.total if counts else 0,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
        )

    def batch_results(self, batch_id: str) -> dict[str, LLMResponse | ProviderError]:
        batch = self._batch(batch_id)
        if BATCH_STATES.get(batch.status, "running") == "running":
            raise InvalidRequestError(
                PROVIDER, batch.model, f"batch has not ended yet ({batch.status})", code="batch_running"
            )
        results: dict[str, LLMResponse | ProviderError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                text = self.client.files.content(file_id).text
            except SDK_ERRORS as e:
                raise _error(e, batch.model) from e
            for line in filter(str.strip, text.splitlines()):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ServerError(PROVIDER, batch.model, "malformed batch results file") from e
                results[str(entry.get("custom_id"))] = self._item(entry, batch.model or "")
        return results

    def cancel_batch(self, batch_id: str) -> None:
        try:
            self.client.batches.cancel(batch_id)
        except SDK_ERRORS as e:
            raise _batch_error(e, batch_id) from e

    def _batch(self, batch_id: str) -> Any:
        try:
            return self.client.batches.retrieve(batch_id)
        except SDK_ERRORS as e:
            raise _batch_error(e, batch_id) from e

    def _item(self, entry: dict[str, Any], model: str) -> LLMResponse | ProviderError:
        """One line of a batch output or error file."""
        response, error = entry.get("response"), entry.get("error")
        if response is None:
            code = (error or {}).get("code")
            if code in NOT_RUN_CODES:
                return BatchItemNotRunError(PROVIDER, model, "the batch ended before this item ran", code=code)
            return InvalidRequestError(PROVIDER, model, "batch item rejected", code=code)
        if response.get("status_code") != 200:
            sdk_error = self.client._make_status_error_from_response(
                item_response(response["status_code"], response.get("body"), BATCH_ENDPOINT)
            )
            err = _error(sdk_error, model)
            err.__cause__ = sdk_error
            return err
        try:
            result = _response(ChatCompletion.model_validate(response.get("body")), model, time.perf_counter())
        except pydantic.ValidationError:
            return ServerError(PROVIDER, model, "malformed batch item")
        except ProviderError as err:  # e.g. no choices
            return err
        result.request_id = response.get("request_id") or result.request_id
        return result

    def warm_up(self) -> None:
        """Touch the lazily imported SDK resources (no request is sent)."""
        client = self.client
        _ = (client.chat.completions, client.models, self._aclients)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _StreamState:
    """Accumulates a chat-completion stream into the final response."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None
        self.request_id: str | None = None
        self.answered_by = model
        self.refusal: list[str] = []
        self.rate_limits: RateLimits | None = None

    def add(self, event: Any) -> str:
        self.request_id = self.request_id or getattr(event, "id", None)
        self.answered_by = getattr(event, "model", None) or self.answered_by
        if event.usage is not None:
            self.usage = event.usage
        if not event.choices:
            return ""
        choice = event.choices[0]
        self.finish = choice.finish_reason or self.finish
        if choice.delta is None:
            return ""
        if getattr(choice.delta, "refusal", None):
            self.refusal.append(choice.delta.refusal)
        text = choice.delta.content or ""
        self.parts.append(text)
        return text

    def final(self, started: float) -> StreamChunk:
        if self.finish is None:
            raise ServerError(PROVIDER, self.model, "stream ended before its final chunk")
        refusal = "".join(self.refusal) or None
        response = LLMResponse.from_usage(
            content="".join(self.parts),
            provider=PROVIDER,
            model=self.answered_by,
            finish_reason=_finish(self.finish, refusal),
            usage=_usage(self.usage),
            latency_ms=elapsed_ms(started),
            request_id=self.request_id,
            refusal=refusal,
            rate_limits=self.rate_limits,
        )
        return StreamChunk(text="", done=True, response=response)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        cached_tokens=getattr(prompt_details, "cached_tokens", None) or 0,
        cache_write_tokens=getattr(prompt_details, "cache_write_tokens", None) or 0,
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", None) or 0,
    )


def _response(raw: Any, model: str, started: float, rate_limits: RateLimits | None = None) -> LLMResponse:
    if not raw.choices:
        raise ServerError(PROVIDER, model, "response has no choices")
    choice = raw.choices[0]
    refusal = getattr(choice.message, "refusal", None) or None
    return LLMResponse.from_usage(
        content=choice.message.content or "",
        provider=PROVIDER,
        model=raw.model or model,
        finish_reason=_finish(choice.finish_reason, refusal),
        usage=_usage(raw.usage),
        latency_ms=elapsed_ms(started),
        request_id=getattr(raw, "_request_id", None) or raw.id,
        refusal=refusal,
        rate_limits=rate_limits,
    )


def _finish(reason: str | None, refusal: str | None) -> FinishReason:
    """A refusal in words finishes with ``stop`` on the wire; ours says ``content_filter``."""
    return "content_filter" if refusal else FINISH.get(reason or "", "error")


def _remote(m: Any) -> RemoteModel:
    model_id: str = m.id
    created = None
    if getattr(m, "created", None):
        from datetime import datetime, timezone

        created = datetime.fromtimestamp(m.created, tz=timezone.utc)
    can_generate = not any(marker in model_id for marker in NON_CHAT_MARKERS)
    return RemoteModel(
        id=model_id,
        tuned=model_id.startswith(("ft:", "ft-")),
        can_generate=can_generate,
        created=created,
        deprecated=bool(getattr(m, "shutdown_date", None)),
    )


def _error(e: Exception, model: str | None) -> ProviderError:
    """Map one SDK error to the library's error tree, class by class."""
    if isinstance(e, openai.APITimeoutError):
        return RequestTimeoutError(PROVIDER, model, "request timed out")
    if isinstance(e, openai.APIConnectionError):
        return ServerError(PROVIDER, model, "connection failed")
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return AuthenticationError(PROVIDER, model, "API key rejected", status=e.status_code)
    if isinstance(e, openai.RateLimitError):
        if e.code in QUOTA_CODES or e.type in QUOTA_CODES:
            return QuotaExceededError(PROVIDER, model, "quota exhausted", status=429, code=e.code)
        wait = _try_again_in(e.message) or retry_after(e.response.headers)
        return RateLimitError(
            PROVIDER, model, f"rate limited ({e.type or 'requests'})", status=429, code=e.code, retry_after=wait
        )
    if isinstance(e, openai.NotFoundError):
        return ModelNotFoundError(PROVIDER, model, "model not found", status=404, code=e.code)
    if isinstance(e, openai.BadRequestError) and e.code == "content_policy_violation":
        return ContentBlockedError(PROVIDER, model, "content policy violation", status=400, code=e.code)
    if isinstance(e, openai.BadRequestError | openai.UnprocessableEntityError):
        return InvalidRequestError(PROVIDER, model, "invalid request", status=e.status_code, code=e.code)
    if isinstance(e, openai.InternalServerError):
        return ServerError(
            PROVIDER, model, "server error", status=e.status_code, retry_after=retry_after(e.response.headers)
        )
    if isinstance(e, openai.APIStatusError):
        return _other_status(e, model)
    if isinstance(e, openai.APIError):  # an error event inside a stream: no status
        return ServerError(PROVIDER, model, "error event in stream")
    if isinstance(e, json.JSONDecodeError):
        return ServerError(PROVIDER, model, "malformed response body")
    if isinstance(e, httpx2.TimeoutException):
        return RequestTimeoutError(PROVIDER, model, "request timed out")
    return ServerError(PROVIDER, model, f"transport error ({type(e).__name__})")


def _try_again_in(message: str | None) -> float | None:
    """The wait in "... Please try again in 2.844s." (or "in 120ms") of a 429's message."""
    match = TRY_AGAIN.search(message or "")
    return duration_seconds(match.group(1)) if match else None


def _batch_error(e: Exception, batch_id: str) -> ProviderError:
    """Like :func:`_error` for a call about an existing batch, where 404 means an unknown batch id."""
    if isinstance(e, openai.NotFoundError):
        return BatchNotFoundError(PROVIDER, None, f"unknown batch id {batch_id!r}", status=404)
    return _error(e, None)


def _other_status(e: openai.APIStatusError, model: str | None) -> ProviderError:
    status = e.status_code
    if status == 408:
        return RequestTimeoutError(PROVIDER, model, "request timeout", status=status)
    if status == 402:
        return QuotaExceededError(PROVIDER, model, "payment required", status=status)
    if status == 409 or status >= 500:
        return ServerError(PROVIDER, model, "server error", status=status, retry_after=retry_after(e.response.headers))
    return InvalidRequestError(PROVIDER, model, "invalid request", status=status, code=e.code)
