"""The job result dict (architecture.md's contract) and the error → result mapping."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from llm_orchestrator.exceptions import LLMOrchestratorError
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.security import redact

TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "total_tokens")
# A result's private key (popped before storing): the ledger's total for the job after its last call,
# as that call's settlement returned it, so the job's cost needs no extra read.
LEDGER_TOTAL = "_ledger_total_usd"


def cost_of(responses: list[LLMResponse]) -> dict[str, Any]:
    """Cost and tokens summed over the calls of one job (Decimal-exact, string in JSON)."""
    priced = [r.cost_usd for r in responses if r.cost_usd is not None]
    usd = sum(priced) if priced else (Decimal(0) if not responses else None)  # no call made: free
    return {"usd": None if usd is None else str(usd), **{k: sum(getattr(r, k) for r in responses) for k in TOKEN_KEYS}}


def succeeded(job_id: str, provider: str, model: str, responses: list[LLMResponse], **answer: Any) -> dict[str, Any]:
    result = {
        "job_id": job_id,
        "status": "succeeded",
        "provider": provider,
        "model": model,
        "cost": cost_of(responses),
        **answer,
    }
    totals = [r.session_cost_usd for r in responses if r.session_cost_usd is not None]
    if totals:
        result[LEDGER_TOTAL] = str(max(totals))
    return result


def with_job_total(result: dict[str, Any], ledger_usd: Decimal) -> dict[str, Any]:
    """Make ``cost.usd`` what the ledger holds for the job: every attempt's billed calls.

    A job retried after its answer was paid for (Redis went away before the result was stored)
    paid twice; ``cost.answer_usd`` then keeps the cost of the calls behind this answer.
    """
    answer = result["cost"]["usd"]
    if ledger_usd == 0 or (answer is not None and Decimal(answer) == ledger_usd):
        return result
    cost = {**result["cost"], "usd": str(ledger_usd), "answer_usd": answer}
    return {**result, "cost": cost}


def failed(job_id: str, provider: str | None, err: BaseException | str, kind: str | None = None) -> dict[str, Any]:
    """A failed job. The message is redacted and never carries prompt text or keys."""
    error_type = kind or type(err).__name__
    message = redact(str(err))[:500]
    model = getattr(err, "model", None) if isinstance(err, LLMOrchestratorError) else None
    return {
        "job_id": job_id,
        "status": "failed",
        "provider": provider,
        "model": model,
        "cost": {"usd": "0", **dict.fromkeys(TOKEN_KEYS, 0)},
        "error": {"type": error_type, "message": message},
    }
