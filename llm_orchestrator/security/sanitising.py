"""Signal sanitising: a customer signal made safe to put in a prompt.

:func:`sanitize_signal` cleans a customer signal before it reaches a model: no control or
invisible characters, no bidi overrides, look-alike letters folded, NFC, bounded length (head and
tail are kept, because the point of a long message is often in its last sentence). It never drops
the item, and it adds the :func:`~llm_orchestrator.security.injection.injection_flags` of the
cleaned text to its own flags.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_orchestrator.security.injection import injection_flags
from llm_orchestrator.security.unicode_classes import (
    BIDI_RE,
    HIDDEN_RE,
    HOMOGLYPH_CHARS,
    HOMOGLYPHS,
    INVISIBLE_RE,
    NEWLINES_RE,
    SURROGATE_RE,
)

DEFAULT_MAX_SIGNAL_CHARS = 8000
# Share of the length budget given to the head of a truncated signal; the tail gets the rest.
TRUNCATE_HEAD_SHARE = 0.6
TRUNCATION_MARKER = "\n[... middle of a long message omitted ...]\n"

_RLO_RUN = re.compile("\u202e([^\u202c\u2069\n]*)[\u202c\u2069]?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ODD_SPACE_RE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# Look-alike Cyrillic and Greek letters are folded only inside words that also hold Latin letters
# ("cаncеl" with Cyrillic а and е), so genuine Cyrillic or Greek text is untouched.
_WORD_RE = re.compile(r"\w+")
_LATIN_RE = re.compile(r"[A-Za-z]")


# (flag, pattern, replacement), applied in this order by sanitize_signal.
_CLEANING_STEPS: tuple[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    ("invalid_unicode_removed", SURROGATE_RE, ""),
    ("bidi_override_reordered", _RLO_RUN, lambda m: m.group(1)[::-1]),
    ("bidi_controls_removed", BIDI_RE, ""),
    ("invisible_chars_removed", INVISIBLE_RE, ""),
    ("hidden_tag_chars_removed", HIDDEN_RE, ""),
    ("control_chars_removed", _CONTROL_RE, ""),
    ("odd_spaces_normalised", _ODD_SPACE_RE, " "),
)


@dataclass(frozen=True)
class SanitizedSignal:
    """A signal made safe to put in a prompt.

    Attributes:
        text: The cleaned (possibly truncated) text.
        truncated: True when the text was longer than the limit.
        original_length: Length in characters of the text as received.
        flags: What was found or changed (``truncated``, ``control_chars_removed``, ...) followed
            by the :func:`injection_flags` of the text.
    """

    text: str
    truncated: bool
    original_length: int
    flags: list[str] = field(default_factory=list)


def _fold_mixed_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if _LATIN_RE.search(word) and not HOMOGLYPH_CHARS.isdisjoint(word):
        return word.translate(HOMOGLYPHS)
    return word


def fold_homoglyphs(text: str) -> str:
    """Replace Latin look-alike letters inside words that mix them with Latin letters.

    Args:
        text: Any text.

    Returns:
        The text with mixed-script words spelled in Latin letters.
    """
    return _WORD_RE.sub(_fold_mixed_word, text)


def _head_and_tail(text: str, max_chars: int) -> str:
    """Keep the start and the end of ``text`` within ``max_chars``, marking the cut."""
    budget = max_chars - len(TRUNCATION_MARKER)
    if budget < 2 * len(TRUNCATION_MARKER):  # too small for head + tail: keep the head only
        return text[:max_chars]
    head = int(budget * TRUNCATE_HEAD_SHARE)
    return text[:head] + TRUNCATION_MARKER + text[len(text) - (budget - head) :]


def as_sanitized(text: str | SanitizedSignal) -> SanitizedSignal:
    """``text`` as a :class:`SanitizedSignal`: one already sanitised is kept as it is (a text the
    caller cut at its own ``max_signal_chars`` stays marked truncated), a raw one is sanitised."""
    return text if isinstance(text, SanitizedSignal) else sanitize_signal(text)


def sanitize_signal(text: str, max_chars: int = DEFAULT_MAX_SIGNAL_CHARS) -> SanitizedSignal:
    """Clean a customer signal for a prompt. Never raises and never drops the item.

    Newlines become ``\\n``; control characters (but ``\\n`` and ``\\t``), zero-width and other
    invisible characters, bidi controls and lone surrogates are removed; a right-to-left
    override run is rewritten in the order a reader sees it; look-alike Cyrillic/Greek letters
    inside Latin words are folded; other invisible format characters (Unicode category Cf) are
    dropped; odd spaces become plain spaces; the text is NFC-normalised and stripped, then cut
    to ``max_chars`` keeping its head and tail around a marker.

    Args:
        text: The signal as received (non-strings are converted with ``str()``; None is empty).
        max_chars: The longest text returned.

    Returns:
        The :class:`SanitizedSignal`, with flags for each kind of change and any injection flags.
    """
    raw = "" if text is None else text if isinstance(text, str) else str(text)
    original_length, flags = len(raw), []
    limit = max(1, int(max_chars))
    if len(raw) > 4 * limit:  # bound the work on huge inputs; the final cut happens below
        raw = raw[: 2 * limit] + "\n" + raw[-2 * limit :]
    cleaned = NEWLINES_RE.sub("\n", raw)
    for flag, pattern, replacement in _CLEANING_STEPS:
        cleaned, count = pattern.subn(replacement, cleaned)
        if count:
            flags.append(flag)
    if any(unicodedata.category(ch) == "Cf" for ch in cleaned):  # any other invisible format char
        cleaned = "".join(ch for ch in cleaned if unicodedata.category(ch) != "Cf")
        if "invisible_chars_removed" not in flags:
            flags.append("invisible_chars_removed")
    folded = fold_homoglyphs(cleaned)
    if folded != cleaned:
        flags.append("homoglyphs_folded")
    cleaned = unicodedata.normalize("NFC", folded).strip()
    if not cleaned:
        flags.append("empty")
    injection = injection_flags(cleaned)
    truncated = len(cleaned) > limit or original_length > 4 * limit
    if len(cleaned) > limit:
        cleaned = _head_and_tail(cleaned, limit).strip()
    if truncated:
        flags.append("truncated")
    return SanitizedSignal(cleaned, truncated, original_length, flags + injection)
