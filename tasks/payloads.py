"""Job payloads, validated at the edge. A bad payload fails at once and is never retried."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PROMPT_CHARS = 200_000
# The hard cap of classification.max_signal_chars (config/manager.py): a signal the CLI cut to that
# setting is never rejected here. The pipeline then cuts it to the worker's own max_signal_chars.
MAX_SIGNAL_CHARS = 100_000
MAX_BATCH = 1000
Provider = Literal["openai", "anthropic", "gemini"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CompletionPayload(_Payload):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    system: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    provider: Provider | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    max_tokens: int = Field(256, ge=1, le=64_000)
    tenant: str | None = Field(None, max_length=200)
    stream: bool = False


class SignalPayload(_Payload):
    text: str = Field(min_length=1, max_length=MAX_SIGNAL_CHARS)
    id: str | None = Field(None, max_length=200)
    provider: Provider | None = None
    tenant: str | None = Field(None, max_length=200)


class BatchSignal(_Payload):
    """One signal of a batch (provider and tenant are the batch's)."""

    text: str = Field(min_length=1, max_length=MAX_SIGNAL_CHARS)
    id: str | None = Field(None, max_length=200)


class BatchPayload(_Payload):
    signals: list[BatchSignal] = Field(min_length=1, max_length=MAX_BATCH)
    lane: Literal["live", "batch"] = "live"  # "batch": the provider's batch API, half price, slow
    provider: Provider | None = None
    tenant: str | None = Field(None, max_length=200)


class RollupPayload(_Payload):
    day: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
