"""Secrets, PII and hostile input: redaction, a logging filter, signal sanitising, injection flags.

* :func:`redact` replaces API keys, tokens, passwords, emails, phone numbers, card numbers and
  SSNs with ``[REDACTED:kind]``. It is idempotent and linear in the length of its input.
* :class:`RedactingFilter` applies it to every log record in one place (message, arguments,
  string extras and tracebacks), so call sites never have to remember.
* :func:`sanitize_signal` cleans a customer signal before it reaches a model: no control or
  invisible characters, no bidi overrides, NFC, bounded length (head and tail are kept, because
  the point of a long message is often in its last sentence). It never drops the item.
* :func:`injection_flags` names prompt-injection patterns found in a text. Flags inform the
  pipeline (the keyword stage abstains, reviewers can look); they never block a signal.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
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
_NAMED_VALUE_KINDS = frozenset({"credentials", "secret"})
_VALUE_HAS_SYMBOL_RE = re.compile(r"[\d\W_]")

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
    if kind in _NAMED_VALUE_KINDS:
        if match.group("sep").strip().lower() == "is" and not _VALUE_HAS_SYMBOL_RE.search(match.group("value")):
            return match.group(0)  # "the password is wrong" holds no secret
        return match.group("name") + match.group("sep") + _tag(kind)
    if kind == "bearer_token":
        return "Bearer " + _tag(kind)
    return _tag(kind)


def redact(text: str) -> str:
    """Replace secrets and PII in ``text`` with ``[REDACTED:kind]``.

    Args:
        text: Any text; non-strings are converted with ``str()``.

    Returns:
        The text with API keys, tokens, passwords, emails, phone numbers, card-like digit runs
        and US SSNs replaced. Applying it twice changes nothing more.
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


def _detection_view(text: str) -> str:
    """Text as an injection detector should see it: obfuscation undone, lower case."""
    view = _INVISIBLE_RE.sub("", _BIDI_RE.sub("", _HIDDEN_RE.sub("", text)))
    view = unicodedata.normalize("NFKC", _SURROGATE_RE.sub("", view)).translate(HOMOGLYPHS)
    return _SPACES_RE.sub(" ", _NEWLINES_RE.sub("\n", view)).lower()


def injection_flags(text: str) -> list[str]:
    """Name the prompt-injection patterns present in ``text`` (flagged, never blocked).

    Detection runs on a normalised view, so zero-width characters, full-width letters and
    Cyrillic look-alikes do not hide a pattern.

    Args:
        text: A customer signal (raw or sanitised).

    Returns:
        The names of the patterns found, in a fixed order; empty when none.
    """
    view = _detection_view(text if isinstance(text, str) else str(text))
    return [name for name, pattern in INJECTION_PATTERNS if pattern.search(view)]
