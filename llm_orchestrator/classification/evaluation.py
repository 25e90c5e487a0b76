"""Evaluate the signal classifier on labelled signals, one or more variants side by side.

A *variant* is a name and a config file: the same :class:`SignalClassifier` the CLI and the
worker use, with whatever that config sets (prompt version, cascade thresholds, batch size, JSON
mode, provider). Each variant classifies every labelled signal in this process and gets:

- accuracy, macro-F1, per-class precision / recall / F1 / support and the confusion matrix;
- per-stage coverage and precision: ``keyword``, ``cache``, any other stage name the results
  carry (``prefilter``, …), and one ``llm:MODEL`` entry per cascade model that answered;
- cost per 1,000 signals at list prices (the sum of the results' exact ``cost_usd``), p50/p95
  latency per model call, the result-cache hit rate (signals answered from the cache) and the
  prompt-cache hit rate (cached / prompt tokens).

Each variant starts with an empty result cache of its own (in memory), so a variant is never
answered from another's (or an earlier run's) stored answers: its ``cache`` stage counts the
repeats within the file. Ranking: the variants whose accuracy is within ``tolerance_pp``
percentage points of the best count as equally accurate and are ordered by cost per 1,000
signals (cheapest first); the less accurate ones follow, by accuracy.

The metrics are computed here (no scikit-learn): for a class, precision = TP / predicted, recall
= TP / support, F1 their harmonic mean, each 0 when its denominator is 0; macro-F1 is the mean
F1 over the classes that occur in the labels or the predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from llm_orchestrator.classification.batch import (
    InputFileError,
    _blank,
    _rename_duplicates,
    percentile,
    read_signals,
)
from llm_orchestrator.classification.cache import ResultCache
from llm_orchestrator.classification.categories import LABELS

DEFAULT_TOLERANCE_PP = 1.0  # accuracies this close (percentage points) count as equal when ranking
CHUNK_SIZE = 100  # signals per SignalClassifier.classify call (as the CLI's local runner)
USD_PER_1K_STEP = Decimal("0.000001")  # cost per 1,000 signals is shown to the micro-dollar
STAGE_ORDER = ("keyword", "prefilter", "cache")  # known stages, in pipeline order; others follow
LLM_STAGE = "llm"
SIMULATOR_NOTE = (
    "On the provider simulator, model answers come from a keyword table: these figures check the "
    "pipeline (stages, cost, latency), they do not measure a model's accuracy."
)


# -- input ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSignal:
    """One labelled signal of the evaluation file."""

    id: str
    text: str
    label: str


@dataclass
class EvalInput:
    """The signals to evaluate, and the rows left out (never sent to a model)."""

    signals: list[LabelledSignal]
    unlabelled: int = 0
    empty: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (input id, id used)

    @property
    def unknown_labels(self) -> list[str]:
        """Labels that are not one of the five categories (a typo in the file, usually)."""
        return sorted({s.label for s in self.signals} - set(LABELS))


def read_labelled(path: Path, text_column: str = "text") -> EvalInput:
    """Read a ``.jsonl`` / ``.csv`` file of signals with ``text``, ``id`` and ``label``.

    Rows without a label or with an empty text are counted, not evaluated. A repeated id is
    renamed ``id#2``, ``id#3``, … as ``llm-orch classify`` does.

    Raises:
        InputFileError: unreadable file or bad line (names the line), or no labelled signal.
    """
    rows = list(read_signals(path, text_column))
    found = EvalInput([], duplicates=_rename_duplicates(rows))
    for row in rows:
        label = row["label"]
        if label is None or (isinstance(label, str) and not label.strip()):
            found.unlabelled += 1
        elif _blank(row["text"]):
            found.empty += 1
        else:
            found.signals.append(LabelledSignal(row["id"], row["text"], str(label).strip()))
    if not found.signals:
        raise InputFileError(f"{path}: no labelled signal to evaluate (each needs a non-empty 'text' and 'label')")
    return found


# -- metrics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class (0 when undefined), and its support."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


def classes_of(labels: Iterable[str], predicted: Iterable[str]) -> list[str]:
    """The five categories in their usual order, then any other label or prediction, sorted."""
    seen = set(labels) | set(predicted)
    return [*LABELS, *sorted(seen - set(LABELS))]


def confusion_matrix(labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    """``matrix[i][j]``: signals labelled ``classes[i]`` and predicted ``classes[j]``."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for label, pred in zip(labels, predicted, strict=True):
        matrix[index[label]][index[pred]] += 1
    return matrix


def class_scores(matrix: list[list[int]], classes: Sequence[str]) -> dict[str, ClassScores]:
    """Per-class scores from a confusion matrix (rows: labels, columns: predictions)."""
    scores = {}
    for i, name in enumerate(classes):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = ClassScores(precision, recall, f1, support, predicted)
    return scores


def macro_f1(scores: dict[str, ClassScores]) -> float:
    """Mean F1 over the classes present in the labels or the predictions."""
    present = [s.f1 for s in scores.values() if s.support or s.predicted]
    return sum(present) / len(present) if present else 0.0


# -- one variant ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """One signal's answer under one variant."""

    id: str
    label: str
    category: str
    confidence: float
    stage: str  # as the result says: keyword, cache, llm, prefilter, …
    model: str | None
    cost_usd: Decimal | None
    prompt_version: str

    @property
    def stage_key(self) -> str:
        """The stage it is counted under: ``llm:MODEL`` for a model's answer, else ``stage``."""
        return f"{LLM_STAGE}:{self.model}" if self.stage == LLM_STAGE else self.stage

    def line(self, variant: str) -> dict[str, Any]:
        """The ``--predictions`` JSON line."""
        return {
            "variant": variant,
            "id": self.id,
            "label": self.label,
            "category": self.category,
            "confidence": self.confidence,
            "stage": self.stage,
            "model": self.model,
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "prompt_version": self.prompt_version,
        }


@dataclass
class VariantReport:
    """Everything measured for one variant (see the module docstring)."""

    name: str
    setup: dict[str, Any]  # provider, models, prompt_version, json_mode, batch_size, keyword_stage
    predictions: list[Prediction]
    latencies_ms: list[float]
    prompt_tokens: int
    cached_tokens: int
    rank: int = 0
    tied_with_best: bool = False

    @property
    def n(self) -> int:
        return len(self.predictions)

    @property
    def correct(self) -> int:
        return sum(p.category == p.label for p in self.predictions)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def classes(self) -> list[str]:
        return classes_of((p.label for p in self.predictions), (p.category for p in self.predictions))

    @property
    def confusion(self) -> list[list[int]]:
        return confusion_matrix(
            [p.label for p in self.predictions], [p.category for p in self.predictions], self.classes
        )

    @property
    def per_class(self) -> dict[str, ClassScores]:
        return class_scores(self.confusion, self.classes)

    @property
    def macro_f1(self) -> float:
        return macro_f1(self.per_class)

    @property
    def unpriced(self) -> int:
        """Signals whose model had no price: their cost is unknown, not 0."""
        return sum(p.cost_usd is None for p in self.predictions)

    @property
    def cost_usd(self) -> Decimal:
        return sum((p.cost_usd for p in self.predictions if p.cost_usd is not None), Decimal(0))

    @property
    def cost_per_1k_usd(self) -> Decimal:
        if not self.n:
            return Decimal(0)
        return (self.cost_usd * 1000 / self.n).quantize(USD_PER_1K_STEP, rounding=ROUND_HALF_EVEN)

    @property
    def result_cache_hit_rate(self) -> float:
        return sum(p.stage == "cache" for p in self.predictions) / self.n if self.n else 0.0

    @property
    def prompt_cache_hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def stages(self) -> dict[str, dict[str, Any]]:
        """Per stage, in pipeline order: signals decided, coverage, correct, precision, cost."""
        by_key: dict[str, list[Prediction]] = {}
        for p in self.predictions:
            by_key.setdefault(p.stage_key, []).append(p)
        cascade = self.setup.get("models", [])
        out = {}
        for key in sorted(by_key, key=lambda k: stage_rank(k, cascade)):
            decided = by_key[key]
            correct = sum(p.category == p.label for p in decided)
            out[key] = {
                "signals": len(decided),
                "coverage": len(decided) / self.n,
                "correct": correct,
                "precision": correct / len(decided),
                "cost_usd": str(sum((p.cost_usd or Decimal(0) for p in decided), Decimal(0))),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` entry of this variant."""
        classes = self.classes
        return {
            "name": self.name,
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {
                c: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
                for c, s in self.per_class.items()
            },
            "confusion": {"labels": classes, "matrix": self.confusion},
            "stages": self.stages(),
            "cost_per_1k_usd": str(self.cost_per_1k_usd),
            "latency_ms": {"p50": percentile(self.latencies_ms, 50), "p95": percentile(self.latencies_ms, 95)},
            "cost_usd": str(self.cost_usd),
            "unpriced_signals": self.unpriced,
            "model_calls": len(self.latencies_ms),
            "result_cache_hit_rate": self.result_cache_hit_rate,
            "prompt_cache_hit_rate": self.prompt_cache_hit_rate,
            "rank": self.rank,
            "tied_with_best": self.tied_with_best,
            **self.setup,
        }


def stage_rank(key: str, cascade: Sequence[str]) -> tuple[int, int, str]:
    """Sort key of a stage: known stages in pipeline order, other names, then models in cascade order."""
    if key in STAGE_ORDER:
        return (0, STAGE_ORDER.index(key), key)
    if not key.startswith(f"{LLM_STAGE}:"):
        return (1, 0, key)
    model = key.split(":", 1)[1]
    # an answer names the model that replied, often a dated snapshot of the configured alias
    position = next((i for i, m in enumerate(cascade) if model == m or model.startswith(f"{m}-")), len(cascade))
    return (2, position, key)


def evaluate(
    name: str, classifier: Any, data: EvalInput, on_rows: Callable[[int], None] | None = None
) -> VariantReport:
    """Classify every signal of ``data`` with ``classifier`` (a :class:`SignalClassifier`).

    Raises:
        LLMOrchestratorError: a model call failed (after the library's retries).
    """
    orch = classifier.orch
    settings = classifier.settings
    setup = {
        "provider": orch.provider,
        "models": [s.model for s in classifier.stages],
        "accept_at": [s.accept_at for s in classifier.stages[:-1]],
        "prompt_version": settings.prompt_version,
        "json_mode": settings.json_mode,
        "batch_size": settings.batch_size,
        "keyword_stage": settings.keyword_stage,
    }
    report = VariantReport(name, setup, [], [], 0, 0)
    for start in range(0, len(data.signals), CHUNK_SIZE):
        chunk = data.signals[start : start + CHUNK_SIZE]
        run = classifier.classify([(s.id, s.text) for s in chunk])
        for signal, r in zip(chunk, run.results, strict=True):
            report.predictions.append(
                Prediction(
                    signal.id, signal.label, r.category, r.confidence, r.stage, r.model, r.cost_usd, r.prompt_version
                )
            )
        report.latencies_ms += [r.latency_ms for r in run.responses]
        report.prompt_tokens += run.prompt_tokens
        report.cached_tokens += run.cached_tokens
        if on_rows:
            on_rows(len(chunk))
    return report


def classifier_for(config_path: str | None) -> Any:
    """A :class:`SignalClassifier` on the config at ``config_path`` (default: the CLI's default
    config), with an empty in-memory result cache of its own. Close it with ``.orch.close()``.

    Raises:
        ConfigError: the config is missing or invalid.
    """
    from llm_orchestrator.classification.pipeline import SignalClassifier
    from llm_orchestrator.orchestrator import LLMOrchestrator

    orch = LLMOrchestrator.from_yaml(config_path)
    settings = orch.config.classification
    return SignalClassifier(orch, cache=ResultCache(settings.cache_ttl_seconds))


def parse_variant(text: str) -> tuple[str, str]:
    """``NAME=CONFIG.yaml`` → ``(NAME, CONFIG.yaml)``.

    Raises:
        ValueError: no ``=``, an empty name or an empty path.
    """
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError(f"{text!r}: expected NAME=CONFIG.yaml")
    return name.strip(), path.strip()


# -- ranking and outputs ----------------------------------------------------------------------------


def rank(reports: list[VariantReport], tolerance_pp: float = DEFAULT_TOLERANCE_PP) -> list[VariantReport]:
    """Order the variants, set their ``rank`` and ``tied_with_best``; returns them ranked.

    Variants within ``tolerance_pp`` percentage points of the best accuracy count as equally
    accurate and come first, cheapest per 1,000 signals first (a variant with unpriced signals
    after the priced ones); the others follow by accuracy, then cost. Compared exactly.
    """
    if not reports:
        return []
    tolerance = Fraction(str(tolerance_pp)) / 100
    exact = {id(r): Fraction(r.correct, r.n or 1) for r in reports}
    best = max(exact.values())
    for r in reports:
        r.tied_with_best = best - exact[id(r)] <= tolerance

    def key(r: VariantReport) -> tuple[Any, ...]:
        cost = (r.unpriced > 0, r.cost_per_1k_usd)
        return (0, *cost, -exact[id(r)], r.name) if r.tied_with_best else (1, -exact[id(r)], *cost, r.name)

    ranked = sorted(reports, key=key)
    for i, r in enumerate(ranked, 1):
        r.rank = i
    return ranked


def ranking_rule(tolerance_pp: float) -> str:
    """The ranking rule in one sentence (printed with the results)."""
    return (
        f"Ranked by cost at equal accuracy: variants within {tolerance_pp:g} percentage point"
        f"{'' if tolerance_pp == 1 else 's'} of the best accuracy count as equally accurate and are ordered "
        "by cost per 1,000 signals, cheapest first; the others follow by accuracy."
    )


def results_json(reports: list[VariantReport]) -> dict[str, Any]:
    """The ``--json`` document: ``{"variants": [...]}`` in the order given."""
    return {"variants": [r.to_dict() for r in reports]}


def write_predictions(path: Path, reports: list[VariantReport]) -> int:
    """One JSON line per signal per variant; returns the number of lines."""
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for r in reports:
            for p in r.predictions:
                out.write(json.dumps(p.line(r.name), ensure_ascii=False) + "\n")
                n += 1
    return n


def print_input(console: Any, data: EvalInput, source: Path) -> None:
    """One line about the file: signals evaluated, rows left out, renamed ids, unknown labels."""
    left_out = [
        f"{n} {why}" for n, why in ((data.unlabelled, "without a label"), (data.empty, "with an empty text")) if n
    ]
    console.print(
        f"{source}: {len(data.signals)} labelled signals"
        + (f" ({', '.join(left_out)} left out)" if left_out else "")
        + (f"; {len(data.duplicates)} repeated ids renamed id#2, …" if data.duplicates else "")
        + (f"; labels that are not categories: {', '.join(data.unknown_labels)}" if data.unknown_labels else ""),
        soft_wrap=True,
        markup=False,
    )


def print_results(console: Any, ranked: list[VariantReport], tolerance_pp: float) -> None:
    """The terminal summary (rich): the ranked variants, then each one's classes, confusion and stages."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        "rank",
        "variant",
        "prompt",
        "provider / models",
        "n",
        "accuracy",
        "macro-F1",
        "$ per 1k",
        "p50 ms",
        "p95 ms",
        "calls",
        "result cache",
        "prompt cache",
        title="Variants (ranked)",
    )
    for r in ranked:
        p50, p95 = percentile(r.latencies_ms, 50), percentile(r.latencies_ms, 95)
        cost = f"{r.cost_per_1k_usd}" + (f" (+{r.unpriced} unpriced)" if r.unpriced else "")
        table.add_row(
            f"{r.rank}{' =' if r.tied_with_best else ''}",
            escape(r.name),
            r.setup["prompt_version"],
            escape(f"{r.setup['provider']}: {' → '.join(r.setup['models'])}"),
            str(r.n),
            f"{r.accuracy:.1%}",
            f"{r.macro_f1:.3f}",
            cost,
            _ms(p50),
            _ms(p95),
            str(len(r.latencies_ms)),
            f"{r.result_cache_hit_rate:.0%}",
            f"{r.prompt_cache_hit_rate:.0%}",
        )
    console.print(table)
    console.print(ranking_rule(tolerance_pp) + " '=' marks the variants tied with the best.", soft_wrap=True)
    console.print(SIMULATOR_NOTE, soft_wrap=True)
    for r in ranked:
        name = escape(r.name)
        scores = Table("class", "precision", "recall", "F1", "support", title=f"{name}: per class")
        for c, s in r.per_class.items():
            if s.support or s.predicted:
                scores.add_row(escape(c), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support))
        console.print(scores)
        classes = r.classes
        matrix = Table("label \\ predicted", *(escape(c) for c in classes), title=f"{name}: confusion matrix")
        for c, row in zip(classes, r.confusion, strict=True):
            matrix.add_row(escape(c), *(str(v or "") for v in row))
        console.print(matrix)
        stages = Table("stage", "signals", "coverage", "precision", "cost USD", title=f"{name}: stages")
        for key, stage in r.stages().items():
            stages.add_row(
                escape(key),
                str(stage["signals"]),
                f"{stage['coverage']:.1%}",
                f"{stage['precision']:.1%}",
                stage["cost_usd"],
            )
        console.print(stages)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
