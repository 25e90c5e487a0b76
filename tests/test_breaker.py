"""Circuit breaker behaviour: the same tests for the memory and the Redis implementation."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import threading
import time

import pytest
import redis

from llm_orchestrator.exceptions import CircuitOpenError
from llm_orchestrator.resilience.breaker_types import BreakerSettings
from llm_orchestrator.resilience.breakers import Breakers
from tests.conftest import STATES
from tests.conftest import state_of as _state
from tests.redis_server import RedisServer

FAST = BreakerSettings(
    window_seconds=5,
    min_calls=10,
    failure_rate=0.5,
    open_seconds=0.4,
    max_open_seconds=1.0,
    half_open_probes=3,
    probe_lease_seconds=0.5,
    jitter=0.0,
)
P, M = "openai", "gpt-6-luna"


@pytest.fixture(params=STATES)
def breakers(request):
    """The same tests on memory, a single Redis and a Redis Cluster."""
    return Breakers(FAST, redis=_state(request))


@pytest.fixture(params=STATES)
def racing_breakers(request):
    """As ``breakers``, with probe leases that outlive a race: FAST's lease is 0.5 s, and on a loaded
    machine 50 threads can take longer than that to finish, when an expired lease rightly frees its
    slot for a 4th probe (seen once in a full run)."""
    return Breakers(dataclasses.replace(FAST, probe_lease_seconds=30.0), redis=_state(request))


def feed(b: Breakers, ok: int, failed: int) -> int:
    """Report outcomes until done or the breaker opens; returns how many were reported."""
    for n, outcome in enumerate([True] * ok + [False] * failed):
        try:
            permit = b.before_call(P, M)
        except CircuitOpenError:
            return n
        b.record(permit, success=outcome)
    return ok + failed


def is_open(b: Breakers) -> bool:
    try:
        b.record(b.before_call(P, M), success=True)
        return False
    except CircuitOpenError:
        return True


def open_breaker(b: Breakers) -> None:
    feed(b, 0, FAST.min_calls)
    assert b.state(P, M)["state"] == "open"


def test_opens_on_failure_rate_not_count(breakers):
    feed(breakers, 90, 9)  # 9 failures, 9 % of 99 calls
    assert breakers.state(P, M)["state"] == "closed"
    reported = feed(breakers, 0, 100)
    assert breakers.state(P, M)["state"] == "open"
    assert reported == 81  # opens exactly when failures reach 50 %: 90 failures of 180 calls


def test_stays_closed_below_min_calls_even_at_full_failure(breakers):
    feed(breakers, 0, FAST.min_calls - 1)
    assert breakers.state(P, M)["state"] == "closed"


def test_open_fails_fast_with_retry_after(breakers):
    open_breaker(breakers)
    with pytest.raises(CircuitOpenError) as info:
        breakers.before_call(P, M)
    assert 0 < info.value.retry_after <= FAST.open_seconds + 0.05
    assert info.value.provider == P and info.value.model == M


def test_breakers_are_per_model(breakers):
    open_breaker(breakers)
    breakers.record(breakers.before_call(P, "gpt-6-sol"), success=True)  # another model still flows


def test_half_open_admits_at_most_k_probes_from_racing_threads(racing_breakers):
    breakers = racing_breakers
    open_breaker(breakers)
    time.sleep(FAST.open_seconds + 0.05)
    granted, barrier = [], threading.Barrier(50)

    def race() -> None:
        barrier.wait()
        try:
            granted.append(breakers.before_call(P, M))
        except CircuitOpenError:
            pass

    threads = [threading.Thread(target=race) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == FAST.half_open_probes
    for permit in granted:
        breakers.record(permit, success=True)
    assert breakers.state(P, M)["state"] == "closed"


def test_crashed_probe_lease_expires(breakers):
    open_breaker(breakers)
    time.sleep(FAST.open_seconds + 0.05)
    probes = [breakers.before_call(P, M) for _ in range(FAST.half_open_probes)]  # never reported: "crashed"
    with pytest.raises(CircuitOpenError):
        breakers.before_call(P, M)
    time.sleep(FAST.probe_lease_seconds + 0.05)
    breakers.before_call(P, M)  # a slot is free again
    assert len(probes) == FAST.half_open_probes


def test_probe_failure_reopens_with_doubled_open_time(breakers):
    open_breaker(breakers)
    time.sleep(FAST.open_seconds + 0.05)
    breakers.record(breakers.before_call(P, M), success=False)
    assert breakers.state(P, M)["state"] == "open"
    with pytest.raises(CircuitOpenError) as info:
        breakers.before_call(P, M)
    assert FAST.open_seconds < info.value.retry_after <= 2 * FAST.open_seconds + 0.05
    time.sleep(2 * FAST.open_seconds + 0.05)
    breakers.record(breakers.before_call(P, M), success=False)  # third open: capped at max
    with pytest.raises(CircuitOpenError) as info:
        breakers.before_call(P, M)
    assert info.value.retry_after <= FAST.max_open_seconds + 0.05


def test_stale_generation_report_is_ignored(breakers):
    old = breakers.before_call(P, M)  # granted while closed (generation 0)
    open_breaker(breakers)
    time.sleep(FAST.open_seconds + 0.05)
    probes = [breakers.before_call(P, M) for _ in range(FAST.half_open_probes)]
    breakers.record(old, success=False)  # a late failure from the closed era must not re-open
    assert breakers.state(P, M)["state"] == "half_open"
    for p in probes:
        breakers.record(p, success=True)
    assert breakers.state(P, M)["state"] == "closed"


def test_release_frees_a_probe_without_counting(breakers):
    open_breaker(breakers)
    time.sleep(FAST.open_seconds + 0.05)
    probes = [breakers.before_call(P, M) for _ in range(FAST.half_open_probes)]
    breakers.release(probes[0])  # e.g. the probe got a 400: says nothing about health
    breakers.before_call(P, M)
    assert breakers.state(P, M)["state"] == "half_open"


def test_disabled_breaker_never_opens():
    from llm_orchestrator.config.manager import BreakerConfig

    b = Breakers(BreakerConfig(enabled=False, min_calls=1))
    feed(b, 0, 50)
    b.before_call(P, M)


def test_redis_keys_all_have_ttls(redis_client):
    b = Breakers(FAST, redis=redis_client)
    open_breaker(b)
    time.sleep(FAST.open_seconds + 0.05)
    b.before_call(P, M)
    keys = redis_client.keys("*breaker*")
    assert keys
    for key in keys:
        assert redis_client.ttl(key) > 0, key
    assert all(b"{openai/gpt-6-luna}" in k for k in keys)  # one hash slot per breaker


def test_state_is_shared_between_processes(redis_url, redis_client):
    b = Breakers(FAST, redis=redis_client)
    open_breaker(b)
    other = Breakers(FAST, redis=redis.Redis.from_url(redis_url))
    with pytest.raises(CircuitOpenError):
        other.before_call(P, M)


def _probe_worker(url: str, barrier, out) -> None:
    b = Breakers(FAST, redis=redis.Redis.from_url(url))
    barrier.wait()
    try:
        b.before_call(P, M)
        out.put(1)
    except CircuitOpenError:
        out.put(0)


def test_half_open_probes_limited_across_processes(redis_url, redis_client):
    b = Breakers(FAST, redis=redis_client)
    open_breaker(b)
    time.sleep(FAST.open_seconds + 0.05)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_probe_worker, args=(redis_url, barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(out.get(timeout=5) for _ in procs) == FAST.half_open_probes


def test_redis_down_degrades_to_memory_and_logs_once(caplog):
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=0.2, socket_timeout=0.2)
    b = Breakers(FAST, redis=client)
    b.record(b.before_call(P, M), success=True)
    server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="llm_orchestrator.resilience.breakers"):
            for _ in range(5):
                b.record(b.before_call(P, M), success=True)  # requests keep flowing
            open_breaker(b)  # the memory breaker still protects this process
        assert sum("Redis unreachable" in r.message for r in caplog.records) == 1
        server.start()
        b2 = Breakers(FAST, redis=client)
        assert b2.before_call(P, M).backend == "redis"  # back on Redis once it returns
    finally:
        server.cleanup()


# -- a timeout our own deadline forced -------------------------------------------------------------


def _timing_out(sim: object, read: float) -> object:
    from llm_orchestrator import ConfigManager, LLMOrchestrator
    from tests.conftest import make_config

    cfg = make_config(
        sim,
        P,
        model=M,
        fallbacks=[],
        retry={"max_attempts": 1, "deadline": 30},
        breaker={"min_calls": 1, "failure_rate": 0.5, "open_seconds": 30, "window_seconds": 60},
    )
    cfg["providers"][P]["timeout"] = {"connect": 2, "read": read}
    return LLMOrchestrator(ConfigManager.from_dict(cfg).config)


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_timeout_cut_short_by_the_request_deadline_is_not_a_breaker_failure(sim, path):
    """A call given less than the read timeout (the request's deadline was nearly spent) says
    nothing about the provider when it times out; a call given the whole read timeout does."""
    import asyncio

    from llm_orchestrator.exceptions import LLMOrchestratorError

    def send(o: object, **kwargs: object) -> object:
        if path == "sync":
            return o.send_request("hello", max_tokens=16, **kwargs)  # type: ignore[attr-defined]
        return asyncio.run(o.asend_request("hello", max_tokens=16, **kwargs))  # type: ignore[attr-defined]

    sim.set_latency(P, 1500)
    cut = _timing_out(sim, read=5)
    with pytest.raises(LLMOrchestratorError):
        send(cut, deadline=0.3)
    assert cut._parts.breakers.state(P, M)["state"] == "closed"  # type: ignore[attr-defined]
    whole = _timing_out(sim, read=0.3)
    with pytest.raises(LLMOrchestratorError):
        send(whole)
    assert whole._parts.breakers.state(P, M)["state"] == "open"  # type: ignore[attr-defined]
