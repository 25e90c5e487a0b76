"""Deterministic answers and plausible token counts for the simulator.

A prompt holding ``<signal>`` elements gets a keyword-based classification in the format the
prompt asks for (pipe lines, or JSON when the system prompt mentions JSON). Anything else gets a
sentence derived from a hash of the prompt, so the same request always gets the same answer.
"""

from __future__ import annotations

import hashlib
import html
import json
import re

CHARS_PER_TOKEN = 4
CATEGORIES = ("feature_request", "bug_report", "churn_risk", "expansion_signal", "general_feedback")
_SIGNAL = re.compile(r"<signal(?:\s+id=\"([^\"]*)\")?\s*>(.*?)</signal>", re.S)
_WORDS = (  # noqa: SIM905 - one sentence reads better than a 44-line list
    "retries need jitter so that many clients do not wake at the same instant and hammer a "
    "recovering service again which spreads the load evenly over time and lets queues drain "
    "while breakers close and limits recover without a thundering herd of synchronized calls"
).split()

# (category, weight, phrases). Matching is on lower-cased text; first match per phrase counts.
KEYWORDS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    (
        "churn_risk",
        3.0,
        (
            "cancel",
            "cancelling",
            "canceling",
            "leaving",
            "switch to",
            "switching to",
            "moving to",
            "competitor",
            "we're done",
            "we are done",
            "not renew",
            "won't renew",
            "looking elsewhere",
            "churn",
            "terminate",
            "end our contract",
            "downgrade",
        ),
    ),
    (
        "bug_report",
        2.5,
        (
            "crash",
            "error",
            "broken",
            "fails",
            "failing",
            "failed",
            "bug",
            "timeout",
            "times out",
            "doesn't work",
            "does not work",
            "not working",
            "500",
            "exception",
            "freezes",
            "blank page",
            "can't log in",
            "cannot log in",
            "wrong",
            "stuck",
            "glitch",
        ),
    ),
    (
        "expansion_signal",
        3.0,
        (
            "more seats",
            "additional seats",
            "upgrade",
            "enterprise plan",
            "add team",
            "another team",
            "rollout",
            "roll out",
            "expand",
            "more licenses",
            "whole company",
            "other departments",
            "bigger plan",
            "volume pricing",
            "onboard",
        ),
    ),
    (
        "feature_request",
        2.0,
        (
            "would love",
            "please add",
            "add a",
            "add an",
            "support for",
            "wish",
            "missing",
            "feature",
            "it would be great",
            "could you add",
            "ability to",
            "able to",
            "dark mode",
            "integration with",
            "request",
        ),
    ),
)
CHEAP_MARKERS = ("luna", "haiku", "lite")
# Test hook: a signal holding this marker gets an unparseable line when it is one of several
# signals in a call (asked alone it is answered normally), so tests can see it retried alone.
GARBLE_IN_BATCH = "[[sim:garble-in-batch]]"


def tokens(text: str) -> int:
    """A plausible token count (≈ 4 characters a token, at least 1 for non-empty text)."""
    return max(1, len(text) // CHARS_PER_TOKEN) if text else 0


def classify(text: str, model: str) -> tuple[str, float, str]:
    """Keyword classification: (category, confidence, evidence)."""
    lowered = text.lower()
    scores = dict.fromkeys(CATEGORIES, 0.0)
    first_hit: dict[str, int] = {}
    for category, weight, phrases in KEYWORDS:
        for phrase in phrases:
            pos = lowered.find(phrase)
            if pos >= 0:
                scores[category] += weight
                first_hit.setdefault(category, pos)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], CATEGORIES.index(kv[0])))
    (best, top), (_, second) = ranked[0], ranked[1]
    if top == 0:
        best, confidence = "general_feedback", 0.6
    else:
        margin = (top - second) / top
        confidence = 0.55 + 0.4 * margin
    if any(m in model for m in CHEAP_MARKERS) and confidence < 0.8:
        confidence -= 0.15  # cheap models are less sure on ambiguous text
    words = text.split()
    start = max(0, len(lowered[: first_hit.get(best, 0)].split()) - 2)
    evidence = " ".join(words[start : start + 12])
    return best, round(max(0.05, min(0.99, confidence)), 2), evidence


def classification_answer(prompt: str, system: str, model: str) -> str | None:
    """The answer to a classification prompt, or None if the prompt holds no signal."""
    found = _SIGNAL.findall(prompt)
    if not found:
        return None
    as_json = "JSON" in system
    results = []
    for signal_id, body in found:
        category, confidence, evidence = classify(html.unescape(body), model)
        results.append((signal_id, category, confidence, evidence))
    if len(results) == 1 and not results[0][0]:
        _, category, confidence, evidence = results[0]
        if as_json:
            return json.dumps({"category": category, "confidence": confidence, "evidence": evidence})
        return f"{category}|{confidence}|{evidence}"
    if as_json:
        return json.dumps(
            {"results": [{"id": i, "category": c, "confidence": p, "evidence": e} for i, c, p, e in results]}
        )
    return "\n".join(
        f"{i}|no idea" if GARBLE_IN_BATCH in html.unescape(body) else f"{i}|{c}|{p}|{e}"
        for (i, c, p, e), (_, body) in zip(results, found)
    )


def answer(prompt: str, system: str, model: str) -> str:
    """The deterministic answer text for a request."""
    classified = classification_answer(prompt, system, model)
    if classified is not None:
        return classified
    digest = hashlib.sha256((model + "\0" + prompt).encode()).digest()
    n = 18 + digest[0] % 16
    offset = digest[1] % len(_WORDS)
    words = [_WORDS[(offset + i) % len(_WORDS)] for i in range(n)]
    return f"Simulated reply from {model}: " + " ".join(words) + "."


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut ``text`` to about ``max_tokens`` tokens; returns (text, was_truncated)."""
    if not max_tokens or tokens(text) <= max_tokens:
        return text, False
    return text[: max_tokens * CHARS_PER_TOKEN], True


def pieces(text: str, size: int = 3) -> list[str]:
    """Split text into stream deltas of ``size`` words that join back to exactly ``text``."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return ["".join(parts[i : i + size]) for i in range(0, len(parts), size)] or [""]
