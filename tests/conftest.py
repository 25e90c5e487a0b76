"""Shared fixtures: a real Redis and the wire-true provider simulator.

Nothing here mocks an SDK. Redis is the one at ``REDIS_URL`` when that answers, otherwise a
``redis-server`` this suite starts on a free port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.redis_server import RedisServer, reachable

# One BLAS/OpenMP thread per test process (scikit-learn in the prefilter tests): the suite runs on
# 4 processes over 2 cores already, and a thread pool per process would only fight over them.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("openai", "anthropic", "gemini")
# Model ids the simulator lists by default; tests use these names only.
MODELS = {
    "openai": ["gpt-6-luna", "gpt-6-sol", "gpt-5.6-luna"],
    "anthropic": ["claude-haiku-5-5", "claude-sonnet-5-5", "claude-haiku-4-5"],
    "gemini": ["gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-3.5-flash"],
}


TEST_DB = 15  # tests flush their database: never the one a shared REDIS_URL points at


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory) -> Iterator[None]:
    """The ledger spool (and anything else under the user's state dir) goes to a temp dir, here and
    in every worker the suite starts, never to the real ~/.local/state."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


def _test_db(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{TEST_DB}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A reachable Redis URL for the whole session.

    Database 15 of the Redis at REDIS_URL when that answers (tests flush it), else a
    redis-server this suite starts on a free port.
    """
    url = os.environ.get("REDIS_URL")
    parallel = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # pytest -n: every worker gets its own server
    if url and reachable(url) and os.environ.get("LLM_ORCH_TEST_OWN_REDIS") != "1" and not parallel:
        os.environ["REDIS_URL"] = _test_db(url)
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer().start()
    os.environ["REDIS_URL"] = server.url
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a clean database: flushed before each test that asks for it.

    A refreshed model list and breaker states are also dropped afterwards: a later test in this
    process that never flushes (a module's worker) would otherwise validate model ids against the
    list, or find a model's breaker still open.
    """
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        if keys := client.keys("llmorch:models:*") + client.keys("llmorch:breaker:*"):
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A real three-master Redis Cluster for the session (its seed node's URL)."""
    from tests.redis_cluster import RedisCluster

    cluster = RedisCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.cleanup()


@pytest.fixture
def cluster_client(redis_cluster_url: str) -> Iterator[Any]:
    """A RedisCluster client on a clean cluster (every primary flushed before the test)."""
    from llm_orchestrator.redis_client import build

    client = build(redis_cluster_url, cluster=True)
    client.flushall(target_nodes="primaries")
    try:
        yield client
    finally:
        client.close()


STATES = ("memory", "redis", "cluster")


def state_of(request: Any) -> Any:
    """The client for a fixture parametrised over :data:`STATES` (None for memory)."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_client" if request.param == "redis" else "cluster_client")


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:  # noqa: F821
    """One in-process simulator on a free port for the whole session."""
    from llm_orchestrator.simulator import Simulator

    with Simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator) -> Iterator[Simulator]:  # noqa: F821
    """The session simulator, reset to no faults, no limits, no latency, fresh stats."""
    simulator.reset()
    yield simulator
    simulator.reset()


def make_config(
    sim, provider: str = "openai", model: str | None = None, fallbacks: list[str] | None = None, **extra
) -> dict:
    """A config dict pointing every provider at the simulator."""
    providers = {
        p: {
            "api_key": "sk-test-" + p,
            "base_url": sim.base_url(p),
            "fallback_models": (fallbacks if p == provider and fallbacks is not None else MODELS[p][1:]),
            "timeout": {"connect": 2, "read": 5},
        }
        for p in PROVIDERS
    }
    cfg = {
        "active_provider": provider,
        "active_model": model or MODELS[provider][0],
        "providers": providers,
        "cost_tracking": {"enabled": True, "log_path": None},
    }
    cfg.update(extra)
    return cfg


def unmeasured_env() -> dict[str, str]:
    """This process's environment without coverage's subprocess hook: for the short soaks and the quick
    benchmark, dozens of processes whose paths the worker and library tests measure already (measured,
    they cost the suite about a minute and a half of its 2 cores)."""
    return {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
