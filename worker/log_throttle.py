"""Rate-limit repeated connection-error log lines while Redis is away.

During a 30 s Redis outage one interactive worker wrote 8,305 log lines, almost all of them
connection-refused tracebacks: Celery's result backend logs each of its ten retries of a failed
write with a 140-line traceback (``celery.backends.base`` "Failed operation _store_result.
Retrying N more times.", once per job cancelled on the connection loss), and the consumer, the
acks, the job rejects and our own tasks (``tasks.llm`` "Redis unreachable", "could not publish
its retry") each add more.

:class:`ConnectionErrorThrottle` sits on every worker log handler, next to the redaction filter.
A record at WARNING or above that reports a connection error (its exception is one, or wraps
one; or, without an exception, its text says Redis or the broker is unreachable) is keyed by
(logger, level, message with numbers and ids masked):

- the first one of a key is logged, and then at most one per ``LLM_ORCH_LOG_REPEAT_SECONDS``
  (default :data:`REPEAT_WINDOW_SECONDS`); the others are counted and dropped, and the next one
  logged says ``(… repeated K times in the last N s)``;
- its traceback is replaced by the exception's one-line summary (a refused connection's
  traceback is always the same walk through redis-py's connect); at DEBUG level tracebacks
  are kept.

When Celery's consumer logs ``Connected to redis://…`` again, the outage is over: that line
says how many lines were held back, and the counts start afresh, so the first error of the next
outage is logged even if it comes within the window.

Everything else passes untouched: INFO and DEBUG records, and every record whose exception is
not a connection error (a bug's traceback, ``Unrecoverable error: AttributeError``) is never
throttled or shortened. The state is per process; each pool child throttles its own lines.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REPEAT_WINDOW_SECONDS = 30.0  # like the library's degraded-mode lines: one per key per 30 s
WINDOW_ENV = "LLM_ORCH_LOG_REPEAT_SECONDS"  # shrunk by tests
MAX_KEYS = 1000  # distinct keys remembered; beyond that, keys idle for a whole window are forgotten
# Said by records without an exception: our tasks and library ("Redis unreachable"), Celery's
# consumer ("Connection to broker lost", "Cannot connect to redis://…", "… after a connection loss").
CONNECTION_TEXT = re.compile(
    r"Redis unreachable|Connection to broker lost|Cannot connect to|after a connection loss"
    r"|Connection refused|Error \d+ connecting to",
    re.IGNORECASE,
)
# Celery's consumer once the broker answers again: the outage is over, its repeats are summed up.
RECOVERY_PREFIX = "Connected to "
RECOVERY_TEXT = re.compile(r"^Connected to \w+://")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_KEY_CHARS = 200
_DECISION = "_llmorch_throttle_keep"  # set on a record once decided, so every handler agrees


def connection_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis or the broker cannot be reached"."""
    import kombu.exceptions
    import redis

    return (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        ConnectionError,
        kombu.exceptions.OperationalError,
    )


def wrapper_types() -> tuple[type[BaseException], ...]:
    """Exceptions Celery raises around a connection error (result store gave up, retry not sent)."""
    from celery.exceptions import BackendStoreError, Reject

    return (BackendStoreError, Reject)


@dataclass
class _Seen:
    passed_at: float  # monotonic time the last record of this key was logged
    suppressed: int = 0  # records of this key dropped since then


class ConnectionErrorThrottle(logging.Filter):
    """Lets the first connection-error record of a key through, then one per ``window`` seconds."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, int, str], _Seen] = {}
        self._lock = threading.Lock()
        self._connection_errors = connection_error_types()
        self._wrappers = wrapper_types()
        os.register_at_fork(after_in_child=self._after_fork)

    def filter(self, record: logging.LogRecord) -> bool:
        """Decide once per record (a record can reach several handlers); shorten it if kept.

        Args:
            record: The log record.

        Returns:
            False to drop a repeat within the window, True otherwise.
        """
        decided = record.__dict__.get(_DECISION)
        if decided is None:
            decided = self._decide(record)
            record.__dict__[_DECISION] = decided
        return decided

    def is_connection_error(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` reports Redis or the broker being unreachable."""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            if isinstance(exc, self._connection_errors):
                return True
            return isinstance(exc, self._wrappers) and any(isinstance(e, self._connection_errors) for e in _chain(exc))
        return bool(CONNECTION_TEXT.search(_message(record)))

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            if _may_be_recovery(record) and RECOVERY_TEXT.match(_message(record)):
                self._recovered(record)
            return True
        if not self.is_connection_error(record):
            return True
        key = (record.name, record.levelno, template_key(record))
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.passed_at < self.window:
                seen.suppressed += 1
                return False
            if len(self._seen) >= MAX_KEYS:
                self._forget_idle(now)
            self._seen[key] = _Seen(passed_at=now)
        _shorten(record, seen.suppressed if seen else 0, now - seen.passed_at if seen else 0.0)
        return True

    def _recovered(self, record: logging.LogRecord) -> None:
        with self._lock:
            held_back = sum(seen.suppressed for seen in self._seen.values())
            self._seen.clear()
        if held_back:
            record.msg, record.args = f"{_message(record)} ({held_back} repeated connection-error lines held back)", ()

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, s in self._seen.items() if now - s.passed_at >= self.window]:
            del self._seen[key]
        if len(self._seen) >= MAX_KEYS:
            self._seen.clear()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork would never be released


_throttle: ConnectionErrorThrottle | None = None


def install_throttle(logger: logging.Logger | None = None) -> ConnectionErrorThrottle:
    """Put the one :class:`ConnectionErrorThrottle` first on every handler of ``logger``.

    First, so a dropped repeat costs no redaction work. Installing twice is harmless.

    Args:
        logger: The logger whose handlers get the filter (default: the root logger).

    Returns:
        The filter (one per process, shared by all handlers).
    """
    global _throttle
    if _throttle is None:
        _throttle = ConnectionErrorThrottle(float(os.environ.get(WINDOW_ENV, REPEAT_WINDOW_SECONDS)))
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if _throttle not in handler.filters:
            handler.filters.insert(0, _throttle)
    return _throttle


def _may_be_recovery(record: logging.LogRecord) -> bool:
    """Whether ``record`` can read "Connected to …", judged from its template without formatting it
    (every INFO line of a worker passes here: "received", "succeeded in")."""
    if not isinstance(record.msg, str):
        return True
    literal = record.msg.split("%", 1)[0]  # what every formatting of the template starts with
    return RECOVERY_PREFIX.startswith(literal) or literal.startswith(RECOVERY_PREFIX)


def template_key(record: logging.LogRecord) -> str:
    """The record's message with ids and numbers masked: its template, even where the caller
    formatted the message itself (Celery's "Retrying 9 more times")."""
    text = _NUMBER.sub("N", _HEX.sub("<hex>", _UUID.sub("<id>", _message(record))))
    return text[:_KEY_CHARS]


def _shorten(record: logging.LogRecord, suppressed: int, elapsed: float) -> None:
    message = _message(record)
    if record.exc_info and not logging.getLogger().isEnabledFor(logging.DEBUG):
        exc = record.exc_info[1]
        if exc is not None:
            message = f"{message} [{type(exc).__name__}: {exc}]"
        record.exc_info, record.exc_text = None, None
    if suppressed:
        message = f"{message} (… repeated {suppressed} times in the last {elapsed:.0f} s)"
    record.msg, record.args = message, ()


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):  # a bad format string: keep what we have
        return f"{record.msg} {record.args!r}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
