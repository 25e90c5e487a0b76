"""Classify one product signal: hygiene → free keyword stage → one model call → parse → validate.

Used by the Celery task (``llm.classify``) and by ``llm-orch classify --via local``. The cascade
across models, multi-signal batching and the result cache are not here yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llm_orchestrator.classification.categories import FALLBACK_LABEL
from llm_orchestrator.classification.keywords import keyword_classify
from llm_orchestrator.classification.parser import ParseFailure, parse_single
from llm_orchestrator.classification.prompt import PROMPT_VERSION, system_prompt, user_prompt
from llm_orchestrator.classification.validation import validate_output
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.security import sanitize_signal

MAX_ANSWER_TOKENS = 200


@dataclass
class SignalResult:
    """The answer for one signal. ``response`` is None when no model was called."""

    id: str | None
    category: str
    confidence: float
    evidence: str
    stage: str  # "keyword" | "llm"
    prompt_version: str = PROMPT_VERSION
    flags: list[str] = field(default_factory=list)
    truncated: bool = False
    parse_error: str | None = None
    response: LLMResponse | None = None

    def answer(self) -> dict[str, Any]:
        """JSON-friendly fields (without the response)."""
        d = asdict(self)
        d.pop("response")
        if d["parse_error"] is None:
            d.pop("parse_error")
        return d


def classify_signal(orch: Any, text: str, *, signal_id: str | None = None, job_id: str | None = None,
                    attempt: int = 0, tenant: str | None = None) -> SignalResult:
    """Classify one signal with ``orch`` (an LLMOrchestrator).

    The keyword stage decides only when sure and abstains on anything carrying an injection
    flag. A model answer that cannot be parsed, echoes the prompt or invents PII is never
    trusted: it becomes ``general_feedback`` with confidence 0 and a ``parse_error``.

    Raises:
        LLMOrchestratorError: from the model call (the caller decides about retries).
    """
    clean = sanitize_signal(text)
    base = {"id": signal_id, "flags": clean.flags, "truncated": clean.truncated}
    decided = keyword_classify(clean.text)
    if decided is not None:
        return SignalResult(category=decided.category, confidence=decided.confidence, evidence=decided.evidence,
                            stage="keyword", **base)
    r = orch.send_request(user_prompt(clean.text), system=system_prompt(), max_tokens=MAX_ANSWER_TOKENS,
                          cache_system=True, job_id=job_id, attempt=attempt, tenant=tenant)
    parsed = parse_single(r.content)
    problem = parsed.reason if isinstance(parsed, ParseFailure) else validate_output(r.content, clean.text)
    if problem is not None or isinstance(parsed, ParseFailure):
        return SignalResult(category=FALLBACK_LABEL, confidence=0.0, evidence="", stage="llm",
                            parse_error=problem, response=r, **base)
    return SignalResult(category=parsed.category, confidence=parsed.confidence, evidence=parsed.evidence,
                        stage="llm", response=r, **base)
