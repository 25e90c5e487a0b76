"""Parse a model's classification answer. Never raises; never returns a label outside the five.

Accepts ``category|confidence|evidence`` (batch: ``id|category|confidence|evidence`` per line)
and the JSON forms, tolerating whitespace, case, code fences, surrounding prose, ``90%`` style
confidences and pipes inside the evidence. Anything else is a :class:`ParseFailure`, which the
pipeline treats as zero confidence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from llm_orchestrator.classification.categories import LABELS

MAX_EVIDENCE = 300
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)
_LABEL = re.compile(r"\b(" + "|".join(LABELS) + r")\b", re.I)


@dataclass(frozen=True)
class Classification:
    category: str
    confidence: float
    evidence: str


@dataclass(frozen=True)
class ParseFailure:
    reason: str
    raw_excerpt: str

    confidence: float = 0.0


def _confidence(value: object) -> float | None:
    text = str(value).strip().rstrip("%")
    try:
        number = float(text)
    except ValueError:
        return None
    if str(value).strip().endswith("%") or number > 1:
        number /= 100
    return min(1.0, max(0.0, number)) if number == number else None  # NaN → None


def _from_fields(category: object, confidence: object, evidence: object) -> Classification | None:
    label = str(category).strip().strip("`*\"' ").lower()
    conf = _confidence(confidence)
    if label not in LABELS or conf is None:
        return None
    return Classification(label, conf, str(evidence or "").strip()[:MAX_EVIDENCE])


def _unfence(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1) if m else text


def _json_objects(text: str) -> list[dict]:
    start = text.find("{")
    while start != -1:
        for end in range(len(text), start, -1):
            if text[end - 1] != "}":
                continue
            try:
                data = json.loads(text[start:end])
            except ValueError:
                continue
            if isinstance(data, dict):
                return [data]
        start = text.find("{", start + 1)
    return []


def _failure(reason: str, text: str) -> ParseFailure:
    return ParseFailure(reason, str(text)[:120])


def parse_single(text: str) -> Classification | ParseFailure:
    """Parse a one-signal answer."""
    try:
        body = _unfence(str(text))
        for obj in _json_objects(body):
            got = _from_fields(obj.get("category"), obj.get("confidence"), obj.get("evidence"))
            if got:
                return got
        for line in body.splitlines():
            parts = line.split("|", 2)
            if len(parts) == 3:
                match = _LABEL.search(parts[0])
                got = _from_fields(match.group(1) if match else parts[0], parts[1], parts[2])
                if got:
                    return got
        return _failure("no valid category|confidence|evidence line", text)
    except Exception as e:  # noqa: BLE001 - a parser for model output must never crash a job
        return _failure(f"parser error {type(e).__name__}", text)


def parse_batch(text: str, expected_ids: list[str]) -> dict[str, Classification | ParseFailure]:
    """Parse a batch answer; every expected id gets a result, missing ones a ParseFailure."""
    results: dict[str, Classification | ParseFailure] = {}
    try:
        body = _unfence(str(text))
        for obj in _json_objects(body):
            for item in obj.get("results") or []:
                if isinstance(item, dict) and str(item.get("id")) in expected_ids:
                    got = _from_fields(item.get("category"), item.get("confidence"), item.get("evidence"))
                    if got:
                        results.setdefault(str(item["id"]), got)
        for line in body.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4 and parts[0].strip() in expected_ids:
                got = _from_fields(parts[1], parts[2], parts[3])
                if got:
                    results.setdefault(parts[0].strip(), got)
    except Exception:  # noqa: BLE001, S110 - see parse_single
        pass
    return {i: results.get(i) or _failure(f"no valid line for id {i}", text) for i in expected_ids}
