"""Answers of job calls kept in this process, so a job run again here never pays for a call twice.

When Redis goes away after the provider answered (ledger row, result or lease write fails), the
worker runs the job again in the same process once Redis is back. Without this, that second run
calls the provider again: billed twice, recorded once (the ledger keeps one row per
``(job_id, attempt)``). With it, the second run takes the kept answer and the ledger row is
written then. Keyed by ``(job_id, attempt, prompt hash)``; only calls with a ``job_id`` are kept;
the oldest go first past ``size`` entries. Memory only: answers never leave the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from llm_orchestrator.providers.base import LLMResponse

DEFAULT_SIZE = 256


class KeptAnswers:
    """A small thread-safe LRU of job answers (see module docstring)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[str, int, str], LLMResponse] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(req: Any) -> tuple[str, int, str] | None:
        return (req.job_id, req.attempt, req.prompt_hash) if req.job_id else None

    def get(self, req: Any) -> LLMResponse | None:
        key = self._key(req)
        if key is None:
            return None
        with self._lock:
            return self._answers.get(key)

    def put(self, req: Any, response: LLMResponse) -> None:
        key = self._key(req)
        if key is None:
            return
        with self._lock:
            self._answers[key] = response
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
