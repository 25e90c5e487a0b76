"""The learned prefilter: a small text model that decides the signals it is sure about, for free.

A TF-IDF (words and word pairs) + multinomial logistic regression model, with its probabilities
calibrated by temperature scaling. It runs after the keyword stage (stage ``prefilter``) and
decides a signal only when its top probability reaches the model's ``threshold``; everything else
goes on to the result cache and the models. Like the keyword stage it never decides a signal
with an injection flag, a truncated one, or one the keyword stage calls unsure (another language,
mixed "but ..." statements, irony, uncertainty, quoted or forwarded text: a bag of words cannot
read those).

Training (``llm-orch prefilter train``, needs the ``prefilter`` extra: scikit-learn) reads human
labels (``label``) or a classify output file (the model's own ``category`` where ``confidence``
is at least ``min_confidence``; texts from ``--signals`` when the results have none). One model
is fitted per fold of a stratified k-fold split; the threshold is picked on their out-of-fold
predictions (each from a model that never saw that row) as the lowest probability whose
decisions reach the target precision at a Wilson lower bound (:data:`PRECISION_Z`) with at
least :data:`MIN_DECISIONS` decisions; otherwise the model never decides (threshold
:data:`NEVER`). The saved model is the average of the fold models, so the threshold was chosen
on the same kind of predictions it will see (a refit on all rows would be more confident than
the models the threshold was measured on).

The saved file is plain JSON (terms, idf weights, coefficients, intercepts, temperature,
threshold, labels, training metadata): loading it cannot run code, and predicting is pure Python
(no scikit-learn, no numpy). A file that is not exactly that shape is refused with one line.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeGuard

from llm_orchestrator.classification.categories import LABELS
from llm_orchestrator.classification.keywords import unsure
from llm_orchestrator.classification.parser import Classification
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.security import SanitizedSignal, injection_flags, redact, sanitize_signal
from llm_orchestrator.security.sanitising import as_sanitized

FORMAT = "llm-orchestrator/prefilter"
FORMAT_VERSION = 1
DEFAULT_TARGET_PRECISION = 0.97
DEFAULT_MIN_CONFIDENCE = 0.9  # results rows below this model confidence are not used for training
NGRAM_RANGE = (1, 2)
TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
CV_FOLDS = 5
C_GRID = (1.0, 3.0, 10.0, 30.0)  # inverse regularisation strengths tried (best out-of-fold log loss wins)
MIN_DECISIONS = 10  # held-out decisions a threshold must make before its precision is trusted
# The threshold's held-out precision must reach the target at its Wilson lower bound with this z
# (one-sided, about 80 % confidence): a lucky streak of right answers on a few rows is not enough.
PRECISION_Z = 0.84
MIN_ROWS_PER_LABEL = 2  # a label with fewer training rows is left out (stratified folds need 2)
NEVER = 1.0  # the threshold of a model that never decides (the target was not reached)
SAVED_DIGITS = 7  # significant digits of the numbers in a model file
MAX_EVIDENCE_CHARS = 120
# Limits on a model file (a hostile file cannot make loading slow or huge).
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TERMS = 200_000
MAX_TERM_CHARS = 200
MAX_NGRAM = 3
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*")


class PrefilterError(ConfigError):
    """A prefilter model file is unusable, or training cannot run. The message is one line."""


def prepare(text: str) -> str:
    """The text both training and prediction read: sanitised, lower-cased."""
    return sanitize_signal(text).text.lower()


def _ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    tokens = TOKEN_RE.findall(text)
    lo, hi = ngram_range
    return [" ".join(tokens[i : i + n]) for n in range(lo, hi + 1) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class Prefilter:
    """A trained prefilter (see the module docstring). Build with :func:`load` or :func:`train`."""

    labels: tuple[str, ...]
    terms: tuple[str, ...]
    idf: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]  # one row per label, one column per term
    intercept: tuple[float, ...]
    temperature: float
    threshold: float
    ngram_range: tuple[int, int] = NGRAM_RANGE
    sublinear_tf: bool = True
    training: dict[str, Any] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {t: i for i, t in enumerate(self.terms)})

    def _features(self, prepared: str) -> dict[int, float]:
        counts = Counter(self.index[g] for g in _ngrams(prepared, self.ngram_range) if g in self.index)
        weights = {j: (1 + math.log(c) if self.sublinear_tf else c) * self.idf[j] for j, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {j: w / norm for j, w in weights.items()} if norm else {}

    def probabilities(self, text: str) -> dict[str, float]:
        """Calibrated probability of each label (pure Python).

        Args:
            text: A signal, raw or sanitised.

        Returns:
            ``{label: probability}``, summing to 1.
        """
        x = self._features(prepare(text))
        logits = [
            (b + sum(row[j] * w for j, w in x.items())) / self.temperature for row, b in zip(self.coef, self.intercept)
        ]
        top = max(logits)
        exps = [math.exp(z - top) for z in logits]
        total = sum(exps)
        return {label: e / total for label, e in zip(self.labels, exps)}

    def decide(self, text: str | SanitizedSignal) -> Classification | None:
        """The label when the model is sure (probability ≥ ``threshold``); None otherwise.

        Never decides on a text with an injection flag, a truncated or empty text, or one the
        keyword stage's checks call unsure (``keywords.unsure``).

        Args:
            text: A raw signal, or one already sanitised (the pipeline's, cut at its own
                ``max_signal_chars``: a text it cut counts as truncated here too).

        Returns:
            A :class:`Classification` (confidence = the calibrated probability), or None.
        """
        signal = as_sanitized(text)
        if self.threshold >= NEVER or signal.truncated or not signal.text.strip() or injection_flags(signal.text):
            return None
        if unsure(signal.text.lower()) is not None:  # another language, mixed, ironic, unsure: a model reads it
            return None
        probs = self.probabilities(signal.text)
        label = max(probs, key=probs.__getitem__)
        if probs[label] < self.threshold:
            return None
        return Classification(label, round(probs[label], 4), self._evidence(signal.text, label))

    def _evidence(self, clean: str, label: str) -> str:
        """The sentence holding the term that pushed hardest towards ``label``."""
        row = self.coef[self.labels.index(label)]
        x = self._features(clean.lower())
        if not x:
            return ""
        word = self.terms[max(x, key=lambda j: row[j] * x[j])].split(" ")[0]
        found = re.search(rf"\b{re.escape(word)}\b", clean, re.IGNORECASE)
        at = found.start() if found else 0
        sentence = next((s.group(0) for s in _SENTENCE_RE.finditer(clean) if s.start() <= at < s.end()), clean)
        return redact(sentence.strip())[:MAX_EVIDENCE_CHARS]

    def to_json(self) -> dict[str, Any]:
        """The file contents (see :func:`load`)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "labels": list(self.labels),
            "terms": list(self.terms),
            "idf": list(self.idf),
            "coef": [list(r) for r in self.coef],
            "intercept": list(self.intercept),
            "temperature": self.temperature,
            "threshold": self.threshold,
            "ngram_range": list(self.ngram_range),
            "sublinear_tf": self.sublinear_tf,
            "training": self.training,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model as JSON (atomically: a temporary file, then a rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")
        os.replace(tmp, target)


# -- loading: every field checked, one line on the first problem -----------------------------------


def _bad(where: str, problem: str) -> PrefilterError:
    return PrefilterError(f"{where}: not a usable prefilter model: {problem}")


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(obj: dict[str, Any], name: str, length: int, where: str) -> tuple[float, ...]:
    value = obj.get(name)
    if not isinstance(value, list) or len(value) != length:
        raise _bad(where, f"'{name}' must be a list of {length} numbers")
    if not all(_number(v) for v in value):
        raise _bad(where, f"'{name}' holds a value that is not a finite number")
    return tuple(float(v) for v in value)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def from_json(obj: Any, where: str = "prefilter model") -> Prefilter:
    """Check a decoded model file and build the :class:`Prefilter`.

    Raises:
        PrefilterError: the first field that is missing, of the wrong type or out of bounds.
    """
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise _bad(where, f"'format' must be {FORMAT!r}")
    if obj.get("version") != FORMAT_VERSION:
        raise _bad(where, f"'version' must be {FORMAT_VERSION} (this library reads version {FORMAT_VERSION})")
    labels = obj.get("labels")
    if (
        not isinstance(labels, list)
        or not 2 <= len(labels) <= len(LABELS)
        or len(set(map(str, labels))) != len(labels)
        or not all(isinstance(x, str) and x in LABELS for x in labels)
    ):
        raise _bad(where, f"'labels' must be 2 to {len(LABELS)} distinct labels from {', '.join(LABELS)}")
    terms = obj.get("terms")
    if not isinstance(terms, list) or not 0 < len(terms) <= MAX_TERMS:
        raise _bad(where, f"'terms' must be a list of 1 to {MAX_TERMS:,} strings")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_TERM_CHARS for t in terms) or len(set(terms)) != len(terms):
        raise _bad(where, f"'terms' must be distinct non-empty strings of at most {MAX_TERM_CHARS} characters")
    idf = _numbers(obj, "idf", len(terms), where)
    coef = obj.get("coef")
    if not isinstance(coef, list) or len(coef) != len(labels):
        raise _bad(where, f"'coef' must hold one row per label ({len(labels)})")
    rows = tuple(_numbers({"coef row": row}, "coef row", len(terms), where) for row in coef)
    intercept = _numbers(obj, "intercept", len(labels), where)
    temperature, threshold = obj.get("temperature"), obj.get("threshold")
    if not _number(temperature) or temperature <= 0:
        raise _bad(where, "'temperature' must be a positive number")
    if not _number(threshold) or not 0 < threshold <= 1:
        raise _bad(where, "'threshold' must be a number in (0, 1]")
    ngram = obj.get("ngram_range")
    if (
        not isinstance(ngram, list)
        or len(ngram) != 2
        or not all(type(n) is int for n in ngram)
        or not 1 <= ngram[0] <= ngram[1] <= MAX_NGRAM
    ):
        raise _bad(where, f"'ngram_range' must be [low, high] with 1 <= low <= high <= {MAX_NGRAM}")
    if not isinstance(obj.get("sublinear_tf"), bool):
        raise _bad(where, "'sublinear_tf' must be true or false")
    training = obj.get("training", {})
    if not isinstance(training, dict):
        raise _bad(where, "'training' must be an object")
    return Prefilter(
        tuple(labels),
        tuple(terms),
        idf,
        rows,
        intercept,
        float(temperature),
        float(threshold),
        (ngram[0], ngram[1]),
        obj["sublinear_tf"],
        training,
    )


def load(path: str | os.PathLike[str]) -> Prefilter:
    """Read a model file written by :meth:`Prefilter.save` (JSON only: nothing in it can run).

    Raises:
        PrefilterError: the file is missing, too large, not JSON, or not a valid model (one line).
    """
    where = str(path)
    try:
        stat = os.stat(path)
    except OSError as e:
        raise _bad(where, f"cannot read it ({e.strerror})") from None
    if stat.st_size > MAX_FILE_BYTES:
        raise _bad(where, f"{stat.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} allowed")
    return _load_cached(where, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _load_cached(where: str, mtime_ns: int, size: int) -> Prefilter:  # mtime_ns and size: part of the cache key
    try:
        with open(where, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        obj = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(where, f"not valid JSON ({str(e).splitlines()[0][:120]})") from None
    return from_json(obj, where)


# -- training (needs scikit-learn) ----------------------------------------------------------------


@dataclass
class TrainingRows:
    """What training reads: texts, their labels, and where they came from."""

    texts: list[str]
    labels: list[str]
    source: str  # "labels" or "results (confidence >= x)"
    skipped: int = 0  # rows without a usable label (or below the confidence floor)


def read_training_rows(
    path: Path,
    *,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    signals: Path | None = None,
    text_column: str = "text",
) -> TrainingRows:
    """Rows to train on: a labelled .jsonl/.csv (``label``), or a classify output .jsonl
    (``category`` + ``confidence``; texts from ``signals`` by id when the rows have none).

    Raises:
        InputFileError: a bad file or line, or results without texts and no ``signals``.
    """
    from llm_orchestrator.classification.batch import InputFileError, read_signals

    first = next((line for _, line in _raw_lines(path) if line.strip()), "") if path.suffix == ".jsonl" else ""
    if '"category"' not in first:
        rows = list(read_signals(path, text_column))
        used = [(r["text"], r["label"]) for r in rows if r["label"] in LABELS and r["text"]]
        return TrainingRows([t for t, _ in used], [label for _, label in used], "labels", len(rows) - len(used))
    texts = {r["id"]: r["text"] for r in read_signals(signals, text_column)} if signals else {}
    kept: list[tuple[str, str]] = []
    skipped = 0
    for n, line in _raw_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputFileError(f"{path}: line {n}: not valid JSON") from None
        if not isinstance(row, dict):
            raise InputFileError(f"{path}: line {n}: not a JSON object")
        text = row.get("text") if isinstance(row.get("text"), str) else texts.get(str(row.get("id")))
        confidence = row.get("confidence")
        if row.get("category") not in LABELS or not _number(confidence) or confidence < min_confidence:
            skipped += 1
            continue
        if text is None:
            raise InputFileError(
                f"{path}: line {n}: a result without its text (pass the classified input with --signals)"
            )
        kept.append((text, row["category"]))
    return TrainingRows(
        [t for t, _ in kept], [c for _, c in kept], f"results (confidence >= {min_confidence})", skipped
    )


def _raw_lines(path: Path) -> list[tuple[int, str]]:
    from llm_orchestrator.classification.batch import InputFileError

    try:
        with open(path, encoding="utf-8-sig") as f:
            return list(enumerate(f, 1))
    except OSError as e:
        raise InputFileError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not valid UTF-8; save the file as UTF-8") from None


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise PrefilterError("training a prefilter needs scikit-learn: pip install -e '.[prefilter]'") from None
    from sklearn import feature_extraction, linear_model, model_selection, preprocessing

    return feature_extraction.text, linear_model, model_selection, preprocessing


def _softmax_rows(logits: list[list[float]], temperature: float) -> list[list[float]]:
    out = []
    for row in logits:
        top = max(row)
        exps = [math.exp((z - top) / temperature) for z in row]
        total = sum(exps)
        out.append([e / total for e in exps])
    return out


def _log_loss(logits: list[list[float]], targets: list[int], temperature: float) -> float:
    probs = _softmax_rows(logits, temperature)
    return -sum(math.log(max(p[t], 1e-15)) for p, t in zip(probs, targets)) / len(targets)


def _fit_temperature(logits: list[list[float]], targets: list[int]) -> float:
    """The temperature minimising held-out log loss (golden-section search on log T)."""
    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if _log_loss(logits, targets, math.exp(a)) < _log_loss(logits, targets, math.exp(b)):
            hi = b
        else:
            lo = a
    return math.exp((lo + hi) / 2)


def wilson_lower_bound(correct: int, n: int, z: float = PRECISION_Z) -> float:
    """The Wilson score interval's lower end for ``correct`` successes in ``n`` trials."""
    if n == 0:
        return 0.0
    p, z2 = correct / n, z * z
    return (p + z2 / (2 * n) - z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


def pick_threshold(scored: list[tuple[float, bool]], target: float) -> tuple[float, int, int]:
    """The lowest probability whose decisions (all with probability ≥ it) reach ``target``
    precision at the Wilson lower bound (:data:`PRECISION_Z`).

    Args:
        scored: ``(top probability, was it right)`` per held-out signal the prefilter may decide.
        target: the precision to reach.

    Returns:
        ``(threshold, decided, correct)``; ``(NEVER, 0, 0)`` when no threshold with at least
        ``MIN_DECISIONS`` decisions reaches the target.
    """
    ordered = sorted(scored, key=lambda s: -s[0])
    best = (NEVER, 0, 0)
    correct = 0
    for k, (p, right) in enumerate(ordered, 1):
        correct += right
        tie_follows = k < len(ordered) and ordered[k][0] == p  # a threshold takes every signal at p
        if not tie_follows and k >= MIN_DECISIONS and wilson_lower_bound(correct, k) >= target:
            best = (p, k, correct)
    return best


def train(rows: TrainingRows, *, target_precision: float = DEFAULT_TARGET_PRECISION, seed: int = 0) -> Prefilter:
    """Fit one model per fold, pick the threshold on their held-out predictions, average them.

    The saved model is the average of the fold models (one vocabulary for all, so the average is
    again one linear model), not a refit on all rows: a refit is more confident on new signals
    than the fold models were on their held-out rows, which would make the threshold too low.
    Held-out rows are scored as new signals are: terms their fold's training rows never had are
    dropped before normalising.

    Raises:
        PrefilterError: scikit-learn is missing, or fewer than two labels have enough rows.
    """
    text_mod, linear_model, model_selection, preprocessing = _sklearn()
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # A few hundred rows: BLAS threads only add synchronisation (dev set: 5.9 s with a thread pool,
    # 2.2 s with one thread, on 2 cores).
    with threadpool_limits(limits=1):
        return _train(rows, target_precision, seed, text_mod, linear_model, model_selection, preprocessing)


def _train(
    rows: TrainingRows,
    target_precision: float,
    seed: int,
    text_mod: Any,
    linear_model: Any,
    model_selection: Any,
    preprocessing: Any,
) -> Prefilter:
    counts = Counter(rows.labels)
    keep = {label for label, n in counts.items() if n >= MIN_ROWS_PER_LABEL}
    if len(keep) < 2:
        raise PrefilterError(
            f"training needs at least two labels with {MIN_ROWS_PER_LABEL}+ rows each; got "
            f"{dict(counts) or 'no labelled rows'}"
        )
    labels = tuple(label for label in LABELS if label in keep)
    texts = [prepare(t) for t, y in zip(rows.texts, rows.labels) if y in keep]
    targets = [labels.index(y) for y in rows.labels if y in keep]
    vectorizer = text_mod.TfidfVectorizer(lowercase=False, ngram_range=NGRAM_RANGE, sublinear_tf=True, norm=None)
    raw = vectorizer.fit_transform(texts).tocsr()
    folds = list(
        model_selection.StratifiedKFold(
            min(CV_FOLDS, min(counts[label] for label in labels)), shuffle=True, random_state=seed
        ).split(texts, targets)
    )

    def fold_fit(c: float, train_rows: Any, test_rows: Any) -> tuple[Any, list[list[float]]]:
        seen = (raw[train_rows].getnnz(axis=0) > 0).astype(float)  # terms the fold's training rows have
        model = linear_model.LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        model.fit(preprocessing.normalize(raw[train_rows]), [targets[i] for i in train_rows])
        held_out = preprocessing.normalize(raw[test_rows].multiply(seen).tocsr())
        scores = model.decision_function(held_out)
        return model, (_two_sided(scores) if len(labels) == 2 else scores).tolist()

    candidates = []
    for c in C_GRID:  # the strength whose calibrated held-out log loss is lowest
        logits: list[list[float]] = [[] for _ in texts]
        models = []
        for train_rows, test_rows in folds:
            model, got = fold_fit(c, train_rows, test_rows)
            models.append(model)
            for i, row in zip(test_rows, got):
                logits[i] = row
        temperature = _fit_temperature(logits, targets)
        candidates.append((_log_loss(logits, targets, temperature), c, logits, temperature, models))
    _, c, logits, temperature, models = min(candidates, key=lambda cand: cand[0])
    probs = _softmax_rows(logits, temperature)
    threshold, decided, correct = pick_threshold(
        [(max(p), p.index(max(p)) == t) for p, t, text in zip(probs, targets, texts) if unsure(text) is None],
        target_precision,
    )
    coef = sum(m.coef_ for m in models) / len(models)  # the fold models' average: still one linear model
    intercept = sum(m.intercept_ for m in models) / len(models)
    if len(labels) == 2:
        coef, intercept = _two_sided(coef), _two_sided(intercept)[0]
    import sklearn

    training = {
        "rows": len(texts),
        "source": rows.source,
        "skipped_rows": rows.skipped,
        "rows_per_label": {label: counts[label] for label in labels},
        "left_out_labels": sorted(set(counts) - keep),
        "target_precision": target_precision,
        "C": c,
        "cv_folds": len(folds),
        "held_out_decided": decided,
        "held_out_correct": correct,
        "held_out_coverage": round(decided / len(texts), 4),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scikit_learn": sklearn.__version__,
    }
    return Prefilter(
        labels,
        tuple(map(str, vectorizer.get_feature_names_out())),
        tuple(map(_short, vectorizer.idf_)),
        tuple(tuple(map(_short, r)) for r in coef),
        tuple(map(_short, intercept)),
        _short(temperature),
        _short(threshold),
        NGRAM_RANGE,
        True,
        training,
    )


def _two_sided(values: Any) -> Any:
    """Two-label scikit-learn output (one score column, one coefficient row) as one column per
    label: softmax of ``[-z/2, z/2]`` is the logistic probability of ``z``."""
    import numpy as np  # a scikit-learn dependency: only training gets here

    values = np.asarray(values, dtype=float)
    return np.stack([-values / 2, values / 2], axis=-1) if values.ndim == 1 else np.vstack([-values / 2, values / 2])


def _short(value: float) -> float:
    """``value`` to ``SAVED_DIGITS`` significant digits (the file stays small; predictions move < 1e-6)."""
    return float(f"{float(value):.{SAVED_DIGITS}g}")
