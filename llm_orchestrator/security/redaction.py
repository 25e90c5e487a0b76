"""Secrets and PII: redaction, and a logging filter that applies it to every record.

* :func:`redact` replaces API keys, tokens, passwords, emails, phone numbers, card numbers, SSNs,
  IPv4/IPv6 addresses and dates of birth with ``[REDACTED:kind]``. It is idempotent and linear in
  the length of its input. Loopback and unspecified addresses (``127.0.0.1``, ``::1``,
  ``0.0.0.0``, ``::``) name nobody and are kept, so ``redis://127.0.0.1:6379`` stays readable.
* :class:`RedactingFilter` applies it to every log record in one place (message, arguments,
  string extras and tracebacks), so call sites never have to remember.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from functools import lru_cache, partial
from typing import Any

# -- redaction ------------------------------------------------------------------------------------


def _tag(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# the names of secrets to find, not a secret:
_SECRET_NAMES = (
    r"api[_\- ]?key|apikey|access[_\-]?key(?:[_\-]?id)?|secret(?:[_\-]?(?:access[_\-]?)?key)?|"  # noqa: S105
    r"client[_\-]?secret|(?:access|auth|refresh|session)[_\-]?token|token|password|passwd|pwd|passcode"
)
# Kinds whose pattern has name/sep/value groups: only the value is redacted.
_NAMED_VALUE_KINDS = frozenset({"credentials", "secret", "date_of_birth"})
_VALUE_HAS_SYMBOL_RE = re.compile(r"[\d\W_]")

# A date is only redacted after a birth-date marker ("DOB:", "date of birth", "born on", ...).
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = (
    rf"\d{{4}}[./\-]\d{{1,2}}[./\-]\d{{1,2}}|\d{{1,2}}[./\-]\d{{1,2}}[./\-](?:\d{{4}}|\d{{2}})"
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}|{_MONTH}\s+{_DAY},?\s+\d{{4}}|{_MONTH},?\s+\d{{4}}"
)
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
    (
        "credentials",
        re.compile(
            r"(?i)(?P<name>\bauthorization)(?P<sep>\s*[:=]\s*(?:basic|token)?\s*)"
            r"(?P<value>(?!\[REDACTED|bearer\s)[^\s\"',;]{6,})"
        ),
    ),
    (
        "secret",
        re.compile(
            rf"(?i)(?P<name>(?<![a-z0-9])(?:{_SECRET_NAMES}))(?P<sep>[\"']?\s*[:=]\s*[\"']?|\s+is\s+)"
            r"(?P<value>(?!\[REDACTED)[^\s\"',;]{4,})"
        ),
    ),
    ("email", re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}\b")),
    (
        "date_of_birth",
        re.compile(
            rf"(?i)(?P<name>(?<![\w.])(?:{_BIRTH_MARKER}))"
            r"(?P<sep>(?:\s*[:=\-\u2013\u2014)\]]+\s*|\s+)(?:(?:is|was|on)\s+)?)"
            rf"(?P<value>{_DATE})(?!\w)"
        ),
    ),
    (
        "ipv6",
        re.compile(
            rf"(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{1,7}}(?:{_IPV4}|[0-9A-Fa-f]{{1,4}}|:)"
            r"(?:%[0-9A-Za-z_.\-]+)?(?!\w|:[\w:]|\.\d)"
        ),
    ),
    ("ipv4", re.compile(rf"(?<![\w.]){_IPV4}(?!\w|\.\w|[\-+][A-Za-z])")),
    ("ssn", re.compile(r"(?<![\d\-])\d{3}-\d{2}-\d{4}(?![\d\-])")),
    # not inside an id (a UUID's digit groups sit between dashes and hex letters); a sentence's full stop may follow
    ("card", re.compile(r"(?<![\w.\-])(?:\d[ \-]?){12,18}\d(?!\w|\.\d|-\w)")),
    ("phone", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?!\w)")),
    ("phone", re.compile(r"(?<![\w.\-])(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w\-])")),
    ("phone", re.compile(r"(?<![\w.\-])0\d{1,4}[ \-]\d{3,4}[ \-]?\d{3,4}(?![\w\-])")),
)


# A pattern can only match a text that holds one of its literals: a substring test (fast, in C)
# decides whether the regex runs at all. Lower-case literals are tested against the lower-cased
# text. Patterns without an entry always run.
_NEEDS: dict[str, tuple[tuple[str, ...], bool]] = {  # kind → (literals, test the lower-cased text)
    "private_key": (("PRIVATE KEY",), False),
    "anthropic_key": (("sk-ant-",), False),
    "openai_key": (("sk-", "rk-", "pk-"), False),
    "google_key": (("AIza",), False),
    "aws_key": (("AKIA", "ASIA"), False),
    "github_token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False),
    "slack_token": (("xox",), False),
    "jwt": (("eyJ",), False),
    "bearer_token": (("bearer",), True),
    "credentials": (("authorization",), True),
    "secret": (("key", "secret", "token", "pass", "pwd"), True),
    "email": (("@",), False),
    "date_of_birth": (("dob", "d.o", "birth", "born"), True),
    "ipv6": ((":",), False),
}


# The least digits a match of these kinds holds (counted once per text, in C).
_MIN_DIGITS = {"date_of_birth": 4, "ipv4": 4, "ssn": 9, "card": 13, "phone": 8}
_NO_DIGITS = str.maketrans("", "", "0123456789")


def _may_match(kind: str, text: str, lower: str, digits: int) -> bool:
    if digits < _MIN_DIGITS.get(kind, 0):
        return False
    needs = _NEEDS.get(kind)
    if needs is None:
        return True
    literals, folded = needs
    haystack = lower if folded else text
    return any(literal in haystack for literal in literals)


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
    """Whether an IP-shaped match names a host: valid, not a version number, not loopback or unspecified.

    Loopback (``127.0.0.0/8``, ``::1``) and unspecified (``0.0.0.0``, ``::``) addresses, also
    IPv4-mapped (``::ffff:127.0.0.1``), name nobody; ``::`` is also common in code. Private
    ranges (``10.0.0.0/8``, ``192.168.0.0/16``, ...) are still addresses of someone's hosts.
    """
    before = match.string[max(0, match.start() - _VERSION_CONTEXT_CHARS) : match.start()]
    if _VERSION_MARKER_RE.search(before):
        return False
    try:
        address = ipaddress.ip_address(match.group(0))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not (address.is_loopback or address.is_unspecified)


def redact(text: str) -> str:
    """Replace secrets and PII in ``text`` with ``[REDACTED:kind]``.

    Args:
        text: Any text; non-strings are converted with ``str()``.

    Returns:
        The text with API keys, tokens, passwords, emails, phone numbers, card-like digit runs,
        US SSNs, IPv4/IPv6 addresses (loopback and unspecified ones are kept) and dates of birth
        (a date after a marker such as ``DOB:`` or ``born on``; the marker is kept) replaced.
        Applying it twice changes nothing more.
    """
    text = text if isinstance(text, str) else str(text)
    if len(text) <= CACHED_CHARS:
        return _redact_short(text)
    return _redact(text)


CACHED_CHARS = 256  # short strings (names, ids, labels) repeat in logs: their redaction is cached


@lru_cache(maxsize=8192)
def _redact_short(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    lower = text.lower()
    digits = len(text) - len(text.translate(_NO_DIGITS))
    for kind, pattern in REDACTION_PATTERNS:
        if _may_match(kind, text, lower, digits):
            text = pattern.sub(partial(_replacement, kind), text)
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
    return [
        (kind, m.group(0))
        for kind, pattern in REDACTION_PATTERNS
        for m in pattern.finditer(text)
        if _replacement(kind, m) != m.group(0)
    ]


# -- logging --------------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else in ``record.__dict__`` came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_REDACTED_FIELDS = frozenset({"message", "stack_info"})  # standard fields that can hold data
_MAX_EXTRA_DEPTH = 3  # how deep dicts, lists and tuples in extras are redacted
PRE_REDACTED = "redacted_at_source"  # a record attribute: its message was built from redacted fields


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

        A record marked ``extra={PRE_REDACTED: True}`` (the call log: built from redacted fields
        only, no arguments) is passed as it is.

        Args:
            record: The log record.

        Returns:
            True (the record is never dropped).
        """
        if getattr(record, PRE_REDACTED, False) and not record.args and (not record.exc_info or record.exc_text):
            return True
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
        setattr(record, PRE_REDACTED, True)  # a second handler's filter has nothing left to do
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
