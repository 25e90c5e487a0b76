"""Gemini adapter on the official ``google-genai`` SDK (Gemini Developer API).

``google-genai`` replaces the end-of-life ``google-generativeai`` package. The SDK has no
default timeout and retries nothing unless told to; this adapter always sets a timeout and
never sets ``retry_options``. Roles are ``user``/``model``; the system prompt goes in
``system_instruction``. A prompt blocked by safety filters (no candidates, a
``prompt_feedback.block_reason``) raises :class:`ContentBlockedError`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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
from llm_orchestrator.providers._common import MAX_RETRY_AFTER_SECONDS, elapsed_ms, item_response, retry_after
from llm_orchestrator.providers.base import (
    BaseLLMProvider,
    BatchItem,
    BatchState,
    BatchStatus,
    FinishReason,
    LLMResponse,
    Message,
    RemoteModel,
    RequestOptions,
    StreamChunk,
    Usage,
)

log = logging.getLogger(__name__)
PROVIDER = "gemini"
BLOCKED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "IMAGE_OTHER",
}
FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(BLOCKED, "content_filter"),
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
}
DEFAULT_SAFETY = dict.fromkeys(
    (
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    ),
    "BLOCK_ONLY_HIGH",
)
SDK_ERRORS = (genai_errors.APIError, genai_errors.UnknownApiResponseError, json.JSONDecodeError, httpx2.TransportError)
BATCH_STATES: dict[str, BatchState] = {
    "JOB_STATE_SUCCEEDED": "done",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "done",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}  # pending, queued, running...: running
# A batch item's error is a google.rpc.Status: gRPC code -> (HTTP status, status name) of a live call.
GRPC_STATUS = {
    1: (499, "CANCELLED"),
    2: (500, "UNKNOWN"),
    3: (400, "INVALID_ARGUMENT"),
    4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"),
    7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"),
    9: (400, "FAILED_PRECONDITION"),
    10: (409, "ABORTED"),
    12: (501, "UNIMPLEMENTED"),
    13: (500, "INTERNAL"),
    14: (503, "UNAVAILABLE"),
    16: (401, "UNAUTHENTICATED"),
}
GRPC_CANCELLED = 1
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED")
PER_DAY_QUOTA = "PerDay"  # quotaId e.g. GenerateRequestsPerDayPerProjectPerModel-FreeTier


class GeminiAdapter(BaseLLMProvider):
    """generateContent through ``genai.Client`` (async: ``client.aio``), timeouts always set."""

    name = PROVIDER

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._client: genai.Client | None = None  # kept referenced: it closes itself in __del__
        self._safety = [
            types.SafetySetting(category=types.HarmCategory(c), threshold=types.HarmBlockThreshold(t))
            for c, t in (config.safety_settings or DEFAULT_SAFETY).items()
        ]

    @property
    def client(self) -> genai.Client:
        if self._client is None:
            t = self._config.timeout
            options = types.HttpOptions(timeout=int((t.connect + t.read) * 1000), base_url=self._config.base_url)
            self._client = genai.Client(api_key=self._config.api_key.get_secret_value(), http_options=options)
        return self._client

    def _request(self, messages: list[Message], model: str, options: RequestOptions) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
            for m in messages
            if m.role != "system"
        ]
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            max_output_tokens=options.max_tokens,
            temperature=options.temperature,
            stop_sequences=list(options.stop) or None,
            safety_settings=self._safety,
            http_options=types.HttpOptions(timeout=math.ceil(options.timeout * 1000)) if options.timeout else None,
        )
        return {"model": model, "contents": contents, "config": config}

    def generate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = self.client.models.generate_content(**self._request(messages, model, options))
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(raw, model, started)

    async def agenerate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        started = time.perf_counter()
        try:
            raw = await self.client.aio.models.generate_content(**self._request(messages, model, options))
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return _response(raw, model, started)

    def stream(self, messages: list[Message], model: str, options: RequestOptions) -> Iterator[StreamChunk]:
        started = time.perf_counter()
        acc = _StreamState(model)
        try:
            for event in self.client.models.generate_content_stream(**self._request(messages, model, options)):
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
            async for event in await self.client.aio.models.generate_content_stream(
                **self._request(messages, model, options)
            ):
                text = acc.add(event)
                if text:
                    yield StreamChunk(text=text)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        yield acc.final(started)

    def list_models(self) -> list[RemoteModel]:
        try:
            return [_remote(m) for m in self.client.models.list()]  # the pager follows nextPageToken
        except SDK_ERRORS as e:
            raise _error(e, None) from e

    # -- batch lane: batchGenerateContent with inlined requests -------------------------------

    def submit_batch(self, items: list[BatchItem], model: str) -> str:
        inlined = []
        for item in items:
            request = self._request(item.messages, model, item.options)
            config = request["config"].model_copy(update={"http_options": None})
            inlined.append(
                types.InlinedRequest(contents=request["contents"], config=config, metadata={"key": item.custom_id})
            )
        try:
            job = self.client.batches.create(model=model, src=inlined)
        except SDK_ERRORS as e:
            raise _error(e, model) from e
        return job.name or ""

    def batch_status(self, batch_id: str) -> BatchStatus:
        job = self._job(batch_id)
        state = _name(job.state) if job.state is not None else ""
        responses = (job.dest.inlined_responses if job.dest else None) or []
        failed = sum(1 for r in responses if r.error is not None)
        return BatchStatus(
            batch_id=job.name or batch_id,
            state=BATCH_STATES.get(state, "running"),
            provider_state=state,
            total=len(responses),
            succeeded=len(responses) - failed,
            failed=failed,
        )

    def batch_results(self, batch_id: str) -> dict[str, LLMResponse | ProviderError]:
        job = self._job(batch_id)
        model = (job.model or "").removeprefix("models/") or None
        if BATCH_STATES.get(_name(job.state) if job.state is not None else "", "running") == "running":
            raise InvalidRequestError(PROVIDER, model, "batch has not ended yet", code="batch_running")
        results: dict[str, LLMResponse | ProviderError] = {}
        for n, inlined in enumerate((job.dest.inlined_responses if job.dest else None) or []):
            custom_id = (inlined.metadata or {}).get("key") or str(n)
            results[custom_id] = _item(inlined, model)
        return results

    def cancel_batch(self, batch_id: str) -> None:
        name = _batch_name(batch_id)
        try:
            self.client.batches.cancel(name=name)
        except SDK_ERRORS as e:
            raise _batch_error(e, name) from e

    def _job(self, batch_id: str) -> Any:
        name = _batch_name(batch_id)
        try:
            return self.client.batches.get(name=name)
        except SDK_ERRORS as e:
            raise _batch_error(e, name) from e

    def warm_up(self) -> None:
        """Touch the lazily imported SDK resources (no request is sent)."""
        client = self.client
        _ = (client.models, client.aio.models)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _StreamState:
    def __init__(self, model: str) -> None:
        self.model = model
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None
        self.request_id: str | None = None

    def add(self, event: Any) -> str:
        _raise_if_blocked(event, self.model)
        self.usage = event.usage_metadata or self.usage
        self.request_id = self.request_id or event.response_id
        self.model = event.model_version or self.model
        candidate = event.candidates[0] if event.candidates else None
        if candidate is not None and candidate.finish_reason is not None:
            self.finish = _name(candidate.finish_reason)
        text = _text(candidate)
        self.parts.append(text)
        return text

    def final(self, started: float) -> StreamChunk:
        if self.finish is None:
            raise ServerError(PROVIDER, self.model, "stream ended without a finishReason")
        response = LLMResponse.from_usage(
            content="".join(self.parts),
            provider=PROVIDER,
            model=self.model,
            finish_reason=FINISH.get(self.finish, "error"),
            usage=_usage(self.usage),
            latency_ms=elapsed_ms(started),
            request_id=self.request_id,
        )
        return StreamChunk(text="", done=True, response=response)


def _name(value: Any) -> str:
    return getattr(value, "value", None) or str(value)


def _text(candidate: Any) -> str:
    if candidate is None or candidate.content is None or not candidate.content.parts:
        return ""
    return "".join(p.text for p in candidate.content.parts if p.text and not p.thought)


def _raise_if_blocked(raw: Any, model: str) -> None:
    feedback = raw.prompt_feedback
    if not raw.candidates and feedback is not None and feedback.block_reason is not None:
        raise ContentBlockedError(PROVIDER, model, f"prompt blocked ({_name(feedback.block_reason)})")


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    return Usage(
        prompt_tokens=meta.prompt_token_count or 0,  # includes cached tokens
        completion_tokens=(meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0),
        cached_tokens=meta.cached_content_token_count or 0,
        reasoning_tokens=meta.thoughts_token_count or 0,
    )


def _response(raw: Any, model: str, started: float) -> LLMResponse:
    _raise_if_blocked(raw, model)
    candidate = raw.candidates[0] if raw.candidates else None
    if candidate is None:
        raise ServerError(PROVIDER, model, "response has no candidates")
    finish = _name(candidate.finish_reason) if candidate.finish_reason is not None else ""
    return LLMResponse.from_usage(
        content=_text(candidate),
        provider=PROVIDER,
        model=raw.model_version or model,
        finish_reason=FINISH.get(finish, "error"),
        usage=_usage(raw.usage_metadata),
        latency_ms=elapsed_ms(started),
        request_id=raw.response_id,
    )


def _remote(m: Any) -> RemoteModel:
    name: str = m.name or ""
    actions = m.supported_actions or []
    return RemoteModel(
        id=name.removeprefix("models/"),
        tuned=name.startswith("tunedModels/"),
        can_generate="generateContent" in actions,
    )


def _error(e: Exception, model: str | None) -> ProviderError:
    """Map one SDK error to the library's error tree, class by class."""
    if isinstance(e, genai_errors.ClientError):
        return _client_error(e, model)
    if isinstance(e, genai_errors.ServerError):
        return ServerError(
            PROVIDER,
            model,
            f"server error ({e.status})",
            status=e.code,
            retry_after=_retry_delay(_details(e)) or retry_after(getattr(e.response, "headers", None)),
        )
    if isinstance(e, genai_errors.APIError):  # a status outside 4xx/5xx, or an in-stream error
        return ServerError(PROVIDER, model, f"API error ({e.status})", status=e.code)
    if isinstance(e, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
        return ServerError(PROVIDER, model, "malformed response body")
    if isinstance(e, httpx2.TimeoutException):
        return RequestTimeoutError(PROVIDER, model, "request timed out")
    return ServerError(PROVIDER, model, f"transport error ({type(e).__name__})")


def _batch_name(batch_id: str) -> str:
    """``batches/{id}`` (the SDK rejects anything else before sending a request)."""
    name = batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"
    if name.count("/") != 1 or name.endswith("/"):
        raise BatchNotFoundError(PROVIDER, None, f"unknown batch id {batch_id!r}", status=404)
    return name


def _batch_error(e: Exception, name: str) -> ProviderError:
    """Like :func:`_error` for a call about an existing batch, where 404 means an unknown batch id."""
    if isinstance(e, genai_errors.ClientError) and e.code == 404:
        return BatchNotFoundError(PROVIDER, None, f"unknown batch id {name!r}", status=404)
    return _error(e, None)


def _item(inlined: Any, model: str | None) -> LLMResponse | ProviderError:
    """One inlined batch response: a GenerateContentResponse or a google.rpc.Status error."""
    if inlined.error is None:
        if inlined.response is None:
            return ServerError(PROVIDER, model, "batch item has neither a response nor an error")
        try:
            return _response(inlined.response, model or "", time.perf_counter())
        except ProviderError as err:  # blocked prompt, no candidates
            return err
    code = inlined.error.code or 2
    if code == GRPC_CANCELLED:
        return BatchItemNotRunError(PROVIDER, model, "the batch ended before this item ran", code="CANCELLED")
    status, name = GRPC_STATUS.get(code, (500, "UNKNOWN"))
    body = {"error": {"code": status, "message": inlined.error.message or "", "status": name}}
    error_class = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    sdk_error = error_class(status, body, item_response(status, body, "batchGenerateContent"))
    converted = _error(sdk_error, model)
    converted.__cause__ = sdk_error
    return converted


def _client_error(e: genai_errors.ClientError, model: str | None) -> ProviderError:
    """4xx. Wire facts (README, provider notes): a bad key is 400 INVALID_ARGUMENT with an
    ``ErrorInfo`` reason ``API_KEY_INVALID``; a missing key 403 PERMISSION_DENIED; a 429 carries
    ``QuotaFailure`` (which quota) and ``RetryInfo`` (``retryDelay``), not a Retry-After header."""
    status = e.code
    details = _details(e)
    if status in (401, 403) or _reason(details) in AUTH_REASONS:
        return AuthenticationError(PROVIDER, model, "API key rejected", status=status, code=e.status)
    if status == 429:
        quota = _quota_id(details)
        if quota is not None and PER_DAY_QUOTA in quota:  # will not clear in seconds: a quota error
            return QuotaExceededError(PROVIDER, model, f"daily quota exhausted ({quota})", status=429, code=e.status)
        return RateLimitError(
            PROVIDER,
            model,
            "rate limited",
            status=429,
            code=e.status,
            retry_after=_retry_delay(details) or retry_after(getattr(e.response, "headers", None)),
        )
    if status == 404:
        return ModelNotFoundError(PROVIDER, model, "model not found", status=404)
    if status == 408:
        return RequestTimeoutError(PROVIDER, model, "request timeout", status=408)
    return InvalidRequestError(PROVIDER, model, f"invalid request ({e.status})", status=status, code=e.status)


def _details(e: genai_errors.APIError) -> list[dict[str, Any]]:
    """The ``error.details`` list (google.rpc.Status), or [] when the body has none."""
    body = e.details if isinstance(e.details, dict) else {}
    inner = body.get("error")
    details = (inner if isinstance(inner, dict) else body).get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _reason(details: list[dict[str, Any]]) -> str | None:
    return next((d.get("reason") for d in details if d.get("@type") == ERROR_INFO), None)


def _quota_id(details: list[dict[str, Any]]) -> str | None:
    for d in details:
        if d.get("@type") == QUOTA_FAILURE:
            for violation in d.get("violations") or []:
                if isinstance(violation, dict) and (quota := violation.get("quotaId") or violation.get("quota_id")):
                    return str(quota)
    return None


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """``RetryInfo.retryDelay`` is a protobuf Duration in JSON: ``"19s"``, ``"0.5s"``, ``"1.000340s"``."""
    for d in details:
        delay = d.get("retryDelay") if d.get("@type") == RETRY_INFO else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(delay[:-1])))
            except ValueError:
                return None
    return None
