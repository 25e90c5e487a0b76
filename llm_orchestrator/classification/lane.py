"""The batch lane for classification: the classifier's model calls through the provider's batch API.

Non-urgent classification at the batch price (half the live price at all three providers). A
lane job advances in *steps*; each step is short and never waits, so a Celery countdown (or any
loop) can drive it:

1. if a provider batch is open, collect it: still running → wait; finished → every answer is
   kept by its prompt hash, and an item the batch failed is marked to be sent live instead;
2. run the classifier in lane mode: it replays known answers and stops at the first cascade
   stage whose calls are missing (:class:`CallsNeeded`) → submit those as one provider batch →
   wait; or it finishes → the :class:`ClassificationRun`.

A two-stage cascade with retry-alone items takes two to four batch rounds. The state (answers,
the open batch) lives in Redis under the job id, so any worker can take the next step; without
Redis it lives in the :class:`LaneJob` object.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from llm_orchestrator.batch_lane import BatchLane
from llm_orchestrator.classification.checkpoints import response_from_dict, response_to_dict
from llm_orchestrator.classification.pipeline import CallsNeeded, ClassificationRun, LaneCalls, SignalClassifier
from llm_orchestrator.providers.base import BatchItem, LLMResponse, Message, RequestOptions
from llm_orchestrator.resilience.keys import CLASSIFY_LANE

log = logging.getLogger(__name__)
POLL_SECONDS = 30.0  # how long a step asks to wait while a provider batch runs
TTL_SECONDS = 2 * 86400  # provider batches finish within 24 h


@dataclass(frozen=True)
class Wait:
    """The step's outcome while a provider batch runs: come back in ``seconds``."""

    seconds: float
    batch_id: str


class LaneJob:
    """One classification job in the batch lane.

    Args:
        classifier: a ``SignalClassifier`` (its orchestrator's provider runs the batches).
        job_id: the job (names the state in Redis and each item's ledger row).
        tenant: recorded with the costs.
        poll_seconds: the wait a step returns while a batch runs.
    """

    def __init__(
        self, classifier: SignalClassifier, job_id: str, tenant: str | None = None, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.classifier = classifier
        self.job_id, self.tenant, self.poll_seconds = job_id, tenant, poll_seconds
        self.lane = BatchLane(classifier.orch)
        self._redis = classifier.orch.redis
        self._key = CLASSIFY_LANE.format(prefix=classifier.orch.config.redis.key_prefix, job_id=job_id)
        self._memory: dict[str, str] = {}

    def step(self, signals: list[tuple[str | None, str]]) -> ClassificationRun | Wait:
        """Advance the job once (see module docstring). Provider errors propagate."""
        state = self._load()
        if "open" in state:
            opened = json.loads(state["open"])
            results = self.lane.collect(opened["batch_id"], job_id=self.job_id, tenant=self.tenant)
            if results is None:
                return Wait(self.poll_seconds, opened["batch_id"])
            self._absorb(opened, results)
            state = self._load()
        calls = LaneCalls(
            known={k[6:]: response_from_dict(json.loads(v)) for k, v in state.items() if k.startswith("known:")},
            live={k[5:] for k in state if k.startswith("live:")},
        )
        try:
            run = self.classifier.classify(signals, job_id=self.job_id, tenant=self.tenant, lane=calls)
        except CallsNeeded as needed:
            self._save_live_answers(calls)
            return self._submit(needed)
        self._save_live_answers(calls)
        return run

    def _submit(self, needed: CallsNeeded) -> Wait:
        system = self.classifier.system
        calls = list({c.key: c for c in needed.calls}.values())
        items = [
            BatchItem(
                c.key[:64],
                [Message("system", system), Message("user", c.prompt)],
                RequestOptions(max_tokens=c.max_tokens, cache_system=True),
            )
            for c in calls
        ]
        batch_id = self.lane.submit(items, model=calls[0].model)
        self._write({"open": json.dumps({"batch_id": batch_id, "keys": [c.key for c in calls]})})
        log.info(
            "classification lane submitted a batch",
            extra={"job_id": self.job_id, "batch_id": batch_id, "items": len(items)},
        )
        return Wait(self.poll_seconds, batch_id)

    def _absorb(self, opened: dict[str, Any], results: dict[str, Any]) -> None:
        """Keep the answers of a finished batch; anything it did not answer is sent live."""
        fields: dict[str, str] = {}
        for key in opened["keys"]:
            outcome = results.get(key[:64])
            if isinstance(outcome, LLMResponse):
                fields[f"known:{key}"] = _dump(outcome)
            else:
                fields[f"live:{key}"] = "1"
        self._write(fields, drop="open")

    def _save_live_answers(self, calls: LaneCalls) -> None:
        """Answers of live calls made this step (items a batch failed) are kept like batch answers."""
        fresh = {f"known:{k}": _dump(r) for k, r in calls.known.items() if k in calls.live}
        if fresh:
            self._write(fresh)

    def _load(self) -> dict[str, str]:
        if self._redis is None:
            return dict(self._memory)
        return {k.decode(): v.decode() for k, v in self._redis.hgetall(self._key).items()}

    def _write(self, fields: dict[str, str], drop: str | None = None) -> None:
        if self._redis is None:
            self._memory.update(fields)
            if drop:
                self._memory.pop(drop, None)
            return
        pipe = self._redis.pipeline()
        if fields:
            pipe.hset(self._key, mapping=fields)
        if drop:
            pipe.hdel(self._key, drop)
        pipe.expire(self._key, TTL_SECONDS)
        pipe.execute()


def _dump(r: LLMResponse) -> str:
    return json.dumps(response_to_dict(r))
