"""Classify a file of signals: resumable JSONL output and a summary with accuracy.

Input: ``.jsonl`` (field ``text``, optional ``id`` and ``label``) or ``.csv`` (``--text-column``),
UTF-8 (a byte-order mark, as Excel's "CSV UTF-8" writes, is ignored). A bad line is an
:class:`InputFileError` naming the file and the line number.

Output: one JSON object per line, appended and flushed chunk by chunk. A classified signal has
``id``, ``category``, ``confidence``, ``evidence``, ``stage``, ``model``, ``cost_usd`` and the
rest of ``SignalResult.answer()``; a signal with an empty (or whitespace-only or invisible-only)
text is never sent to a model: its line is ``{"id", "label", "category": null, "stage":
"skipped", "skipped": "empty text", "cost_usd": "0"}``. A repeated input id is classified under
``id#2``, ``id#3``, … (the line also has ``"duplicate_of": id``). Ids already in the output are
skipped, so an interrupted run resumes where it stopped; a partial last line (a run killed while
writing) is dropped and its signal done again.

A *runner* does the classifying: ``local`` (this process) or ``worker`` (Celery
``llm.classify_batch`` jobs; registered by the ``worker`` package, so this library never imports
Celery).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_orchestrator.exceptions import ConfigError

SKIPPED_EMPTY = "empty text"
CSV_FIELD_LIMIT = 16 * 1024 * 1024  # characters in one CSV cell (the csv module's default is 131,072)
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


class InputFileError(ValueError):
    """A bad input or output file. The message names the file and, where there is one, the line."""


class Interrupted(Exception):  # noqa: N818 - not an error: the user stopped the run
    """The run was stopped (Ctrl-C); ``done`` signals are in the output, flushed."""

    def __init__(self, done: int) -> None:
        super().__init__(f"interrupted; {done} done, resume with the same command")
        self.done = done


@dataclass
class Summary:
    """Totals of one run (this run's rows only)."""

    rows: int = 0
    skipped: int = 0  # already in the output
    empty: int = 0  # skipped for an empty text (a line with "skipped" was written)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (input id, id written)
    partial_line_dropped: bool = False
    categories: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    unpriced: int = 0  # signals whose model had no price (their cost is unknown, not 0)
    cached_tokens: int = 0
    prompt_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # per model call
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, predicted) → n

    @property
    def labelled(self) -> int:
        return sum(self.confusion.values())

    @property
    def accuracy(self) -> float | None:
        if not self.labelled:
            return None
        return sum(n for (label, pred), n in self.confusion.items() if label == pred) / self.labelled

    def percentile(self, p: float) -> float | None:
        return percentile(self.latencies_ms, p)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (as ``llm-orch classify`` prints it); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- reading the input ----------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file; a leading byte-order mark is dropped."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputFileError(
                    f"{path}: line {n}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                    f"{e.start + 1}); save the file as UTF-8"
                ) from None


def read_signals(path: Path, text_column: str = "text") -> Iterator[dict[str, Any]]:
    """Rows with ``id``, ``text`` (None when missing) and ``label``; ids default to the line
    number (``.jsonl``) or the record number (``.csv``).

    Raises:
        InputFileError: the file is missing, not UTF-8, or a line is malformed (names the line).
    """
    if path.suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif path.suffix == ".csv":
        yield from _csv_rows(path, text_column)
    else:
        raise InputFileError(f"{path}: expected a .jsonl or .csv file")


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise InputFileError(f"{path}: line {n}: not valid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(row, dict):
            raise InputFileError(f"{path}: line {n}: not a JSON object")
        text = row.get("text")
        if "text" not in row or not (text is None or isinstance(text, str)):
            raise InputFileError(f"{path}: line {n}: needs a string field 'text'")
        given = row.get("id")
        yield {"id": str(n) if given is None or given == "" else str(given), "text": text, "label": row.get("label")}


def _csv_rows(path: Path, text_column: str) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(line for _, line in _lines(path))
    try:
        if not reader.fieldnames:
            raise InputFileError(f"{path}: empty file (expected a header line with a {text_column!r} column)")
        if text_column not in reader.fieldnames:
            raise InputFileError(f"{path}: no column {text_column!r} (use --text-column)")
        for n, row in enumerate(reader, 1):
            yield {"id": row.get("id") or str(n), "text": row[text_column], "label": row.get("label") or None}
    except csv.Error as e:
        raise InputFileError(f"{path}: line {reader.line_num}: {e}") from None


def _blank(text: str | None) -> bool:
    """Nothing a model could read: None, empty, or only spaces and invisible characters."""
    return text is None or all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


def _rename_duplicates(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Give the 2nd, 3rd, … row of a repeated id the id ``id#2``, ``id#3``, … (never one the
    input already uses), the same on every run of the same file. Returns ``(id, new id)`` pairs."""
    taken = {r["id"] for r in rows}
    last: dict[str, int] = {}
    renamed = []
    for row in rows:
        original = row["id"]
        if original not in last:
            last[original] = 1
            continue
        n = last[original] + 1
        while f"{original}#{n}" in taken:
            n += 1
        last[original] = n
        row["id"] = f"{original}#{n}"
        row["duplicate_of"] = original
        taken.add(row["id"])
        renamed.append((original, row["id"]))
    return renamed


# -- the output -----------------------------------------------------------------------------------


def check_output(source: Path, output: Path) -> None:
    """Refuse an output that is the input, is a directory, or sits in a missing directory."""
    if output.exists() and (
        output.resolve() == source.resolve() or (source.exists() and os.path.samefile(source, output))
    ):
        raise InputFileError(f"{output}: the output is the input file {source}; choose another --output")
    if output.is_dir():
        raise InputFileError(f"{output}: is a directory; --output needs a file name")
    if not output.parent.is_dir():
        raise InputFileError(f"{output}: directory {output.parent} does not exist")


def done_ids(output: Path) -> tuple[set[str], bool]:
    """The ids already in ``output``, and whether a partial last line was dropped from it.

    A last line without its newline is what a run killed while writing leaves: it is kept if it
    is a whole result, else cut off the file (its signal is done again).

    Raises:
        InputFileError: a line other than the last is not a result line (names the line).
    """
    if not output.exists():
        return set(), False
    ids: set[str] = set()
    with open(output, "rb+") as f:
        offset = 0
        for n, raw in enumerate(f, 1):
            whole = raw.endswith(b"\n")
            signal_id = _result_id(raw) if raw.strip() else ""
            if not whole:
                if signal_id is None:
                    f.truncate(offset)
                    return ids, True
                f.write(b"\n")
            elif signal_id is None:
                raise InputFileError(
                    f"{output}: line {n}: not a result line; fix or remove it, or choose another --output"
                )
            if signal_id:
                ids.add(signal_id)
            offset += len(raw)
    return ids, False


def _result_id(raw: bytes) -> str | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line["id"] if isinstance(line, dict) and isinstance(line.get("id"), str) else None


def _whole_lines(output: Path) -> int:
    with open(output, "rb") as f:
        return sum(1 for raw in f if raw.endswith(b"\n") and raw.strip())


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
    from llm_orchestrator.classification.pipeline import SignalClassifier

    classifier = SignalClassifier(orch)

    def run(rows: list[dict[str, Any]]) -> Iterator[ChunkResult]:
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            result = classifier.classify([(r["id"], r["text"]) for r in chunk])
            yield ChunkResult(
                chunk,
                [r.answer() for r in result.results],
                result.prompt_tokens,
                result.cached_tokens,
                [r.latency_ms for r in result.responses],
            )

    return run


def runner_named(name: str, orch: Any) -> Runner:
    """``local``, or a runner another package registers (``worker`` by this project's ``worker``
    package) under the entry-point group ``llm_orchestrator.classify_runners``."""
    if name == "local":
        return local_runner(orch)
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="llm_orchestrator.classify_runners") if ep.name == name]
    missing = "(install the worker extra: pip install -e '.[worker]')"
    if not found:
        raise ConfigError(f"no classify runner {name!r} is installed {missing}")
    try:
        return found[0].load()(orch)
    except ImportError as e:  # the entry point is installed with the project; Celery comes with the extra
        raise ConfigError(f"the classify runner {name!r} cannot be loaded: {e} {missing}") from None


@dataclass
class Plan:
    """What a run will do, decided before any model call (see :func:`plan_file`)."""

    output: Path
    todo: list[dict[str, Any]]  # rows to classify
    empty: list[dict[str, Any]]  # rows written as skipped ("empty text"), never sent to a model
    summary: Summary  # skipped, duplicates and partial_line_dropped already counted


def plan_file(source: Path, output: Path, text_column: str = "text") -> Plan:
    """Read and check ``source`` and ``output``: what is left to do, duplicates, empty texts.

    Raises:
        InputFileError: a bad input line, the output is the input, a missing output directory,
            a damaged output line other than a partial last one.
    """
    check_output(source, output)
    rows = list(read_signals(source, text_column))
    done, dropped = done_ids(output)
    summary = Summary(duplicates=_rename_duplicates(rows), partial_line_dropped=dropped)
    todo: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    for row in rows:
        if row["id"] in done:
            summary.skipped += 1
        else:
            (empty if _blank(row["text"]) else todo).append(row)
    return Plan(output, todo, empty, summary)


def run_plan(runner: Runner, plan: Plan, on_rows: Callable[[int], None] | None = None) -> Summary:
    """Append one line per row of ``plan`` to its output, flushed chunk by chunk.

    Raises:
        Interrupted: on Ctrl-C, after every finished chunk is written (``done`` counts the
            output's whole lines; the same command resumes).
    """
    summary = plan.summary
    try:
        with open(plan.output, "a", encoding="utf-8") as out:
            if plan.empty:
                out.write("".join(json.dumps(_skipped(row)) + "\n" for row in plan.empty))
                out.flush()
                summary.empty += len(plan.empty)
                if on_rows:
                    on_rows(len(plan.empty))
            for chunk in runner(plan.todo):
                lines = [{**answer, **_identity(row)} for row, answer in zip(chunk.rows, chunk.answers)]
                out.write("".join(json.dumps(line) + "\n" for line in lines))
                out.flush()
                for line in lines:
                    _count(summary, line)
                summary.prompt_tokens += chunk.prompt_tokens
                summary.cached_tokens += chunk.cached_tokens
                summary.latencies_ms += chunk.call_latencies_ms
                if on_rows:
                    on_rows(len(chunk.rows))
    except KeyboardInterrupt:
        raise Interrupted(_whole_lines(plan.output)) from None
    return summary


def classify_file(
    runner: Runner, source: Path, output: Path, text_column: str = "text", on_rows: Callable[[int], None] | None = None
) -> Summary:
    """Classify every signal of ``source`` not yet in ``output``; append one line per signal.

    Lines are written (and flushed) chunk by chunk, so an interrupted run resumes from the
    last chunk written.
    """
    return run_plan(runner, plan_file(source, output, text_column), on_rows)


def _identity(row: dict[str, Any]) -> dict[str, Any]:
    """The output fields that come from the input row."""
    ident = {"id": row["id"], "label": row["label"]}
    if "duplicate_of" in row:
        ident["duplicate_of"] = row["duplicate_of"]
    return ident


def _skipped(row: dict[str, Any]) -> dict[str, Any]:
    return {**_identity(row), "category": None, "stage": "skipped", "skipped": SKIPPED_EMPTY, "cost_usd": "0"}


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
