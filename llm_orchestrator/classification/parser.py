"""Parse a model's classification answer. Never raises; never returns a label outside the five.

Accepted shapes (single signal, then batch):

* ``category|confidence|evidence`` and ``id|category|confidence|evidence`` lines;
* ``{"category": ..., "confidence": ..., "evidence": ...}`` and
  ``{"results": [{"id": ..., "category": ..., ...}]}`` (also a bare list, or one object per line);
* ``Category: x`` / ``Confidence: y`` / ``Evidence: z`` key-value text.

Tolerated: surrounding prose, code fences, case, ``bug report`` for ``bug_report``, key noise
such as ``Category: bug_report|Confidence: 0.9|...``, confidences written ``0.9``, ``.9``,
``90%`` or ``90`` (clamped to [0, 1]) and ``|`` inside the evidence (only the first separators
split). Several *different* answers for the same signal are ambiguous and fail: a model that
repeats an injected "expansion_signal|0.99|..." line next to its own answer gets escalated, not
believed. Anything unusable is a :class:`ParseFailure`, which the pipeline treats as zero
confidence. Evidence is redacted (no keys, emails or phone numbers) and cut to 300 characters.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from llm_orchestrator.classification.categories import LABELS
from llm_orchestrator.classification.prompt import escape_text
from llm_orchestrator.security import redact

MAX_EVIDENCE_CHARS = 300
MAX_EXCERPT_CHARS = 120
# Answers are cut to this before parsing (a batch of 200 signals fits comfortably).
MAX_ANSWER_CHARS = 200_000
# At most this many "{" / "[" positions are tried as the start of a JSON value.
MAX_JSON_STARTS = 200

_LABEL_ALTERNATIVES = "|".join(label.replace("_", r"[\s_\-]*") for label in LABELS)
_FIELD_LABEL_RE = re.compile(rf"({_LABEL_ALTERNATIVES})[\s*`\"'.,;)\]]*$", re.I)
# What may precede the label in its field: decoration and at most a short "key:" prefix.
_LABEL_PREFIX_RE = re.compile(r"[\W\d_]*(?:[a-z][a-z ]{0,29}[:=>\-][\W\d_]*)?", re.I)
_KEY_PREFIX_RE = re.compile(
    r"^[\s*`\"'{\[(]*(?:confidence|conf|score|probability|certainty|evidence|reason|quote|rationale)"
    r"[\s*`\"']*[:=]\s*",
    re.I,
)
_NUMBER_RE = re.compile(r"[\s*`\"'(\[]*([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:e[+-]?\d+)?)\s*(%?)[\s*`\"')\].,;]*", re.I)
_FENCE_RE = re.compile(r"```(?:[A-Za-z0-9_+\-]*[ \t]*(?=\r?\n))?")
_WRAPPER_TAG_RE = re.compile(r"</?\s*(?:answer|output|classification|result)\s*>", re.I)
_WHITESPACE_RE = re.compile(r"\s+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_QUOTES = "\"'`“”‘’"
_ID_DECORATION = " \t*`\"'[]()<>#-•"
_ID_PREFIX_RE = re.compile(r"^(?:signal\s+)?id\s*[:=]\s*", re.I)
_KV_CATEGORY_RE = re.compile(rf"\b(?:category|label|class)[\"'*`]*\s*[:=]\s*[\"'*`]*({_LABEL_ALTERNATIVES})\b", re.I)
_KV_CONFIDENCE_RE = re.compile(r"\b(?:confidence|score|probability)[\"'*`]*\s*[:=]\s*([^\n,;}|]{1,12})", re.I)
_KV_EVIDENCE_RE = re.compile(r"\b(?:evidence|reason|quote)[\"'*`]*\s*[:=]\s*([^\n]*)", re.I)
_JSON_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Classification:
    """One signal's category, the model's confidence in it and a supporting quote.

    Attributes:
        category: One of the five labels (enforced on construction).
        confidence: A probability in [0, 1].
        evidence: A short, redacted quote of at most 300 characters.
    """

    category: str
    confidence: float
    evidence: str

    def __post_init__(self) -> None:
        if self.category not in LABELS:
            raise ValueError(f"unknown category {self.category!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence!r} outside [0, 1]")


@dataclass(frozen=True)
class ParseFailure:
    """An answer (or one item of a batch answer) that could not be used.

    Attributes:
        reason: Why, in a few words.
        raw_excerpt: The start of the answer, redacted, for logs.
        confidence: Always 0.0, so callers can rank failures with classifications.
    """

    reason: str
    raw_excerpt: str
    confidence: float = 0.0


def _coerce(text: object) -> str:
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    return (text if isinstance(text, str) else str(text))[:MAX_ANSWER_CHARS]


def _failure(reason: str, text: str) -> ParseFailure:
    excerpt = _CONTROL_RE.sub(" ", text[: MAX_EXCERPT_CHARS * 2])
    return ParseFailure(reason, redact(excerpt)[:MAX_EXCERPT_CHARS])


def _unfence(text: str) -> str:
    """Drop code-fence markers (and their language tag) and wrapper tags, keeping what they enclose."""
    return _WRAPPER_TAG_RE.sub("\n", _FENCE_RE.sub("\n", text))


def _label(value: object) -> str | None:
    """The canonical label a field names, or None."""
    if not isinstance(value, str):
        return None
    field = value.strip()
    match = _FIELD_LABEL_RE.search(field)
    if not match or not _LABEL_PREFIX_RE.fullmatch(field[: match.start(1)]):
        return None
    label = re.sub(r"[\s_\-]+", "_", match.group(1).lower())
    return label if label in LABELS else None


def _confidence(value: object) -> float | None:
    """A confidence in [0, 1] from ``0.9``, ``.9``, ``90%``, ``90`` or a JSON number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number, percent, integral = float(value), False, isinstance(value, int)
    elif isinstance(value, str):
        match = _NUMBER_RE.fullmatch(_KEY_PREFIX_RE.sub("", value.strip()))
        if not match:
            return None
        digits = match.group(1).replace(",", ".")
        number, percent, integral = float(digits), bool(match.group(2)), not re.search(r"[.e]", digits, re.I)
    else:
        return None
    if not math.isfinite(number):
        return None
    if percent or (integral and 1 < number <= 100):
        number /= 100
    return min(1.0, max(0.0, number))


def _evidence(value: object) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = _WHITESPACE_RE.sub(" ", _CONTROL_RE.sub(" ", _KEY_PREFIX_RE.sub("", text[:2000]))).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return redact(text)[:MAX_EVIDENCE_CHARS].strip()


def _from_fields(category: object, confidence: object, evidence: object) -> Classification | str:
    """A Classification, or the reason the fields are unusable."""
    label = _label(category)
    if label is None:
        return "category is not one of the five labels"
    conf = _confidence(confidence)
    if conf is None:
        return "confidence is missing or not a number"
    return Classification(label, conf, _evidence(evidence))


def _get(obj: dict[str, Any], *names: str) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON object or array embedded in ``text`` (outermost first, left to right)."""
    pos, tries = 0, 0
    while tries < MAX_JSON_STARTS:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            return
        start, tries = min(starts), tries + 1
        try:
            value, end = _JSON_DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        yield value
        pos = max(end, start + 1)


def _json_items(value: Any) -> Iterator[dict[str, Any]]:
    """Answer objects inside a decoded JSON value: itself, its ``results``, or list entries."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item
    elif isinstance(value, dict):
        results = _get(value, "results", "classifications", "items")
        if isinstance(results, list):
            yield from _json_items(results)
        else:
            yield value


def _fields_of(obj: dict[str, Any]) -> Classification | str:
    return _from_fields(
        _get(obj, "category", "label"), _get(obj, "confidence", "score"), _get(obj, "evidence", "reason", "quote")
    )


def _line_answer(line: str) -> Classification | str | None:
    """A single-signal pipe line (3 fields, 2 without evidence, or 4 with a leading id)."""
    parts = line.split("|", 2)
    if len(parts) < 2:
        return None
    got = _from_fields(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    if isinstance(got, str) and len(parts) == 3 and "|" in parts[2]:
        rest = line.split("|", 3)
        if _label(rest[1]):
            got = _from_fields(rest[1], rest[2], rest[3])
    return got


def _key_value_answer(text: str) -> Classification | str | None:
    category = _KV_CATEGORY_RE.search(text)
    if not category:
        return None
    confidence = _KV_CONFIDENCE_RE.search(text)
    evidence = _KV_EVIDENCE_RE.search(text)
    return _from_fields(
        category.group(1),
        confidence.group(1) if confidence else None,
        evidence.group(1).strip("{}\"' ") if evidence else "",
    )


def _decide(
    found: list[Classification], failures: list[ParseFailure], text: str, what: str
) -> Classification | ParseFailure:
    """The answer when all valid readings agree; the first failure when there is none."""
    if found:
        if len({c.category for c in found}) > 1:
            return _failure(f"ambiguous: different categories for {what}", text)
        return found[0]
    return failures[0] if failures else _failure(f"no answer for {what}", text)


def _collect(
    got: Classification | str | None, source: str, found: list[Classification], failures: list[ParseFailure]
) -> None:
    if isinstance(got, Classification):
        found.append(got)
    elif got is not None:
        failures.append(_failure(got, source))


def _single(text: str) -> Classification | ParseFailure:
    body = _unfence(text)
    found: list[Classification] = []
    failures: list[ParseFailure] = []
    for value in _json_values(body):
        for obj in _json_items(value):
            _collect(_fields_of(obj), text, found, failures)
    if not found:
        for line in body.splitlines():
            _collect(_line_answer(line), line, found, failures)
    if not found:
        _collect(_key_value_answer(body), text, found, failures)
    if not found and not failures:
        return _failure("no category|confidence|evidence answer found", text)
    return _decide(found, failures, text, "the signal")


def parse_single(text: str) -> Classification | ParseFailure:
    """Parse a one-signal answer.

    Args:
        text: The model's answer (any object is accepted; non-strings are converted).

    Returns:
        A :class:`Classification` with one of the five labels, or a :class:`ParseFailure`.
        Never raises.
    """
    raw = ""
    try:
        raw = _coerce(text)
        return _single(raw)
    except Exception as err:
        return _failure(f"parser error {type(err).__name__}", raw)


class _IdIndex:
    """Finds which expected id a batch line or JSON item belongs to."""

    def __init__(self, expected: Iterable[object]) -> None:
        self.keys: list[Any] = list(dict.fromkeys(expected))
        self.exact: dict[str, Any] = {}
        folded: dict[str, list[Any]] = {}
        for key in self.keys:
            name = str(key).strip()
            self.exact.setdefault(name, key)
            folded.setdefault(name.casefold(), []).append(key)
        self.folded = {name: keys[0] for name, keys in folded.items() if len(keys) == 1}
        # Ids holding "|" are matched as line prefixes (as sent, or XML-escaped as in the prompt).
        self.with_pipe = sorted(
            (
                (key, form)
                for key in self.keys
                if "|" in str(key)
                for form in dict.fromkeys((str(key).strip(), escape_text(str(key)).strip()))
            ),
            key=lambda pair: -len(pair[1]),
        )

    def lookup(self, raw: object) -> Any | None:
        text = str(raw).strip()
        for candidate in (text, _ID_PREFIX_RE.sub("", text.strip(_ID_DECORATION)).strip(_ID_DECORATION)):
            for name in (candidate, html.unescape(candidate)):
                if name in self.exact:
                    return self.exact[name]
                if name.casefold() in self.folded:
                    return self.folded[name.casefold()]
        return None

    def split_line(self, line: str) -> tuple[Any, str] | None:
        """``(expected id, rest of line)`` for an ``id|...`` line, else None."""
        for stripped in dict.fromkeys((line.strip(), line.strip().lstrip(_ID_DECORATION))) if self.with_pipe else ():
            for key, form in self.with_pipe:  # longest first, before splitting on the first "|"
                after = stripped[len(form) :].lstrip(" \"'`*]")
                if stripped.startswith(form) and after.startswith("|"):
                    return key, after[1:]
        head, sep, rest = line.partition("|")
        key = self.lookup(head) if sep else None
        return (key, rest) if key is not None else None


def _batch(text: str, expected_ids: Iterable[object]) -> dict[Any, Classification | ParseFailure]:
    index = _IdIndex(expected_ids)
    found: dict[Any, list[Classification]] = {k: [] for k in index.keys}
    failures: dict[Any, list[ParseFailure]] = {k: [] for k in index.keys}
    body = _unfence(text)
    for value in _json_values(body):
        for obj in _json_items(value):
            key = index.lookup(_get(obj, "id", "signal_id"))
            if key is not None:
                _collect(_fields_of(obj), json.dumps(obj, default=str), found[key], failures[key])
    for line in body.splitlines():
        split = index.split_line(line)
        if split is not None:
            key, rest = split
            parts = rest.split("|", 2)
            got = _from_fields(parts[0], parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else "")
            _collect(got, line, found[key], failures[key])
    if len(index.keys) == 1 and not found[index.keys[0]]:
        single = _single(text)
        if isinstance(single, Classification):
            found[index.keys[0]].append(single)
    return {key: _decide(found[key], failures[key], text, f"id {key}") for key in index.keys}


def parse_batch(text: str, expected_ids: Iterable[str]) -> dict[str, Classification | ParseFailure]:
    """Parse a batch answer; each expected id is parsed on its own.

    A missing or malformed id gets a :class:`ParseFailure` without affecting its neighbours;
    ids that were not expected are ignored. Ids are matched exactly, then ignoring case and
    surrounding decoration (quotes, brackets, ``id:``), and also in their XML-escaped form.

    Args:
        text: The model's answer.
        expected_ids: The ids sent in the prompt, in order.

    Returns:
        One entry per expected id (in the given order). Never raises.
    """
    raw = ""
    try:
        keys = list(dict.fromkeys(expected_ids or ()))
    except TypeError:  # not iterable, or unhashable ids: nothing can be keyed by them
        return {}
    try:
        raw = _coerce(text)
        return _batch(raw, keys)
    except Exception as err:
        failure = _failure(f"parser error {type(err).__name__}", raw)
        return dict.fromkeys(keys, failure)
