"""What every provider adapter returns and must implement.

``LLMResponse`` is identical across providers; ``to_dict()`` gives a plain JSON dict (money as a
decimal string). Adapters translate their SDK's objects into these types and their SDK's
exceptions into :mod:`llm_orchestrator.exceptions`, one class at a time.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llm_orchestrator.exceptions import ProviderError

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "content_filter", "tool_calls", "error")
BatchState = Literal["running", "done", "failed", "cancelled", "expired"]


@dataclass(frozen=True)
class Message:
    """One chat message. ``role`` is ``system``, ``user`` or ``assistant``."""

    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, normalised across providers.

    ``prompt_tokens`` includes cached and cache-write tokens (OpenAI's convention);
    ``completion_tokens`` includes reasoning/thinking tokens (billed as output).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Attempt:
    """One try of one model, recorded by the orchestrator (JSON-friendly via ``to_dict``)."""

    model: str
    error_type: str | None
    status: int | None
    latency_ms: float
    retryable: bool | None = None
    retry_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RateLimits:
    """What a provider's rate-limit headers said about the window this call was counted in.

    From OpenAI's ``x-ratelimit-*`` and Anthropic's ``anthropic-ratelimit-*`` headers (Gemini
    sends none). ``None`` where a header was missing. Used by the rate limiter to learn a limit
    the config does not state.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_seconds: float | None = None  # until the request budget is whole again


@dataclass
class LLMResponse:
    """A completed call, the same shape for every provider.

    A refusal in words (OpenAI ``message.refusal``, Anthropic ``stop_reason: "refusal"``) has
    ``finish_reason="content_filter"`` and the refusal text in ``refusal`` (``content`` holds
    whatever answer text came with it, usually none). A prompt the provider blocks outright
    raises :class:`ContentBlockedError` instead.
    """

    content: str
    provider: str
    model: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: Decimal | None = None
    request_id: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    refusal: str | None = None
    rate_limits: RateLimits | None = field(default=None, repr=False, compare=False)  # not in to_dict()
    # the ledger's total of this response's session after it was billed (the worker's job cost)
    session_cost_usd: Decimal | None = field(default=None, repr=False, compare=False)  # not in to_dict()

    @classmethod
    def from_usage(
        cls,
        *,
        content: str,
        provider: str,
        model: str,
        finish_reason: FinishReason,
        usage: Usage,
        latency_ms: float,
        request_id: str | None,
        refusal: str | None = None,
        rate_limits: RateLimits | None = None,
    ) -> LLMResponse:
        """Build a response from an adapter's normalised usage."""
        return cls(
            refusal=refusal,
            rate_limits=rate_limits,
            content=content,
            provider=provider,
            model=model,
            finish_reason=finish_reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            latency_ms=latency_ms,
            request_id=request_id,
        )

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-serialisable dict; ``cost_usd`` as a decimal string (or None)."""
        d = asdict(self)
        d.pop("rate_limits")
        d.pop("session_cost_usd")
        d["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        d["created_at"] = None if self.created_at is None else self.created_at.isoformat()
        return d


@dataclass
class StreamChunk:
    """A piece of a streamed answer. The last chunk has ``done=True`` and the full response."""

    text: str
    done: bool = False
    response: LLMResponse | None = None


@dataclass(frozen=True)
class RemoteModel:
    """One entry of a provider's list-models answer, before the registry filters it.

    Attributes:
        id: the id to send in requests (Gemini: without the ``models/`` prefix).
        tuned: True for fine-tuned/tuned models (excluded from the registry).
        can_generate: False for models that cannot do chat/generateContent.
        created: when the provider says the model was created, if it says.
        deprecated: True when the provider itself marks it deprecated/retiring.
    """

    id: str
    tuned: bool = False
    can_generate: bool = True
    created: datetime | None = None
    deprecated: bool = False


@dataclass(frozen=True)
class RequestOptions:
    """The per-call options every adapter understands. Named, not ``**kwargs``."""

    max_tokens: int = 1024
    temperature: float | None = None
    cache_system: bool = False  # Anthropic: put cache_control on the system block
    stop: tuple[str, ...] = ()
    timeout: float | None = None  # per-call read timeout override (seconds)


@dataclass
class BatchItem:
    """One request of a provider batch job; its answer comes back under the same ``custom_id``.

    Attributes:
        custom_id: unique within the batch (the providers limit it to 64 characters of
            ``[A-Za-z0-9_-]``).
        messages: the conversation, as for a live call.
        options: per-request options (``timeout`` does not apply to batch items).
    """

    custom_id: str
    messages: list[Message]
    options: RequestOptions = field(default_factory=RequestOptions)


@dataclass(frozen=True)
class BatchStatus:
    """Where a provider batch job stands, normalised across providers.

    Attributes:
        batch_id: the provider's id (Gemini: ``batches/…``).
        state: ``running`` until the provider has finished; then ``done`` (results ready, items
            may still have failed one by one), ``failed`` (the whole batch was rejected),
            ``cancelled`` or ``expired``.
        provider_state: the provider's own word for it (e.g. ``in_progress``, ``JOB_STATE_RUNNING``).
        total, succeeded, failed: item counts as far as the provider reports them (Gemini reports
            none while running; OpenAI counts cancelled items as failed).
    """

    batch_id: str
    state: BatchState
    provider_state: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def finished(self) -> bool:
        return self.state != "running"


class BaseLLMProvider(abc.ABC):
    """An adapter over one provider's official SDK.

    Implementations set the SDK's own retries to zero (the orchestrator is the only retry
    layer), use explicit connect/read timeouts, and raise only errors from
    :mod:`llm_orchestrator.exceptions` (the SDK error kept as ``__cause__``).
    """

    name: str

    @abc.abstractmethod
    def generate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        """Send one chat request and wait for the whole answer.

        Raises:
            ProviderError: a subclass matching what went wrong.
        """

    @abc.abstractmethod
    def stream(self, messages: list[Message], model: str, options: RequestOptions) -> Iterator[StreamChunk]:
        """Stream one chat request; the last chunk carries the full ``LLMResponse``."""

    @abc.abstractmethod
    async def agenerate(self, messages: list[Message], model: str, options: RequestOptions) -> LLMResponse:
        """Async twin of :meth:`generate`."""

    @abc.abstractmethod
    def astream(self, messages: list[Message], model: str, options: RequestOptions) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`."""

    @abc.abstractmethod
    def list_models(self) -> list[RemoteModel]:
        """Every model the provider lists (all pages), unfiltered."""

    # -- batch lane: the provider's own batch API, priced at its batch discount -------------

    @abc.abstractmethod
    def submit_batch(self, items: list[BatchItem], model: str) -> str:
        """Submit ``items`` as one provider batch job on ``model``; returns the batch id.

        Raises:
            ProviderError: the submission itself failed (a subclass matching what went wrong).
        """

    @abc.abstractmethod
    def batch_status(self, batch_id: str) -> BatchStatus:
        """The job's normalised state and counts.

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            ProviderError: any other failure.
        """

    @abc.abstractmethod
    def batch_results(self, batch_id: str) -> dict[str, LLMResponse | ProviderError]:
        """Every item's outcome by ``custom_id``, once the job has finished.

        A failed item maps to the same :class:`ProviderError` subclass a live call would have
        raised; an item the job never ran (cancelled, expired) to :class:`BatchItemNotRunError`.
        ``cost_usd`` is left unset (see :class:`llm_orchestrator.batch_lane.BatchLane`).

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            InvalidRequestError: the job is still running.
            ProviderError: any other failure.
        """

    @abc.abstractmethod
    def cancel_batch(self, batch_id: str) -> None:
        """Ask the provider to cancel the job (items already answered keep their results).

        Raises:
            BatchNotFoundError: the provider does not know ``batch_id``.
            ProviderError: any other failure.
        """

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Import everything the SDK loads lazily on first use, without any network call.

        Call it before forking worker processes: a first request that has to import SDK
        modules can be interrupted by a time limit half-way, leaving the module broken.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release HTTP connections."""
