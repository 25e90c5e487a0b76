"""Classify a file of signals: resumable JSONL output and a summary with accuracy.

Input: ``.jsonl`` (field ``text``, optional ``id`` and ``label``) or ``.csv`` (``--text-column``).
Every output line is a JSON object with at least ``id``, ``category``, ``confidence``,
``evidence``, ``stage``, ``model`` and ``cost_usd``. Ids already in the output file are skipped,
so an interrupted run resumes where it stopped. A *runner* does the classifying: ``local`` (this
process) or ``worker`` (Celery ``llm.classify_batch`` jobs; registered by the ``worker``
package, so this library never imports Celery).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_orchestrator.classification.pipeline import SignalClassifier
from llm_orchestrator.exceptions import ConfigError


@dataclass
class Summary:
    """Totals of one run (this run's rows only)."""

    rows: int = 0
    skipped: int = 0
    categories: Counter = field(default_factory=Counter)
    stages: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    unpriced: int = 0  # signals whose model had no price (their cost is unknown, not 0)
    cached_tokens: int = 0
    prompt_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # per model call
    confusion: Counter = field(default_factory=Counter)  # (label, predicted) → n

    @property
    def labelled(self) -> int:
        return sum(self.confusion.values())

    @property
    def accuracy(self) -> float | None:
        if not self.labelled:
            return None
        return sum(n for (label, pred), n in self.confusion.items() if label == pred) / self.labelled

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def read_signals(path: Path, text_column: str = "text") -> Iterator[dict[str, Any]]:
    """Rows with ``id``, ``text`` and maybe ``label``; ids default to the line number."""
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        raise ConfigError(f"{path}:{n}: not a JSON object") from None
                    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                        raise ConfigError(f"{path}:{n}: needs a string field 'text'")
                    yield {"id": str(row.get("id") or n), "text": row["text"], "label": row.get("label")}
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if text_column not in (reader.fieldnames or []):
                raise ConfigError(f"{path}: no column {text_column!r} (use --text-column)")
            for n, row in enumerate(reader, 1):
                yield {"id": row.get("id") or str(n), "text": row[text_column], "label": row.get("label") or None}
    else:
        raise ConfigError(f"{path}: expected a .jsonl or .csv file")


def done_ids(output: Path) -> set[str]:
    if not output.exists():
        return set()
    with open(output, encoding="utf-8") as f:
        return {json.loads(line)["id"] for line in f if line.strip()}


@dataclass
class ChunkResult:
    """The answers to consecutive rows, from a runner.

    Attributes:
        rows: the input rows answered (``id``, ``text``, ``label``).
        answers: one ``SignalResult.answer()`` dict per row, same order.
        prompt_tokens, cached_tokens: over the chunk's model calls.
        call_latencies_ms: one per model call.
    """

    rows: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    prompt_tokens: int = 0
    cached_tokens: int = 0
    call_latencies_ms: list[float] = field(default_factory=list)


Runner = Callable[[list[dict[str, Any]]], Iterator[ChunkResult]]


def local_runner(orch: Any, chunk_size: int = 100) -> Runner:
    """Classify in this process, ``chunk_size`` signals per :meth:`SignalClassifier.classify`."""
    classifier = SignalClassifier(orch)

    def run(rows: list[dict[str, Any]]) -> Iterator[ChunkResult]:
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start:start + chunk_size]
            result = classifier.classify([(r["id"], r["text"]) for r in chunk])
            yield ChunkResult(chunk, [r.answer() for r in result.results], result.prompt_tokens,
                              result.cached_tokens, [r.latency_ms for r in result.responses])

    return run


def runner_named(name: str, orch: Any) -> Runner:
    """``local``, or a runner another package registers (``worker`` by this project's ``worker``
    package) under the entry-point group ``llm_orchestrator.classify_runners``."""
    if name == "local":
        return local_runner(orch)
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="llm_orchestrator.classify_runners") if ep.name == name]
    if not found:
        raise ConfigError(f"no classify runner {name!r} is installed (install the worker extra: pip install -e '.[worker]')")
    return found[0].load()(orch)


def classify_file(runner: Runner, source: Path, output: Path, text_column: str = "text",
                  on_rows: Callable[[int], None] | None = None) -> Summary:
    """Classify every signal of ``source`` not yet in ``output``; append one line per signal.

    Lines are written (and flushed) chunk by chunk, so an interrupted run resumes from the
    last chunk written.
    """
    summary, seen = Summary(), done_ids(output)
    todo = []
    for row in read_signals(source, text_column):
        if row["id"] in seen:
            summary.skipped += 1
        else:
            seen.add(row["id"])
            todo.append(row)
    with open(output, "a", encoding="utf-8") as out:
        for chunk in runner(todo):
            for row, answer in zip(chunk.rows, chunk.answers):
                line = {**answer, "id": row["id"], "label": row["label"]}
                out.write(json.dumps(line) + "\n")
                _count(summary, line)
            out.flush()
            summary.prompt_tokens += chunk.prompt_tokens
            summary.cached_tokens += chunk.cached_tokens
            summary.latencies_ms += chunk.call_latencies_ms
            if on_rows:
                on_rows(len(chunk.rows))
    return summary


def _count(s: Summary, line: dict[str, Any]) -> None:
    s.rows += 1
    s.categories[line["category"]] += 1
    s.stages[line["stage"]] += 1
    if line.get("cost_usd") is None:
        s.unpriced += 1
    else:
        s.cost += Decimal(line["cost_usd"])
    if line["label"]:
        s.confusion[(line["label"], line["category"])] += 1
