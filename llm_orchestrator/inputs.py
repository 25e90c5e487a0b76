"""Checks on what a caller passes to ``send_request`` and friends, before any provider call.

The same limits bound the worker's job payloads (``tasks/payloads.py`` imports them), so the
library and the worker accept and refuse the same things. A bad argument raises
:class:`InvalidRequestError` naming the field and the limit (never the text itself).
"""

from __future__ import annotations

from typing import Any

from llm_orchestrator.exceptions import InvalidRequestError
from llm_orchestrator.models.ids import is_fine_tuned
from llm_orchestrator.providers.base import Message

MAX_PROMPT_CHARS = 200_000  # all message text of one request, system prompt included
MAX_TOKENS_LIMIT = 64_000
MAX_MODEL_ID_CHARS = 200
MAX_ID_CHARS = 200  # session_id, job_id, tenant
ROLES = ("system", "user", "assistant")


def check_request(
    provider: str,
    *,
    prompt: Any,
    system: Any,
    messages: Any,
    model: Any,
    max_tokens: Any,
    temperature: Any,
    ids: dict[str, Any],
) -> list[Message]:
    """Validate one request's arguments and return its messages (system first).

    Raises:
        InvalidRequestError: an argument is missing, of the wrong type, empty or over its limit.
    """

    def bad(field: str, problem: str) -> InvalidRequestError:
        return InvalidRequestError(provider, model if isinstance(model, str) else None, f"{field} {problem}")

    if model is not None:
        if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_ID_CHARS:
            raise bad("model", f"must be a non-empty string of at most {MAX_MODEL_ID_CHARS} characters")
        if is_fine_tuned(model):
            raise bad("model", "is a fine-tuned model; fine-tuned models are not supported")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise bad("max_tokens", f"must be an integer from 1 to {MAX_TOKENS_LIMIT} (got {_show(max_tokens)})")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise bad("temperature", f"must be a number from 0 to 2 or None (got {_show(temperature)})")
    for name, value in ids.items():
        if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS):
            raise bad(name, f"must be a non-empty string of at most {MAX_ID_CHARS} characters or None")
    if system is not None and not isinstance(system, str):
        raise bad("system", f"must be a string (got {type(system).__name__})")
    msgs = _messages(prompt, messages, bad)
    if system:
        msgs.insert(0, Message("system", system))
    size = sum(len(m.content) for m in msgs)
    if size > MAX_PROMPT_CHARS:
        raise bad("prompt", f"is {size} characters (system and messages together); the limit is {MAX_PROMPT_CHARS}")
    return msgs


def _messages(prompt: Any, messages: Any, bad: Any) -> list[Message]:
    if messages is None:
        if prompt is None:
            raise bad("prompt", "is required (or pass messages)")
        if not isinstance(prompt, str):
            raise bad("prompt", f"must be a string (got {type(prompt).__name__})")
        if not prompt.strip():
            raise bad("prompt", "is empty")
        return [Message("user", prompt)]
    if prompt is not None:
        raise bad("prompt", "and messages were both given; pass one of them")
    if not isinstance(messages, list | tuple) or not messages:
        raise bad("messages", "must be a non-empty list of Message")
    for i, m in enumerate(messages):
        if not isinstance(m, Message) or m.role not in ROLES or not isinstance(m.content, str):
            raise bad(f"messages[{i}]", f"must be a Message with role in {ROLES} and text content")
    if not any(m.role != "system" and m.content.strip() for m in messages):
        raise bad("messages", "hold no non-empty user or assistant message")
    return list(messages)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, int | float | bool) or value is None else type(value).__name__
