"""Redaction of secrets and PII, applied to anything that leaves the process as text.

``redact`` replaces API keys, bearer tokens, emails, phone numbers, card numbers and SSNs with
``[REDACTED:kind]``. ``RedactingFilter`` applies it to every log record in one place, so call
sites never have to remember.
"""

from __future__ import annotations

import logging
import re

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("key", re.compile(r"\b(?:sk|rk|pk)-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{8,}")),
    ("key", re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}")),
    ("key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-~+/]{8,}=*")),
    ("key", re.compile(r"(?i)\b(api[_-]?key|secret|token|password)\s*[:=]\s*[\"']?[^\s\"',;]{6,}")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
    ("card", re.compile(r"\b(?:\d[ -]?){13,19}\b")),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("phone", re.compile(r"(?<![\w])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?)?\d{3,4}[\s.\-]\d{3,4}(?:[\s.\-]\d{2,4})?(?![\w])")),
)


def redact(text: str) -> str:
    """Replace secrets and PII in ``text`` with ``[REDACTED:kind]``."""
    for kind, pattern in PATTERNS:
        text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message and string extras of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in ("msg", "name", "levelname", "pathname", "filename",
                                                        "module", "funcName", "processName", "threadName"):
                setattr(record, name, redact(value))
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
