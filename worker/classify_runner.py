"""The ``worker`` runner of ``llm-orch classify --via worker``: fan out through Celery.

Registered under the entry-point group ``llm_orchestrator.classify_runners`` (pyproject.toml),
so the library's CLI finds it without importing Celery itself. Rows go out as
``llm.classify_batch`` jobs of ``CHUNK`` signals on the ``llm.batch`` queue, at most
``IN_FLIGHT`` at a time, and come back in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from llm_orchestrator.classification.batch import ChunkResult, Runner
from llm_orchestrator.exceptions import LLMOrchestratorError
from worker.producer import JobHandle, submit_classification_batch

CHUNK = 100
IN_FLIGHT = 16
JOB_TIMEOUT_SECONDS = 600


def runner(orch: Any) -> Runner:
    """A runner for the orchestrator's provider (the worker uses its own config for the rest)."""
    provider = orch.provider

    def run(rows: list[dict[str, Any]]) -> Iterator[ChunkResult]:
        chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
        flying: deque[tuple[list[dict[str, Any]], JobHandle]] = deque()
        for chunk in chunks:
            flying.append((chunk, _submit(chunk, provider)))
            if len(flying) >= IN_FLIGHT:
                yield _collect(*flying.popleft())
        while flying:
            yield _collect(*flying.popleft())

    return run


def _submit(chunk: list[dict[str, Any]], provider: str) -> JobHandle:
    signals = [{"id": r["id"], "text": r["text"]} for r in chunk]
    return submit_classification_batch(signals, provider=provider)


def _collect(chunk: list[dict[str, Any]], handle: JobHandle) -> ChunkResult:
    result = handle.get(timeout=JOB_TIMEOUT_SECONDS)
    if result["status"] != "succeeded":
        error = result.get("error", {})
        raise LLMOrchestratorError(f"job {handle.id} failed: {error.get('type')}: {error.get('message')}")
    cost = result["cost"]
    return ChunkResult(chunk, result["results"], cost["prompt_tokens"], cost["cached_tokens"],
                       result.get("call_latencies_ms", []))
