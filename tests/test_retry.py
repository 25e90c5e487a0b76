"""The one retry layer: backoff, Retry-After, deadline, long waits handed to Celery."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from llm_orchestrator.exceptions import InvalidRequestError, RateLimitError, RetryLaterError, ServerError
from llm_orchestrator.resilience.retry import Deadline, RetryPolicy, acall_with_retries, call_with_retries

POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=8.0, max_inline_wait=10.0)


class Flaky:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(fn, policy=POLICY, seconds=60.0):
    slept: list[float] = []
    result = call_with_retries(
        fn, policy=policy, deadline=Deadline(seconds), provider="openai", model="m", sleep=slept.append
    )
    return result, slept


def test_full_jitter_bounds():
    rng = random.Random(7)
    for retry in range(8):
        cap = min(POLICY.max_delay, POLICY.base_delay * 2**retry)
        assert all(0 <= POLICY.backoff(retry, rng) <= cap for _ in range(200))


def test_retries_retryable_errors_then_succeeds():
    fn = Flaky([ServerError("openai", "m"), ServerError("openai", "m")])
    assert run(fn)[0] == "ok" and fn.calls == 3


def test_honours_retry_after_as_minimum_wait():
    fn = Flaky([RateLimitError("openai", "m", retry_after=4.0)])
    _, slept = run(fn)
    assert slept and slept[0] >= 4.0


def test_non_retryable_is_not_retried():
    fn = Flaky([InvalidRequestError("openai", "m")])
    with pytest.raises(InvalidRequestError):
        run(fn)
    assert fn.calls == 1


def test_gives_up_after_max_attempts_with_last_error():
    fn = Flaky([ServerError("openai", "m", status=s) for s in (500, 502, 503, 504)])
    with pytest.raises(ServerError) as info:
        run(fn)
    assert fn.calls == 3 and info.value.status == 503


def test_long_wait_becomes_retry_later_with_delay():
    fn = Flaky([RateLimitError("openai", "m", retry_after=45.0)])
    with pytest.raises(RetryLaterError) as info:
        run(fn)
    assert info.value.retry_after == 45.0 and info.value.cause_type == "RateLimitError"
    assert isinstance(info.value.__cause__, RateLimitError) and fn.calls == 1


def test_never_waits_past_the_deadline():
    fn = Flaky([RateLimitError("openai", "m", retry_after=3.0)])
    with pytest.raises(RateLimitError):
        run(fn, seconds=2.0)  # a 3 s wait would blow the 2 s budget: give up now
    assert fn.calls == 1


def test_total_time_stays_within_deadline_in_real_time():
    policy = RetryPolicy(max_attempts=50, base_delay=0.05, max_delay=0.2, max_inline_wait=1.0)
    started = time.monotonic()
    with pytest.raises(ServerError):
        call_with_retries(
            Flaky([ServerError("openai", "m")] * 100),
            policy=policy,
            deadline=Deadline(0.6),
            provider="openai",
            model="m",
        )
    assert time.monotonic() - started < 0.6 + 0.1


def test_async_twin():
    fn = Flaky([ServerError("openai", "m")])

    async def call() -> str:
        return fn()

    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
    assert asyncio.run(acall_with_retries(call, policy=policy, deadline=Deadline(5), provider="p", model="m")) == "ok"
