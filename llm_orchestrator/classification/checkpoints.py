"""Per-job checkpoints of classification calls, so a retried job never pays twice.

A classification job may make several calls (batches, cascade stages). If a later call fails
and Celery retries the job, the calls that already succeeded were billed once (the ledger has
their rows) and are replayed from here instead of being sent again: the retry costs only what
is left, and the job's result still adds up to exactly what the ledger holds for it.

Call ``index`` is the position of the call within the job; the run is deterministic, so the
same index asks the same prompt — checked with the prompt's hash, and a mismatch is ignored.
Without Redis or a job id there is nothing to resume and nothing is stored. The stored answer
is redacted (an answer may quote a signal's e-mail address or phone number): the parser and the
output check work the same on it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from decimal import Decimal
from typing import Any

from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import CLASSIFY_CALL
from llm_orchestrator.security import redact

log = logging.getLogger(__name__)
TTL_SECONDS = 86400  # longer than any job's retries last
_RESPONSE_FIELDS = {f.name for f in fields(LLMResponse)} - {"created_at"}


class CallCheckpoints:
    """Stored responses of one job's calls (see module docstring).

    Args:
        redis: a client, or None (checkpoints off).
        prefix: the Redis key prefix.
        job_id: the job (checkpoints off when None).
    """

    def __init__(self, redis: Any, prefix: str, job_id: str | None) -> None:
        self._redis = redis if job_id else None
        self._prefix = prefix
        self._job_id = job_id
        self._degraded = DegradedLog(log, "classification checkpoints")

    def get(self, index: int, prompt_hash: str) -> LLMResponse | None:
        """The response stored for call ``index`` of this job, if it asked the same prompt."""
        if self._redis is None:
            return None
        try:
            raw = self._redis.get(self._key(index))
        except redis_errors() as err:
            self._degraded.warn(err)
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        if data.get("prompt_hash") != prompt_hash:
            return None
        return response_from_dict(data["response"])

    def put(self, index: int, prompt_hash: str, response: LLMResponse) -> None:
        if self._redis is None:
            return
        raw = json.dumps({"prompt_hash": prompt_hash, "response": response_to_dict(response)})
        try:
            self._redis.set(self._key(index), raw, ex=TTL_SECONDS)
        except redis_errors() as err:  # only the resume is lost: a retry would call again
            self._degraded.warn(err)

    def _key(self, index: int) -> str:
        return CLASSIFY_CALL.format(prefix=self._prefix, job_id=self._job_id, index=index)


def response_to_dict(response: LLMResponse) -> dict[str, Any]:
    """``to_dict()`` with the answer redacted (an answer may quote a signal's PII) for storing."""
    return {**response.to_dict(), "content": redact(response.content)}


def response_from_dict(d: dict[str, Any]) -> LLMResponse:
    """Rebuild an ``LLMResponse`` from its ``to_dict()``."""
    kept = {k: v for k, v in d.items() if k in _RESPONSE_FIELDS}
    kept["cost_usd"] = None if kept.get("cost_usd") is None else Decimal(kept["cost_usd"])
    return LLMResponse(**kept)
