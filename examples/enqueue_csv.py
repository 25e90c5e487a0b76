"""Enqueue a CSV (or JSONL) of product signals through the worker and wait with a progress bar.

python examples/enqueue_csv.py data/signals_sample.jsonl [--text-column text]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.producer import submit_classification


def read_signals(path: Path, text_column: str) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return [{"id": row.get("id"), "text": row[text_column], "label": row.get("label")} for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--text-column", default="text")
    args = parser.parse_args(argv)
    signals = read_signals(args.input, args.text_column)
    jobs = [(s, submit_classification(s["text"], signal_id=s.get("id"))) for s in signals]
    results = []
    with Progress() as progress:
        bar = progress.add_task("classifying", total=len(jobs))
        for signal, job in jobs:
            results.append((signal, job.get(timeout=300)))
            progress.advance(bar)
    ok = [r for _, r in results if r["status"] == "succeeded"]
    cost = sum(Decimal(r["cost"]["usd"]) for r in ok)
    console = Console()
    console.print(dict(Counter(r["category"] for r in ok)))
    labelled = [(s, r) for s, r in results if s.get("label") and r["status"] == "succeeded"]
    if labelled:
        correct = sum(s["label"] == r["category"] for s, r in labelled)
        console.print(f"accuracy {correct}/{len(labelled)}")
    console.print(f"{len(ok)}/{len(results)} succeeded; cost ${cost}")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
