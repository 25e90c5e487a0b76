"""Checks on a model's answer before it is believed.

:func:`validate_output` rejects answers that leak the system prompt (a long verbatim run of its
words, or its section tags) and answers that contain PII or secrets the signal did not contain
(an invented email, phone number or key). The caller treats a rejection like a parse failure.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from llm_orchestrator.classification.prompt import PROMPTS, system_prompt
from llm_orchestrator.security import REDACTION_PATTERNS, find_sensitive

# An answer sharing this many consecutive words with the system prompt (and not with the
# signal itself) is echoing the prompt. Real answers quote at most ~15 words of the signal.
ECHO_MIN_WORDS = 10
_WORD_RE = re.compile(r"[a-z0-9_]+")
_PROMPT_TAG_RE = re.compile(
    r"</?\s*(?:decision_rules|answer_rules|output_format|categories|examples)\s*>"
    r"|<\s*category\s+id\s*=",
    re.I,
)
_DIGITS_RE = re.compile(r"\D+")
_KEY_KINDS_BY_DIGITS = frozenset({"phone", "card", "ssn"})
_NAMED_VALUE_KINDS = frozenset({"secret", "credentials", "bearer_token"})
_NAME_SEPARATOR_RE = re.compile(r"[\s:=\"']+")
# A date of birth is matched with its marker ("DOB: 01/02/1980"); only the date is compared.
_DATE_OF_BIRTH_RE = next(pattern for kind, pattern in REDACTION_PATTERNS if kind == "date_of_birth")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(html.unescape(text).lower())


def _shingles(words: list[str], size: int = ECHO_MIN_WORDS) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


@lru_cache(maxsize=1)
def _prompt_shingles() -> frozenset[tuple[str, ...]]:
    """Word runs of every registered prompt version, both answer modes (built on first use, then kept)."""
    runs: set[tuple[str, ...]] = set()
    for version in PROMPTS:
        for json_mode in (False, True):
            runs |= _shingles(_words(system_prompt(json_mode, version=version)))
    return frozenset(runs)


def _present(kind: str, value: str, signal: str, signal_digits: str) -> bool:
    if kind in _KEY_KINDS_BY_DIGITS:
        digits = _DIGITS_RE.sub("", value)
        return bool(digits) and digits in signal_digits
    if kind in _NAMED_VALUE_KINDS:  # "password: x" vs "password is x": compare the value only
        value = _NAME_SEPARATOR_RE.split(value.strip())[-1]
    elif kind == "date_of_birth":  # "DOB 01/02/1980" vs "DOB: 01/02/1980": compare the date only
        match = _DATE_OF_BIRTH_RE.fullmatch(value)
        value = match.group("value") if match else value
    return value.casefold() in signal.casefold()


def validate_output(raw_answer: str, signal_text: str) -> str | None:
    """Reject an answer that echoes the prompt or holds PII the signal did not contain.

    Args:
        raw_answer: The model's answer as received.
        signal_text: The signal (or, for a batch, all signals joined) the answer is about.

    Returns:
        A short reason (never containing the offending text) when the answer must be treated
        as a parse failure, or None when it is acceptable.
    """
    answer = raw_answer if isinstance(raw_answer, str) else str(raw_answer or "")
    signal = signal_text if isinstance(signal_text, str) else str(signal_text or "")
    if _PROMPT_TAG_RE.search(answer):
        return "answer echoes the system prompt structure"
    echoed = (_shingles(_words(answer)) & _prompt_shingles()) - _shingles(_words(signal))
    if echoed:
        return "answer echoes the system prompt"
    signal_digits = _DIGITS_RE.sub("", signal)
    for kind, value in find_sensitive(answer):
        if not _present(kind, value, signal, signal_digits):
            return f"answer contains an unexpected {kind.replace('_', ' ')} (not in the signal)"
    return None
