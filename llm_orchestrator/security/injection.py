"""Prompt-injection flags: instructions hidden in a customer signal, named but never blocked.

:func:`injection_flags` names prompt-injection patterns found in a text, also when the
instruction is disguised (zero-width characters, full-width or look-alike letters), misspelled
("ignroe all prevoius instrucitons") or smuggled in as base64 or hex. Flags inform the pipeline
(the keyword stage abstains, reviewers can look); they never block a signal.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from functools import lru_cache

from llm_orchestrator.security.unicode_classes import (
    BIDI_RE,
    HIDDEN_RE,
    HOMOGLYPHS,
    INVISIBLE_RE,
    NEWLINES_RE,
    SURROGATE_RE,
)

_LABEL_WORDS = r"(?:feature_request|bug_report|churn_risk|expansion_signal|general_feedback)"
_ROLE = r"(?:system|admin|administrator|developer|operator|assistant|user|human|ai|model|bot)"

# (flag, pattern) matched against a normalised view: invisibles removed, NFKC, homoglyphs
# folded, lower case, runs of spaces collapsed. Newlines are kept for line-start patterns.
INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ignore_instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\b[\w ,']{0,30}?\b"
            r"(?:instructions?|prompts?|rules|directions|guidelines|categor(?:y|ies)(?: list)?|context|labels)\b"
        ),
    ),
    (
        "fake_system_message",
        re.compile(
            r"(?:^|\n)[ \t>#*\[(-]*(?:system|admin|administrator|developer|operator)\b"
            r"[ \t]*(?:message|prompt|note)?[ \t]*:"
            rf"|\bend (?:of )?system\b|[\[(][ \t]*{_ROLE}[ \t]+(?:note|message|instruction|override)s?\b"
        ),
    ),
    ("fake_chat_turn", re.compile(r"(?:^|\n)[ \t>#*`-]*(?:assistant|user|human|ai|model|bot)[ \t]*:")),
    (
        "chat_template_tokens",
        re.compile(
            r"<\|[a-z_]{2,30}\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|</?s>|<\|?(?:endoftext|eot_id)\|?>"
        ),
    ),
    ("closing_signal_tag", re.compile(r"<\s*/\s*signal\b|<\s*signal\b")),
    (
        "markup_injection",
        re.compile(
            r"<\s*/?\s*(?:instructions?|system|prompt|categories|category|output_format|task|admin|rules|"
            r"examples?|answer|context)\b[^>]{0,80}>"
        ),
    ),
    (
        "answer_format_injection",
        re.compile(rf"\b{_LABEL_WORDS}\s*\|\s*[0-9.]+\s*%?\s*\||\bcategory\s*\|\s*confidence\b|\"category\"\s*:"),
    ),
    ("label_mention", re.compile(rf"\b{_LABEL_WORDS}\b")),
    (
        "output_directive",
        re.compile(
            r"\b(?:respond|reply|answer)\s+(?:only\s+)?(?:with|as)\b|\brespond\s+(?:only\s+)?"
            + _LABEL_WORDS
            + r"|\b(?:label|classify|categori[sz]e|mark|tag)\s+(?:this|it|these|them|the\s+(?:message|signal|ticket))\b"
            r"(?:\s+as)?|\b(?:must|should|shall)\s+(?:always\s+)?be\s+(?:labell?ed|classified|categori[sz]ed|tagged)\b"
            r"|\balways\s+(?:return|output|respond|answer|label)s?\b|\bfor\s+every\s+(?:signal|message)\b"
        ),
    ),
    (
        "role_play",
        re.compile(
            r"\byou\s+are\s+(?:now|no\s+longer)\b|\byou\s+are\s+an?\s+(?:classifier|assistant|ai|model|bot|"
            r"language\s+model|system)\b|\bact\s+as\b|\bpretend\s+(?:to\s+be|you\s+are)\b|\bfrom\s+now\s+on\b"
            r"|\b(?:maintenance|developer|debug|god|admin|jailbreak|dan)\s+mode\b"
        ),
    ),
    (
        "policy_override",
        re.compile(
            r"\bnew\s+(?:rule|policy|instructions?|directive|system\s+prompt)s?\b"
            r"|\b(?:rule|instruction|message|order)s?\s+from\s+(?:your|the)\s+(?:admin|administrator|developer|operator|"
            r"system)"
        ),
    ),
    (
        "exfiltration",
        re.compile(
            r"\b(?:print|reveal|show|repeat|output|display|leak|dump|share)\s+(?:me\s+)?(?:your|the)\s+"
            r"(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+)?(?:system\s+prompt|prompt|instructions|"
            r"api\s+keys?|secrets?|environment)\b|\bapi\s+keys?\s+in\s+your\s+environment\b"
        ),
    ),
)
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")

# Misspelled injections ("ignroe all prevoius instrucitons"): key words matched with this many
# edits (optimal string alignment: swapping two neighbours is one edit). Words under five letters
# only match exactly, because one edit turns them into other common words; "override" gets one
# edit because two reach "overtime" and "overwrite".
FUZZY_KEY_WORDS: dict[str, int] = {
    "ignore": 1,
    "disregard": 2,
    "forget": 1,
    "override": 1,
    "bypass": 1,
    "instructions": 2,
    "instruction": 2,
    "prompts": 1,
    "prompt": 1,
    "guidelines": 2,
    "above": 1,
    "system": 1,
    "reveal": 1,
    "print": 1,
    "repeat": 1,
    "display": 1,
    "output": 1,
    "new": 0,
}
_KEY_LETTERS = {key: frozenset(key) for key in FUZZY_KEY_WORDS}
# Real words within reach of a key word that mean something else ("ignored" is a report, not an order).
NOT_MISSPELLINGS = frozenset(
    {
        "ignored",
        "ignores",
        "forgot",
        "forge",
        "forged",
        "forgets",
        "disregards",
        "disregarded",
        "overrides",
        "overrode",
        "instructor",
        "instructors",
        "instructing",
        "construction",
        "constructions",
        "abode",
        "point",
        "paint",
        "sprint",
        "prints",
        "printer",
        "printed",
        "repeats",
        "displays",
        "outputs",
        "prompted",
        "systems",
    }
)
_VERBS = frozenset({"ignore", "disregard", "forget", "override", "bypass"})
_TARGETS = frozenset({"instructions", "instruction", "prompts", "prompt", "guidelines"})
# What may follow "ignore the above" for it to be an order about the text above, not about
# "the above error": the end of the clause, a comma, one of these words or (with a typo) a joiner.
_AFTER_ABOVE = frozenset({",", "and", "then", "this", "text", "everything"})
_JOINERS = ("and", "then")
# (flag, slots of key words, most words allowed between consecutive slots, what may follow or None).
_FUZZY_PHRASES: tuple[tuple[str, tuple[frozenset[str], ...], tuple[int, ...], frozenset[str] | None], ...] = (
    ("ignore_instructions", (_VERBS, _TARGETS), (4,), None),
    ("ignore_instructions", (_VERBS, frozenset({"above"})), (3,), _AFTER_ABOVE),
    ("policy_override", (frozenset({"new"}), frozenset({"instructions", "instruction"})), (0,), None),
    (
        "exfiltration",
        (
            frozenset({"reveal", "print", "repeat", "display", "output"}),
            frozenset({"system"}),
            frozenset({"prompt", "prompts", "instructions"}),
        ),
        (2, 0),
        None,
    ),
)
_CLAUSE_RE = re.compile(r"[^.!?;:\n]+")
_TOKEN_RE = re.compile(r"[a-z0-9]+|,")

# Smuggled injections: base64 (standard or URL-safe) and hex runs are decoded and the decoded text
# is scanned with the same patterns. The work per text is bounded.
MIN_ENCODED_RUN_CHARS = 16
MAX_DECODED_RUNS = 16  # decode attempts per text
MAX_DECODED_BYTES = 4096  # decoded bytes per text, over all runs
MIN_PRINTABLE_SHARE = 0.9  # decoded text must be mostly printable to be scanned
ENCODED_FLAG = "encoded_injection"
_MIN_HEX_PAIRS = MIN_ENCODED_RUN_CHARS // 2
_HEX_PAIR = "[0-9A-Fa-f]{2}"
_ENCODED_RUN_RE = re.compile(
    rf"[A-Za-z0-9+/_\-]{{{MIN_ENCODED_RUN_CHARS},}}={{0,2}}"  # base64 (either alphabet) or plain hex
    rf"|(?:\\x{_HEX_PAIR}){{{_MIN_HEX_PAIRS},}}"  # \x69\x67...
    rf"|(?<![0-9A-Fa-f]){_HEX_PAIR}([ :]){_HEX_PAIR}"  # 69 67 ... or 69:67:... (one separator throughout)
    rf"(?:\1{_HEX_PAIR}){{{_MIN_HEX_PAIRS - 2},}}(?![0-9A-Fa-f])"
)
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEX_NOISE_RE = re.compile(r"\\x|[ :]")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
FLAG_ORDER = (*(name for name, _ in INJECTION_PATTERNS), ENCODED_FLAG)


def _unmasked(text: str) -> str:
    """Text with invisibles removed, NFKC, homoglyphs folded and spaces collapsed (case kept)."""
    view = INVISIBLE_RE.sub("", BIDI_RE.sub("", HIDDEN_RE.sub("", text)))
    view = unicodedata.normalize("NFKC", SURROGATE_RE.sub("", view)).translate(HOMOGLYPHS)
    return _SPACES_RE.sub(" ", NEWLINES_RE.sub("\n", view))


def _detection_view(text: str) -> str:
    """Text as an injection detector should see it: obfuscation undone, lower case."""
    return _unmasked(text).lower()


def _within_edits(word: str, key: str, limit: int) -> bool:
    """Whether ``word`` is at most ``limit`` edits (insert, delete, substitute, swap) from ``key``."""
    if abs(len(word) - len(key)) > limit:
        return False
    before, row = None, list(range(len(key) + 1))
    for i, a in enumerate(word, 1):
        current = [i] + [0] * len(key)
        for j, b in enumerate(key, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (a != b))
            if before is not None and j > 1 and a == key[j - 2] and word[i - 2] == b:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return False
        before, row = row, current
    return row[-1] <= limit


@lru_cache(maxsize=8192)
def _key_word(word: str) -> str | None:
    """The key word ``word`` spells, possibly with typos; None when it is none of them."""
    if word in FUZZY_KEY_WORDS:
        return word
    if word in NOT_MISSPELLINGS:
        return None
    letters = frozenset(word)
    for key, limit in FUZZY_KEY_WORDS.items():
        # each edit loses at most one of the key's letters: a cheap bound before the real count
        if limit and len(_KEY_LETTERS[key] - letters) <= limit and _within_edits(word, key, limit):
            return key
    return None


def _phrase_at(
    keys: list[str | None],
    tokens: list[str],
    start: int,
    slots: tuple[frozenset[str], ...],
    gaps: tuple[int, ...],
    after: frozenset[str] | None,
) -> bool:
    """Whether a phrase's slots are filled from ``start`` on, each within its gap of the last."""
    position = start
    for slot, gap in zip(slots[1:], gaps):
        following = range(position + 1, min(len(keys), position + gap + 2))
        position = next((j for j in following if keys[j] in slot), -1)
        if position < 0:
            return False
    if after is None or position + 1 == len(tokens) or tokens[position + 1] in after:
        return True
    return any(_within_edits(tokens[position + 1], joiner, 1) for joiner in _JOINERS)


def _misspelled_flags(view: str) -> set[str]:
    """Flags of the key phrases found in ``view`` with up to the allowed typos per word."""
    found: set[str] = set()
    for clause in _CLAUSE_RE.findall(view):
        tokens = _TOKEN_RE.findall(clause)
        keys = [_key_word(t) if len(t) >= 3 else None for t in tokens]
        for flag, slots, gaps, after in _FUZZY_PHRASES:
            if flag not in found and any(
                key in slots[0] and _phrase_at(keys, tokens, i, slots, gaps, after) for i, key in enumerate(keys)
            ):
                found.add(flag)
    return found


def _flags_in(view: str) -> set[str]:
    """Names of the patterns and misspelled key phrases found in a detection view."""
    return {name for name, pattern in INJECTION_PATTERNS if pattern.search(view)} | _misspelled_flags(view)


def _decode_run(run: str, max_bytes: int) -> bytes | None:
    """The bytes a hex or base64 run stands for (at most ``max_bytes``); None when it is neither."""
    digits = _HEX_NOISE_RE.sub("", run)
    digits = digits[2:] if digits[:2] in ("0x", "0X") else digits
    if _HEX_RE.fullmatch(digits):
        return bytes.fromhex(digits[: 2 * max_bytes])
    body = run.rstrip("=").translate(_URLSAFE_TO_STANDARD)[: 4 * (max_bytes // 3)]
    body = body[: len(body) - 1] if len(body) % 4 == 1 else body
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_plausible_run(run: str) -> bool:
    """Cheap pre-check: a one-case word or identifier without digits is not worth decoding."""
    return any(ch.isdigit() for ch in run) or (run.lower() != run and run.upper() != run)


def _decoded_runs(text: str) -> list[str]:
    """Decode the base64 and hex runs of ``text`` that stand for mostly printable UTF-8 text.

    At most :data:`MAX_DECODED_RUNS` runs are decoded and :data:`MAX_DECODED_BYTES` bytes in all,
    in the order the runs appear. A space- or colon-separated hex dump is also returned with its
    first and last characters set apart, since a two-digit number next to it joins the run.

    Args:
        text: Any text (normalise it first: full-width letters are not folded here).

    Returns:
        The decoded texts, in order.
    """
    decoded, attempts, budget = [], 0, MAX_DECODED_BYTES
    for match in _ENCODED_RUN_RE.finditer(text):
        run = match.group(0)
        if not _is_plausible_run(run):
            continue
        if attempts >= MAX_DECODED_RUNS or budget <= 0:
            break
        attempts += 1
        data = _decode_run(run, budget)
        if not data:
            continue
        budget -= len(data)
        plain = data.decode("utf-8", "replace")
        printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in plain)
        if printable >= MIN_PRINTABLE_SHARE * len(plain):
            decoded.append(plain)
            if match.group(1) and len(plain) > 2:  # "42 69 67 ...": a number beside a spaced dump joins it
                decoded.append(f"{plain[0]} {plain[1:-1]} {plain[-1]}")
    return decoded


def injection_flags(text: str) -> list[str]:
    """Name the prompt-injection patterns present in ``text`` (flagged, never blocked).

    Detection runs on a normalised view, so zero-width characters, full-width letters and
    Cyrillic look-alikes do not hide a pattern. The key phrases of ``ignore_instructions``,
    ``policy_override`` and ``exfiltration`` are also found with a typo or two per word
    ("ignroe all prevoius instrucitons", "disregard teh above"). Base64 and hex runs that
    decode to text are scanned the same way; what they hide is reported under its own names
    plus ``encoded_injection``.

    Args:
        text: A customer signal (raw or sanitised).

    Returns:
        The names of the patterns found, in a fixed order (:data:`FLAG_ORDER`); empty when none.
    """
    unmasked = _unmasked(text if isinstance(text, str) else str(text))
    found = _flags_in(unmasked.lower())
    for plain in _decoded_runs(unmasked):
        hidden = _flags_in(_detection_view(plain))
        if hidden:
            found |= hidden | {ENCODED_FLAG}
    return [name for name in FLAG_ORDER if name in found]
