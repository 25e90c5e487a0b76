"""Secrets, PII and hostile input: redaction, a logging filter, signal sanitising, injection flags.

* :func:`redact` replaces API keys, tokens, passwords, emails, phone numbers, card numbers, SSNs,
  IPv4/IPv6 addresses and dates of birth with ``[REDACTED:kind]``. It is idempotent and linear in
  the length of its input.
* :class:`RedactingFilter` applies it to every log record in one place (message, arguments,
  string extras and tracebacks), so call sites never have to remember.
* :func:`sanitize_signal` cleans a customer signal before it reaches a model: no control or
  invisible characters, no bidi overrides, NFC, bounded length (head and tail are kept, because
  the point of a long message is often in its last sentence). It never drops the item.
* :func:`injection_flags` names prompt-injection patterns found in a text, also when the
  instruction is misspelled or smuggled in as base64 or hex. Flags inform the pipeline (the
  keyword stage abstains, reviewers can look); they never block a signal.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

DEFAULT_MAX_SIGNAL_CHARS = 8000
# Share of the length budget given to the head of a truncated signal; the tail gets the rest.
TRUNCATE_HEAD_SHARE = 0.6
TRUNCATION_MARKER = "\n[... middle of a long message omitted ...]\n"
_MAX_EXTRA_DEPTH = 3

# -- redaction ------------------------------------------------------------------------------------

def _tag(kind: str) -> str:
    return f"[REDACTED:{kind}]"


_SECRET_NAMES = (r"api[_\- ]?key|apikey|access[_\-]?key(?:[_\-]?id)?|secret(?:[_\-]?(?:access[_\-]?)?key)?|"
                 r"client[_\-]?secret|(?:access|auth|refresh|session)[_\-]?token|token|password|passwd|pwd|passcode")
# Kinds whose pattern has name/sep/value groups: only the value is redacted.
_NAMED_VALUE_KINDS = frozenset({"credentials", "secret", "date_of_birth"})
_VALUE_HAS_SYMBOL_RE = re.compile(r"[\d\W_]")

# A date is only redacted after a birth-date marker ("DOB:", "date of birth", "born on", ...).
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = (rf"\d{{4}}[./\-]\d{{1,2}}[./\-]\d{{1,2}}|\d{{1,2}}[./\-]\d{{1,2}}[./\-](?:\d{{4}}|\d{{2}})"
         rf"|{_DAY}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}|{_MONTH}\s+{_DAY},?\s+\d{{4}}|{_MONTH},?\s+\d{{4}}")
_BIRTH_MARKER = r"d\.?\s?o\.?\s?b\b\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+(?:on|in))?"
# IP candidates are checked with ``ipaddress``; "v1.2.3.4" or "version 1.2.3.4" is a version.
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IP_KINDS = frozenset({"ipv4", "ipv6"})
_VERSION_MARKER_RE = re.compile(r"(?i)\b(?:v|ver|version|build|release|rev|revision|firmware|fw)\s*[:=#]?\s*$")
_VERSION_CONTEXT_CHARS = 16

# (kind, pattern). Order matters: specific key shapes first, then generic name=value, then PII.
REDACTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S)),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}")),
    ("openai_key", re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}")),
    ("google_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer_token", re.compile(r"(?i)\bbearer\s+(?!\[REDACTED)[A-Za-z0-9._~+/\-]{8,}=*")),
    ("credentials", re.compile(r"(?i)(?P<name>\bauthorization)(?P<sep>\s*[:=]\s*(?:basic|token)?\s*)"
                               r"(?P<value>(?!\[REDACTED|bearer\s)[^\s\"',;]{6,})")),
    ("secret", re.compile(rf"(?i)(?P<name>(?<![a-z0-9])(?:{_SECRET_NAMES}))(?P<sep>[\"']?\s*[:=]\s*[\"']?|\s+is\s+)"
                          r"(?P<value>(?!\[REDACTED)[^\s\"',;]{4,})")),
    ("email", re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}\b")),
    ("date_of_birth", re.compile(rf"(?i)(?P<name>(?<![\w.])(?:{_BIRTH_MARKER}))"
                                 r"(?P<sep>(?:\s*[:=\-\u2013\u2014)\]]+\s*|\s+)(?:(?:is|was|on)\s+)?)"
                                 rf"(?P<value>{_DATE})(?!\w)")),
    ("ipv6", re.compile(rf"(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{1,7}}(?:{_IPV4}|[0-9A-Fa-f]{{1,4}}|:)"
                        r"(?:%[0-9A-Za-z_.\-]+)?(?!\w|:[\w:]|\.\d)")),
    ("ipv4", re.compile(rf"(?<![\w.]){_IPV4}(?!\w|\.\w|[\-+][A-Za-z])")),
    ("ssn", re.compile(r"(?<![\d\-])\d{3}-\d{2}-\d{4}(?![\d\-])")),
    ("card", re.compile(r"(?<![\d.])(?:\d[ \-]?){12,18}\d(?![\d.])")),
    ("phone", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?!\w)")),
    ("phone", re.compile(r"(?<![\w.\-])(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w\-])")),
    ("phone", re.compile(r"(?<![\w.\-])0\d{1,4}[ \-]\d{3,4}[ \-]?\d{3,4}(?![\w\-])")),
)


def _replacement(kind: str, match: re.Match[str]) -> str:
    """What a match becomes; the match itself when it is not sensitive after all."""
    if kind == "phone":
        digits = sum(ch.isdigit() for ch in match.group(0))
        return _tag(kind) if 8 <= digits <= 15 else match.group(0)
    if kind in _IP_KINDS:
        return _tag(kind) if _is_ip_address(match) else match.group(0)
    if kind in _NAMED_VALUE_KINDS:
        if match.group("sep").strip().lower() == "is" and not _VALUE_HAS_SYMBOL_RE.search(match.group("value")):
            return match.group(0)  # "the password is wrong" holds no secret
        return match.group("name") + match.group("sep") + _tag(kind)
    if kind == "bearer_token":
        return "Bearer " + _tag(kind)
    return _tag(kind)


def _is_ip_address(match: re.Match[str]) -> bool:
    """Whether an IP-shaped match is an address: valid, not a version number, not a bare ``::``."""
    candidate = match.group(0)
    if candidate == "::":  # the unspecified address names nobody; "::" is common in code
        return False
    before = match.string[max(0, match.start() - _VERSION_CONTEXT_CHARS):match.start()]
    if _VERSION_MARKER_RE.search(before):
        return False
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def redact(text: str) -> str:
    """Replace secrets and PII in ``text`` with ``[REDACTED:kind]``.

    Args:
        text: Any text; non-strings are converted with ``str()``.

    Returns:
        The text with API keys, tokens, passwords, emails, phone numbers, card-like digit runs,
        US SSNs, IPv4/IPv6 addresses and dates of birth (a date after a marker such as ``DOB:``
        or ``born on``; the marker is kept) replaced. Applying it twice changes nothing more.
    """
    text = text if isinstance(text, str) else str(text)
    for kind, pattern in REDACTION_PATTERNS:
        text = pattern.sub(lambda m, k=kind: _replacement(k, m), text)
    return text


def find_sensitive(text: str) -> list[tuple[str, str]]:
    """List the secrets and PII :func:`redact` would replace, as ``(kind, matched text)``.

    Args:
        text: Any text.

    Returns:
        The matches in pattern order (a value can appear under two kinds, e.g. a key given as
        ``api_key=sk-...``).
    """
    text = text if isinstance(text, str) else str(text)
    return [(kind, m.group(0)) for kind, pattern in REDACTION_PATTERNS for m in pattern.finditer(text)
            if _replacement(kind, m) != m.group(0)]


# -- logging --------------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else in ``record.__dict__`` came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_REDACTED_FIELDS = frozenset({"message", "stack_info"})  # standard fields that can hold data


def _redact_value(value: Any, depth: int = 0) -> Any:
    """Redact strings, also inside (copies of) dicts, lists and tuples a few levels deep."""
    if isinstance(value, str):
        return redact(value)
    if depth >= _MAX_EXTRA_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message, arguments, extras and traceback.

    The message is formatted with its arguments first, then redacted, and the arguments are
    cleared, so a secret passed as ``log.info("key %s", key)`` never reaches a handler. Install
    it on handlers (a logger's own filters do not see records propagated from child loggers);
    installing it twice is harmless because redaction is idempotent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it.

        Args:
            record: The log record.

        Returns:
            True (the record is never dropped).
        """
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # bad format string: keep what we have, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), ()
        for name, value in list(vars(record).items()):
            if name in _RECORD_FIELDS and name not in _REDACTED_FIELDS:
                continue
            setattr(record, name, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` that lacks one.

    Args:
        logger: The logger whose handlers get the filter (default: the root logger).
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# -- sanitising signals ---------------------------------------------------------------------------

_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLES = "\u00ad\u034f\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
_RLO_RUN = re.compile("\u202e([^\u202c\u2069\n]*)[\u202c\u2069]?")
_BIDI_RE = re.compile(f"[{_BIDI_CONTROLS}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLES}]")
# Unicode tag characters and supplementary variation selectors can smuggle hidden ASCII text.
_HIDDEN_RE = re.compile("[\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_ODD_SPACE_RE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_NEWLINES_RE = re.compile(r"\r\n?|[\u2028\u2029\x85]")

# Cyrillic and Greek letters that look like Latin ones; folded only inside words that also hold
# Latin letters ("cаncеl" with Cyrillic а and е), so genuine Cyrillic or Greek text is untouched.
HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαορνικτΑΒΕΖΗΙΚΜΝΟΡΤΧΥ",
    "aeopcyxijsdhlABEKMHOPCTXIJSaopvikt" "ABEZHIKMNOPTXY",
)
_HOMOGLYPH_CHARS = frozenset("аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαορνικτΑΒΕΖΗΙΚΜΝΟΡΤΧΥ")
_WORD_RE = re.compile(r"\w+")
_LATIN_RE = re.compile(r"[A-Za-z]")


# (flag, pattern, replacement), applied in this order by sanitize_signal.
_CLEANING_STEPS: tuple[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    ("invalid_unicode_removed", _SURROGATE_RE, ""),
    ("bidi_override_reordered", _RLO_RUN, lambda m: m.group(1)[::-1]),
    ("bidi_controls_removed", _BIDI_RE, ""),
    ("invisible_chars_removed", _INVISIBLE_RE, ""),
    ("hidden_tag_chars_removed", _HIDDEN_RE, ""),
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
    if _LATIN_RE.search(word) and not _HOMOGLYPH_CHARS.isdisjoint(word):
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
    return text[:head] + TRUNCATION_MARKER + text[len(text) - (budget - head):]


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
        raw = raw[: 2 * limit] + "\n" + raw[-2 * limit:]
    cleaned = _NEWLINES_RE.sub("\n", raw)
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


# -- injection flags ------------------------------------------------------------------------------

_LABEL_WORDS = r"(?:feature_request|bug_report|churn_risk|expansion_signal|general_feedback)"
_ROLE = r"(?:system|admin|administrator|developer|operator|assistant|user|human|ai|model|bot)"

# (flag, pattern) matched against a normalised view: invisibles removed, NFKC, homoglyphs
# folded, lower case, runs of spaces collapsed. Newlines are kept for line-start patterns.
INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ignore_instructions", re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\b[\w ,']{0,30}?\b"
        r"(?:instructions?|prompts?|rules|directions|guidelines|categor(?:y|ies)(?: list)?|context|labels)\b")),
    ("fake_system_message", re.compile(
        r"(?:^|\n)[ \t>#*\[(-]*(?:system|admin|administrator|developer|operator)\b"
        r"[ \t]*(?:message|prompt|note)?[ \t]*:"
        rf"|\bend (?:of )?system\b|[\[(][ \t]*{_ROLE}[ \t]+(?:note|message|instruction|override)s?\b")),
    ("fake_chat_turn", re.compile(r"(?:^|\n)[ \t>#*`-]*(?:assistant|user|human|ai|model|bot)[ \t]*:")),
    ("chat_template_tokens", re.compile(
        r"<\|[a-z_]{2,30}\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|</?s>|<\|?(?:endoftext|eot_id)\|?>")),
    ("closing_signal_tag", re.compile(r"<\s*/\s*signal\b|<\s*signal\b")),
    ("markup_injection", re.compile(
        r"<\s*/?\s*(?:instructions?|system|prompt|categories|category|output_format|task|admin|rules|"
        r"examples?|answer|context)\b[^>]{0,80}>")),
    ("answer_format_injection", re.compile(
        rf"\b{_LABEL_WORDS}\s*\|\s*[0-9.]+\s*%?\s*\||\bcategory\s*\|\s*confidence\b|\"category\"\s*:")),
    ("label_mention", re.compile(rf"\b{_LABEL_WORDS}\b")),
    ("output_directive", re.compile(
        r"\b(?:respond|reply|answer)\s+(?:only\s+)?(?:with|as)\b|\brespond\s+(?:only\s+)?" + _LABEL_WORDS +
        r"|\b(?:label|classify|categori[sz]e|mark|tag)\s+(?:this|it|these|them|the\s+(?:message|signal|ticket))\b"
        r"(?:\s+as)?|\b(?:must|should|shall)\s+(?:always\s+)?be\s+(?:labell?ed|classified|categori[sz]ed|tagged)\b"
        r"|\balways\s+(?:return|output|respond|answer|label)s?\b|\bfor\s+every\s+(?:signal|message)\b")),
    ("role_play", re.compile(
        r"\byou\s+are\s+(?:now|no\s+longer)\b|\byou\s+are\s+an?\s+(?:classifier|assistant|ai|model|bot|"
        r"language\s+model|system)\b|\bact\s+as\b|\bpretend\s+(?:to\s+be|you\s+are)\b|\bfrom\s+now\s+on\b"
        r"|\b(?:maintenance|developer|debug|god|admin|jailbreak|dan)\s+mode\b")),
    ("policy_override", re.compile(
        r"\bnew\s+(?:rule|policy|instructions?|directive|system\s+prompt)s?\b"
        r"|\b(?:rule|instruction|message|order)s?\s+from\s+(?:your|the)\s+(?:admin|administrator|developer|operator|"
        r"system)")),
    ("exfiltration", re.compile(
        r"\b(?:print|reveal|show|repeat|output|display|leak|dump|share)\s+(?:me\s+)?(?:your|the)\s+"
        r"(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+)?(?:system\s+prompt|prompt|instructions|"
        r"api\s+keys?|secrets?|environment)\b|\bapi\s+keys?\s+in\s+your\s+environment\b")),
)
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")

# Misspelled injections ("ignroe all prevoius instrucitons"): key words matched with this many
# edits (optimal string alignment: swapping two neighbours is one edit). Words under five letters
# only match exactly, because one edit turns them into other common words; "override" gets one
# edit because two reach "overtime" and "overwrite".
FUZZY_KEY_WORDS: dict[str, int] = {
    "ignore": 1, "disregard": 2, "forget": 1, "override": 1, "bypass": 1,
    "instructions": 2, "instruction": 2, "prompts": 1, "prompt": 1, "guidelines": 2, "above": 1,
    "system": 1, "reveal": 1, "print": 1, "repeat": 1, "display": 1, "output": 1, "new": 0,
}
_KEY_LETTERS = {key: frozenset(key) for key in FUZZY_KEY_WORDS}
# Real words within reach of a key word that mean something else ("ignored" is a report, not an order).
NOT_MISSPELLINGS = frozenset({
    "ignored", "ignores", "forgot", "forge", "forged", "forgets", "disregards", "disregarded", "overrides",
    "overrode", "instructor", "instructors", "instructing", "construction", "constructions", "abode", "point",
    "paint", "sprint", "prints", "printer", "printed", "repeats", "displays", "outputs", "prompted", "systems",
})
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
    ("exfiltration", (frozenset({"reveal", "print", "repeat", "display", "output"}), frozenset({"system"}),
                      frozenset({"prompt", "prompts", "instructions"})), (2, 0), None),
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
    rf"(?:\1{_HEX_PAIR}){{{_MIN_HEX_PAIRS - 2},}}(?![0-9A-Fa-f])")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEX_NOISE_RE = re.compile(r"\\x|[ :]")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
FLAG_ORDER = tuple(name for name, _ in INJECTION_PATTERNS) + (ENCODED_FLAG,)


def _unmasked(text: str) -> str:
    """Text with invisibles removed, NFKC, homoglyphs folded and spaces collapsed (case kept)."""
    view = _INVISIBLE_RE.sub("", _BIDI_RE.sub("", _HIDDEN_RE.sub("", text)))
    view = unicodedata.normalize("NFKC", _SURROGATE_RE.sub("", view)).translate(HOMOGLYPHS)
    return _SPACES_RE.sub(" ", _NEWLINES_RE.sub("\n", view))


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


def _phrase_at(keys: list[str | None], tokens: list[str], start: int,
               slots: tuple[frozenset[str], ...], gaps: tuple[int, ...], after: frozenset[str] | None) -> bool:
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
            if flag not in found and any(key in slots[0] and _phrase_at(keys, tokens, i, slots, gaps, after)
                                         for i, key in enumerate(keys)):
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
