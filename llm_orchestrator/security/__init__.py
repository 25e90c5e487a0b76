"""Secrets, PII and hostile input: redaction, a logging filter, signal sanitising, injection flags.

* :mod:`.redaction` — :func:`redact` replaces API keys, tokens, passwords, emails, phone numbers,
  card numbers, SSNs, IPv4/IPv6 addresses and dates of birth with ``[REDACTED:kind]``;
  :class:`RedactingFilter` applies it to every log record in one place.
* :mod:`.sanitising` — :func:`sanitize_signal` cleans a customer signal before it reaches a model
  (no control or invisible characters, no bidi overrides, NFC, bounded length keeping head and
  tail). It never drops the item.
* :mod:`.injection` — :func:`injection_flags` names prompt-injection patterns found in a text,
  also when the instruction is misspelled or smuggled in as base64 or hex. Flags inform the
  pipeline; they never block a signal.
* :mod:`.unicode_classes` — the invisible, bidi and look-alike characters the sanitiser removes
  and the injection detector looks through (internal).

Import from this package (``from llm_orchestrator.security import redact``); the names below are
the public surface.
"""

from __future__ import annotations

from llm_orchestrator.security.injection import (
    ENCODED_FLAG,
    FLAG_ORDER,
    FUZZY_KEY_WORDS,
    INJECTION_PATTERNS,
    MAX_DECODED_BYTES,
    MAX_DECODED_RUNS,
    MIN_ENCODED_RUN_CHARS,
    MIN_PRINTABLE_SHARE,
    NOT_MISSPELLINGS,
    injection_flags,
)
from llm_orchestrator.security.redaction import (
    REDACTION_PATTERNS,
    RedactingFilter,
    find_sensitive,
    install_redaction,
    redact,
)
from llm_orchestrator.security.sanitising import (
    DEFAULT_MAX_SIGNAL_CHARS,
    TRUNCATE_HEAD_SHARE,
    TRUNCATION_MARKER,
    SanitizedSignal,
    fold_homoglyphs,
    sanitize_signal,
)
from llm_orchestrator.security.unicode_classes import HOMOGLYPHS

__all__ = [
    "DEFAULT_MAX_SIGNAL_CHARS",
    "ENCODED_FLAG",
    "FLAG_ORDER",
    "FUZZY_KEY_WORDS",
    "HOMOGLYPHS",
    "INJECTION_PATTERNS",
    "MAX_DECODED_BYTES",
    "MAX_DECODED_RUNS",
    "MIN_ENCODED_RUN_CHARS",
    "MIN_PRINTABLE_SHARE",
    "NOT_MISSPELLINGS",
    "REDACTION_PATTERNS",
    "TRUNCATE_HEAD_SHARE",
    "TRUNCATION_MARKER",
    "RedactingFilter",
    "SanitizedSignal",
    "find_sensitive",
    "fold_homoglyphs",
    "injection_flags",
    "install_redaction",
    "redact",
    "sanitize_signal",
]
