"""The structured call log: one JSON line per provider call on logger ``llm_orchestrator.calls``.

Fields: ts, prompt_hash, provider, model, attempt (the job's), try (within the request),
retries (earlier tries of the same model), token counts, cost_usd (decimal string or null),
latency_ms, outcome ("ok"/"error"), error_type, status, job_id, request_id, tenant. String values
pass through :func:`llm_orchestrator.security.redact`; prompt text, error messages and keys are
never part of the line. Enable it like any logger (the worker's ``--loglevel=INFO`` does).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from llm_orchestrator.observability.events import CallEvent

CALL_LOGGER = "llm_orchestrator.calls"
log = logging.getLogger(CALL_LOGGER)


def write(event: CallEvent) -> None:
    """Log ``event`` as one JSON line at INFO (nothing is built when the logger is off)."""
    if not log.isEnabledFor(logging.INFO):
        return
    from llm_orchestrator.security.redaction import PRE_REDACTED

    log.info(json.dumps(fields(event)), extra={"llm_call": True, PRE_REDACTED: True})  # every field is redacted


def fields(event: CallEvent) -> dict[str, object]:
    """The log line's fields, redacted."""
    from llm_orchestrator.pricing import from_micros
    from llm_orchestrator.security import redact

    def text(value: str | None) -> str | None:
        return None if value is None else redact(value)

    return {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "event": "llm_call",
        "prompt_hash": event.prompt_hash,
        "provider": event.provider,
        "model": text(event.model),
        "attempt": event.attempt,
        "try": event.try_number,
        "retries": event.retries,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cached_tokens": event.cached_tokens,
        "cache_write_tokens": event.cache_write_tokens,
        "cost_usd": None if event.cost_micros is None else str(from_micros(event.cost_micros)),
        "latency_ms": event.latency_ms,
        "outcome": event.outcome,
        "error_type": event.error_type,
        "status": event.status,
        "job_id": text(event.job_id),
        "request_id": text(event.request_id),
        "tenant": text(event.tenant),
    }
