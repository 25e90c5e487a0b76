"""Classify a file of signals locally: resumable JSONL output and a summary with accuracy.

Input: ``.jsonl`` (field ``text``, optional ``id`` and ``label``) or ``.csv`` (``--text-column``).
Every output line is a JSON object with at least ``id``, ``category``, ``confidence``,
``evidence``, ``stage``, ``model`` and ``cost_usd``. Ids already in the output file are skipped,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_orchestrator.classification.pipeline import classify_signal
from llm_orchestrator.exceptions import ConfigError


@dataclass
class Summary:
    """Totals of one run (this run's rows only)."""

    rows: int = 0
    skipped: int = 0
    categories: Counter = field(default_factory=Counter)
    stages: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    cached_tokens: int = 0
    prompt_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)
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


def classify_file(orch: Any, source: Path, output: Path, text_column: str = "text",
                  on_row: Callable[[], None] | None = None) -> Summary:
    """Classify every signal of ``source`` not yet in ``output``; append one line per signal."""
    summary, seen = Summary(), done_ids(output)
    with open(output, "a", encoding="utf-8") as out:
        for row in read_signals(source, text_column):
            if row["id"] in seen:
                summary.skipped += 1
                continue
            started = time.perf_counter()
            result = classify_signal(orch, row["text"], signal_id=row["id"])
            r = result.response
            line = {**result.answer(), "model": r.model if r else None,
                    "cost_usd": str(r.cost_usd) if r and r.cost_usd is not None else "0", "label": row["label"]}
            out.write(json.dumps(line) + "\n")
            out.flush()
            _count(summary, line, r, (time.perf_counter() - started) * 1000)
            if on_row:
                on_row()
    return summary


def _count(s: Summary, line: dict[str, Any], r: Any, latency_ms: float) -> None:
    s.rows += 1
    s.categories[line["category"]] += 1
    s.stages[line["stage"]] += 1
    s.cost += Decimal(line["cost_usd"])
    s.latencies_ms.append(latency_ms)
    if r is not None:
        s.cached_tokens += r.cached_tokens
        s.prompt_tokens += r.prompt_tokens
    if line["label"]:
        s.confusion[(line["label"], line["category"])] += 1
