"""Classify product signals: hygiene → keywords → prefilter → result cache → cascade of batched model calls.

``SignalClassifier.classify`` takes many signals and returns one :class:`SignalResult` each:

1. every text is cleaned (``security.sanitize_signal``: size cap, control characters, flags);
2. the free keyword stage decides the signals it is sure about (stage ``keyword``), then the
   learned prefilter, when ``classification.prefilter_path`` names one, decides those it is sure
   about (stage ``prefilter``, model ``prefilter``, cost 0; see ``classification.prefilter``);
3. the result cache answers signals seen before (stage ``cache``, no call, zero cost); identical
   signals within the run are asked once;
4. the rest go through the provider's cascade (``classification.cascade``), ``batch_size``
   signals per call: answers below a stage's ``accept_at`` move up to the next model; the last
   stage's answer is kept (stage ``llm``). An item a batch answer lacks or garbles is asked
   again alone; one bad item never fails its neighbours. Batch ids are hashed from the call's
   texts (:func:`batch_keys`), so injected text cannot name a neighbour's id, and a signal with
   an injection flag is always asked alone.

A call's cost is split exactly (integer micro-dollars) over the signals it answered, so the
results' costs add up to the calls' costs. Provider errors propagate (the caller decides about
retries); calls that succeeded before the error are checkpointed under the job id and replayed,
not re-sent, when the job runs again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from llm_orchestrator.classification.cache import ResultCache, cache_digest
from llm_orchestrator.classification.categories import FALLBACK_LABEL
from llm_orchestrator.classification.checkpoints import CallCheckpoints
from llm_orchestrator.classification.keywords import keyword_classify
from llm_orchestrator.classification.parser import Classification, ParseFailure, parse_batch, parse_single
from llm_orchestrator.classification.prefilter import load as load_prefilter
from llm_orchestrator.classification.prompt import PROMPT_VERSION, batch_user_prompt, system_prompt, user_prompt
from llm_orchestrator.classification.validation import validate_output
from llm_orchestrator.config.manager import ClassificationConfig
from llm_orchestrator.pricing import from_micros, to_micros
from llm_orchestrator.providers.base import LLMResponse
from llm_orchestrator.security import FLAG_ORDER, SanitizedSignal, sanitize_signal

SINGLE_ANSWER_TOKENS = 200
BATCH_ANSWER_TOKENS = 80  # per signal in a batch: id, label, confidence, a 15-word quote
BATCH_ID_TAG_CHARS = 6  # hex characters of the per-call tag in batch ids (see batch_keys)
_INJECTION_FLAGS = frozenset(FLAG_ORDER)  # the flags that keep a signal out of batches
PREFILTER_MODEL = "prefilter"  # the "model" of a result the learned prefilter decided (free)


@dataclass
class SignalResult:
    """The answer for one signal.

    ``stage`` is ``keyword`` (free rules), ``prefilter`` (the learned prefilter, free), ``cache``
    (a stored or in-run duplicate answer, no call) or ``llm``; ``models`` lists the models that
    were asked, cheap first; ``cost_usd`` is this signal's exact share of those calls (None if a
    model had no price). ``latency_ms`` is how long its model calls took (a batched call's whole
    time: the signal waited for it; 0 without a call), ``tokens_used`` and ``cached_tokens`` its
    share of those calls' tokens (a batch's split exactly like its cost), ``timestamp`` when it was
    decided (UTC, ISO 8601).
    """

    id: str | None
    category: str
    confidence: float
    evidence: str
    stage: str
    models: list[str] = field(default_factory=list)
    cost_usd: Decimal | None = Decimal(0)
    batched: bool = False
    prompt_version: str = PROMPT_VERSION
    flags: list[str] = field(default_factory=list)
    truncated: bool = False
    parse_error: str | None = None
    latency_ms: float = 0.0
    tokens_used: int = 0
    cached_tokens: int = 0
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))

    @property
    def model(self) -> str | None:
        """The model whose answer was kept."""
        return self.models[-1] if self.models else None

    def answer(self) -> dict[str, Any]:
        """JSON-friendly fields (``cost_usd`` as a decimal string)."""
        d = asdict(self)
        d["model"] = self.model
        d["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        if d["parse_error"] is None:
            d.pop("parse_error")
        return d


@dataclass
class ClassificationRun:
    """What :meth:`SignalClassifier.classify` returns: the results and every call made."""

    results: list[SignalResult]
    responses: list[LLMResponse]

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.responses)

    @property
    def cached_tokens(self) -> int:
        return sum(r.cached_tokens for r in self.responses)


@dataclass
class _Item:
    """A signal on its way through the stages."""

    id: str | None
    clean: SanitizedSignal
    digest: str = ""
    models: list[str] = field(default_factory=list)
    micros: int | None = 0
    latency_ms: float = 0.0
    tokens: int = 0
    cached: int = 0
    batched: bool = False
    kept: Classification | None = None  # the latest valid answer
    problem: str | None = None  # why the latest answer was not valid
    result: SignalResult | None = None

    def charge(self, micros: int | None, latency_ms: float, tokens: int, cached: int) -> None:
        self.micros = None if micros is None or self.micros is None else self.micros + micros
        self.latency_ms += latency_ms
        self.tokens += tokens
        self.cached += cached

    def take(self, model: str, answer: Classification | ParseFailure, problem: str | None, batched: bool) -> None:
        self.models.append(model)
        self.batched = self.batched or batched
        if isinstance(answer, ParseFailure) or problem is not None:
            self.problem = problem or getattr(answer, "reason", "unparseable answer")
        else:
            self.kept, self.problem = answer, None

    def confident(self, accept_at: float) -> bool:
        return self.problem is None and self.kept is not None and self.kept.confidence >= accept_at


class SignalClassifier:
    """Classifies signals with one orchestrator (its provider only).

    Args:
        orch: an ``LLMOrchestrator``.
        settings: defaults to ``orch.config.classification``.
        cache: defaults to a :class:`ResultCache` on the orchestrator's Redis (or memory).
    """

    def __init__(
        self, orch: Any, settings: ClassificationConfig | None = None, cache: ResultCache | None = None
    ) -> None:
        self.orch = orch
        self.settings = settings or orch.config.classification
        self.stages = self.settings.stages(orch.provider, orch.config.active_model)
        self.system = system_prompt(json_mode=self.settings.json_mode, version=self.settings.prompt_version)
        self.prefilter = load_prefilter(self.settings.prefilter_path) if self.settings.prefilter_path else None
        prefix = orch.config.redis.key_prefix
        self.cache = cache or ResultCache(self.settings.cache_ttl_seconds, orch.redis, prefix)

    def classify(
        self,
        signals: list[tuple[str | None, str]],
        *,
        job_id: str | None = None,
        attempt: int = 0,
        tenant: str | None = None,
        lane: LaneCalls | None = None,
        deadline: float | None = None,
    ) -> ClassificationRun:
        """Classify ``(id, text)`` pairs; results come back in the same order.

        Args:
            lane: answer model calls from this provider-batch state instead of calling live
                (see ``classification.lane``); raises :class:`CallsNeeded` at the first stage
                whose calls it does not hold yet.
            deadline: seconds for the whole run, all its model calls (None: each call has the
                config's ``retry.deadline``). A worker pool without Celery time limits bounds a
                job by it.

        Raises:
            LLMOrchestratorError: a model call failed (after the library's retries).
            CallsNeeded: only with ``lane``.
        """
        calls = _Calls(self, job_id, attempt, tenant, lane, deadline)
        items = [self._prepare(sid, text) for sid, text in signals]
        leaders: dict[str, _Item] = {}
        for item in items:
            if item.result is None:
                leaders.setdefault(item.digest, item)
        todo = list(leaders.values())
        for n, stage in enumerate(self.stages):
            calls.ask(stage.model, todo)
            if n < len(self.stages) - 1:
                todo = [it for it in todo if not it.confident(stage.accept_at)]
        for item in leaders.values():
            item.result = self._decided(item)
        for item in items:
            if item.result is None:  # a duplicate of a signal asked in this run
                item.result = _copy(leaders[item.digest].result, item)  # type: ignore[arg-type]
        for item in items:
            item.result.prompt_version = self.settings.prompt_version  # type: ignore[union-attr]
        return ClassificationRun([it.result for it in items], calls.responses)  # type: ignore[misc]

    def _prepare(self, signal_id: str | None, text: str) -> _Item:
        item = _Item(signal_id, sanitize_signal(text, self.settings.max_signal_chars))
        base: dict[str, Any] = {"id": signal_id, "flags": item.clean.flags, "truncated": item.clean.truncated}
        if self.settings.keyword_stage and (kw := keyword_classify(item.clean)) is not None:
            item.result = SignalResult(
                category=kw.category, confidence=kw.confidence, evidence=kw.evidence, stage="keyword", **base
            )
            return item
        if self.prefilter is not None and (pf := self.prefilter.decide(item.clean)) is not None:
            item.result = SignalResult(
                category=pf.category,
                confidence=pf.confidence,
                evidence=pf.evidence,
                stage="prefilter",
                models=[PREFILTER_MODEL],
                **base,
            )
            return item
        item.digest = cache_digest(
            item.clean.text,
            prompt_version=self.settings.prompt_version,
            provider=self.orch.provider,
            models=[s.model for s in self.stages],
        )
        if (hit := self.cache.get(item.digest)) is not None:
            item.result = SignalResult(
                category=hit["category"],
                confidence=hit["confidence"],
                evidence=hit["evidence"],
                stage="cache",
                models=[hit["model"]],
                **base,
            )
        return item

    def _decided(self, item: _Item) -> SignalResult:
        base: dict[str, Any] = {
            "id": item.id,
            "stage": "llm",
            "models": item.models,
            "batched": item.batched,
            "cost_usd": None if item.micros is None else from_micros(item.micros),
            "flags": item.clean.flags,
            "truncated": item.clean.truncated,
            "latency_ms": round(item.latency_ms, 1),
            "tokens_used": item.tokens,
            "cached_tokens": item.cached,
        }
        if item.kept is None:
            return SignalResult(category=FALLBACK_LABEL, confidence=0.0, evidence="", parse_error=item.problem, **base)
        self.cache.put(
            item.digest,
            {
                "category": item.kept.category,
                "confidence": item.kept.confidence,
                "evidence": item.kept.evidence,
                "model": item.models[-1],
            },
        )
        return SignalResult(
            category=item.kept.category, confidence=item.kept.confidence, evidence=item.kept.evidence, **base
        )


@dataclass(frozen=True)
class NeededCall:
    """A model call the lane has no answer for yet."""

    key: str  # the prompt's hash: the batch item's custom_id
    model: str
    prompt: str
    max_tokens: int


class CallsNeeded(Exception):  # noqa: N818 - a signal to the caller, not a failure
    """Raised by a lane run: these calls (one model) must be answered before it can go on."""

    def __init__(self, calls: list[NeededCall]) -> None:
        super().__init__(f"{len(calls)} model calls needed")
        self.calls = calls


@dataclass
class LaneCalls:
    """Answers a lane run may use: ``known`` by prompt hash; ``live`` hashes are called live."""

    known: dict[str, LLMResponse] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    needed: list[NeededCall] = field(default_factory=list)


class _Calls:
    """The model calls of one run: batching, the retry-alone rule, checkpoints, cost shares."""

    def __init__(
        self,
        owner: SignalClassifier,
        job_id: str | None,
        attempt: int,
        tenant: str | None,
        lane: LaneCalls | None = None,
        deadline: float | None = None,
    ) -> None:
        self.owner = owner
        self.job_id, self.attempt, self.tenant = job_id, attempt, tenant
        self.ends = None if deadline is None else time.monotonic() + deadline
        self.checkpoints = CallCheckpoints(owner.orch.redis, owner.orch.config.redis.key_prefix, job_id)
        self.lane = lane
        self.responses: list[LLMResponse] = []

    def ask(self, model: str, items: list[_Item]) -> None:
        """Ask ``model`` about ``items``: ``batch_size`` to a call; a signal with an injection
        flag is always asked alone, so its text never shares a prompt with a neighbour."""
        size = self.owner.settings.batch_size
        flagged = [it for it in items if _INJECTION_FLAGS.intersection(it.clean.flags)]
        plain = [it for it in items if not _INJECTION_FLAGS.intersection(it.clean.flags)]
        for start in range(0, len(plain), size):
            chunk = plain[start : start + size]
            if len(chunk) == 1:
                self.single(model, chunk[0])
            else:
                self.batch(model, chunk)
        for item in flagged:
            self.single(model, item)
        if self.lane is not None and self.lane.needed:
            raise CallsNeeded(self.lane.needed)

    def single(self, model: str, item: _Item) -> None:
        r = self.call(model, user_prompt(item.clean.text), SINGLE_ANSWER_TOKENS)
        if r is None:
            return
        item.charge(_micros(r), r.latency_ms, r.prompt_tokens + r.completion_tokens, r.cached_tokens)
        item.take(r.model, parse_single(r.content), validate_output(r.content, item.clean.text), batched=False)

    def batch(self, model: str, chunk: list[_Item]) -> None:
        keys = batch_keys([it.clean.text for it in chunk])  # our ids: a user's id never enters the prompt
        r = self.call(
            model, batch_user_prompt(list(zip(keys, (it.clean.text for it in chunk)))), BATCH_ANSWER_TOKENS * len(chunk)
        )
        if r is None:
            return
        n = len(chunk)
        shares = zip(
            _split(_micros(r), n), _split(r.prompt_tokens + r.completion_tokens, n), _split(r.cached_tokens, n)
        )
        for item, (micros, tokens, cached) in zip(chunk, shares):
            item.charge(micros, r.latency_ms, tokens or 0, cached or 0)
        whole = validate_output(r.content, "\n".join(it.clean.text for it in chunk))
        parsed = parse_batch(r.content, keys)
        for key, item in zip(keys, chunk):
            answer = parsed.get(key)
            problem = whole or (
                validate_output(answer.evidence, item.clean.text)
                if isinstance(answer, Classification)
                else "missing or malformed in the batch answer"
            )
            if problem is None:
                item.take(r.model, answer, None, batched=True)  # type: ignore[arg-type]
            else:
                self.single(model, item)  # asked again alone

    def remaining(self) -> float | None:
        """What is left of the run's deadline for the next call (None: the config's per call)."""
        return None if self.ends is None else max(0.001, self.ends - time.monotonic())

    def call(self, model: str, prompt: str, max_tokens: int) -> LLMResponse | None:
        """The response, live or replayed; None when a lane run does not have it yet."""
        index = len(self.responses)
        prompt_hash = hashlib.sha256(f"{model}\0{max_tokens}\0{prompt}".encode("utf-8", "surrogatepass")).hexdigest()
        if self.lane is not None and prompt_hash not in self.lane.live:
            known = self.lane.known.get(prompt_hash)
            if known is None:
                self.lane.needed.append(NeededCall(prompt_hash, model, prompt, max_tokens))
                return None
            self.responses.append(known)
            return known
        response = self.checkpoints.get(index, prompt_hash) or (self.lane.known.get(prompt_hash) if self.lane else None)
        if response is None:
            response = self.owner.orch.send_request(
                prompt,
                system=self.owner.system,
                model=model,
                max_tokens=max_tokens,
                cache_system=True,
                job_id=None if self.job_id is None else f"{self.job_id}:{index}",
                attempt=self.attempt,
                session_id=self.job_id,
                tenant=self.tenant,
                deadline=self.remaining(),
            )
            self.checkpoints.put(index, prompt_hash, response)
            if self.lane is not None:
                self.lane.known[prompt_hash] = response
        self.responses.append(response)
        return response


def batch_keys(texts: list[str]) -> list[str]:
    """The ids of one batch call's signals: ``s<position>-<tag>``, one tag per call.

    The tag is hashed from every text in the call, so a signal cannot name a neighbour's id (its
    text would have to contain a hash of itself): an answer line or JSON entry that injected text
    makes a model repeat ("s2|bug_report|1.0|...") matches no id and is ignored. Deterministic, so
    a retried job sends the same prompts and its checkpoints replay.

    Args:
        texts: the (sanitised) signal texts of one call, in order.

    Returns:
        One id per text.
    """
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    tag = h.hexdigest()[:BATCH_ID_TAG_CHARS]
    return [f"s{i + 1}-{tag}" for i in range(len(texts))]


def classify_signal(
    orch: Any,
    text: str,
    *,
    signal_id: str | None = None,
    job_id: str | None = None,
    attempt: int = 0,
    tenant: str | None = None,
) -> SignalResult:
    """Classify one signal (see :class:`SignalClassifier`)."""
    run = SignalClassifier(orch).classify([(signal_id, text)], job_id=job_id, attempt=attempt, tenant=tenant)
    return run.results[0]


def _micros(r: LLMResponse) -> int | None:
    return None if r.cost_usd is None else to_micros(r.cost_usd)


def _split(micros: int | None, n: int) -> list[int | None]:
    """``micros`` in ``n`` integer shares that add up exactly (the first ones get the remainder)."""
    if micros is None:
        return [None] * n
    base, extra = divmod(micros, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def _copy(leader: SignalResult, item: _Item) -> SignalResult:
    return SignalResult(
        id=item.id,
        category=leader.category,
        confidence=leader.confidence,
        evidence=leader.evidence,
        stage="cache",
        models=leader.models[-1:],
        flags=item.clean.flags,
        truncated=item.clean.truncated,
        parse_error=leader.parse_error,
    )
