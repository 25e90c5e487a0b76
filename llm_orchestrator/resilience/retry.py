"""The one retry layer: full-jitter exponential backoff under a per-request deadline.

SDK retries are off, so this is the only place a failed call is repeated. A wait longer than
``max_inline_wait`` is not slept here: it is raised as :class:`RetryLaterError` carrying the
delay, and the Celery worker turns it into a countdown instead of holding a worker slot.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from llm_orchestrator.exceptions import ProviderError, RetryLaterError, on_error

log = logging.getLogger(__name__)
T = TypeVar("T")


class Deadline:
    """A time budget for one request (monotonic clock)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.expires_at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between tries of one model."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_inline_wait: float = 10.0

    @classmethod
    def from_config(cls, cfg: Any) -> RetryPolicy:
        return cls(
            max_attempts=cfg.max_attempts,
            base_delay=cfg.base_delay,
            max_delay=cfg.max_delay,
            max_inline_wait=cfg.max_inline_wait,
        )

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**retry)]."""
        cap = min(self.max_delay, self.base_delay * (2**retry))
        return (rng or random).uniform(0, cap)

    def wait_for(self, err: Exception, retry: int) -> float:
        """The wait before the next try: at least what the provider asked for."""
        wanted = getattr(err, "retry_after", None) or 0.0
        return max(wanted, self.backoff(retry))


def _next_wait(policy: RetryPolicy, err: Exception, tries: int, deadline: Deadline, provider: str, model: str) -> float:
    """Decide what to do after a failed try: return the wait, or raise (the error or RetryLater)."""
    if not on_error(err).retry_same_model or tries >= policy.max_attempts:
        raise err
    wait = policy.wait_for(err, tries - 1)
    if wait > policy.max_inline_wait:
        raise RetryLaterError(provider, model, wait, type(err).__name__) from err
    if wait >= deadline.remaining():
        raise err  # waiting would blow the caller's time budget
    log.info(
        "retrying %s/%s in %.2fs after %s (try %d of %d)",
        provider,
        model,
        wait,
        type(err).__name__,
        tries,
        policy.max_attempts,
    )
    return wait


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    provider: str,
    model: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, a non-retryable error occurs, or tries/deadline run out.

    Raises:
        The last error; or RetryLaterError when the next wait is longer than ``max_inline_wait``.
    """
    tries = 0
    while True:
        tries += 1
        try:
            return fn()
        except ProviderError as err:
            sleep(_next_wait(policy, err, tries, deadline, provider, model))


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]], *, policy: RetryPolicy, deadline: Deadline, provider: str, model: str
) -> T:
    """Async twin of :func:`call_with_retries`."""
    tries = 0
    while True:
        tries += 1
        try:
            return await fn()
        except ProviderError as err:
            await asyncio.sleep(_next_wait(policy, err, tries, deadline, provider, model))
