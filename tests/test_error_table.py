"""The error table (``exceptions.ON_ERROR``) is what every path does, row by row.

Each row is triggered for real (a simulator fault, an open breaker, a used-up limit or budget) on
the first model A of a two-model chain [A, B], then driven through ``send_request``,
``send_streaming_request``, ``asend_request``, ``asend_streaming_request`` and a worker job. The
expected provider calls are derived from the table, not written by hand: A is called
``max_attempts`` times when the row says "retry the same model" (once when it does not, never when
the refusal is our own), B once when the row says "next model"; the request then returns B's
answer or raises the row's error. The README's error table is the one printed from ``ON_ERROR``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from llm_orchestrator.config.manager import ConfigManager
from llm_orchestrator.exceptions import (
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ContentBlockedError,
    InvalidRequestError,
    LLMOrchestratorError,
    LocalRateLimitError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RetryLaterError,
    ServerError,
    TenantRateLimitError,
    on_error,
)
from llm_orchestrator.orchestrator import LLMOrchestrator
from llm_orchestrator.resilience.breaker_types import BreakerSettings
from llm_orchestrator.resilience.breakers import Breakers
from tests.conftest import ROOT, make_config
from tests.worker_fixtures import WorkerProcess, worker_env, write_config

A, B, LIMITED, RETIRED = "gpt-6-luna", "gpt-6-sol", "gpt-5.6-luna", "gpt-6-retired"
MAX_ATTEMPTS = 3
RETRY = {"max_attempts": MAX_ATTEMPTS, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 2}
BREAKER = {"min_calls": 5, "failure_rate": 0.5, "open_seconds": 30, "max_open_seconds": 60, "window_seconds": 60}
TENANTS = {"one-a-minute": {"rpm": 1}, "broke": {"cost_per_day_usd": "0.000001"}}
MODEL_LIMITS = {LIMITED: {"rpm": 1}}


@dataclass(frozen=True)
class Row:
    """How to make the first model of the chain fail with ``error``."""

    error: type[LLMOrchestratorError]
    setup: Callable[[Any, Any], dict[str, Any]]  # (sim, breakers) -> request kwargs (model=, tenant=)
    provider_called: bool = True  # False: our own refusal, no request reaches the provider


def _fault(**fault: Any) -> Callable[[Any, Any], dict[str, Any]]:
    def setup(sim: Any, _: Any) -> dict[str, Any]:
        sim.add_fault(provider="openai", model=A, **fault)
        return {}

    return setup


def _open_breaker(_: Any, breakers: Breakers) -> dict[str, Any]:
    for _n in range(BREAKER["min_calls"]):
        breakers.record(breakers.before_call("openai", A), success=False)
    return {}


ROWS = {
    "ServerError": Row(ServerError, _fault(status=503)),
    "RequestTimeoutError": Row(RequestTimeoutError, _fault(kind="timeout")),
    "RateLimitError": Row(RateLimitError, _fault(status=429, retry_after=0.01)),
    "QuotaExceededError": Row(QuotaExceededError, _fault(status=429, code="insufficient_quota")),
    "ModelNotFoundError": Row(ModelNotFoundError, lambda sim, b: {"model": RETIRED}),
    "AuthenticationError": Row(AuthenticationError, _fault(status=401, code="invalid_api_key")),
    "InvalidRequestError": Row(InvalidRequestError, _fault(status=400)),
    "ContentBlockedError": Row(ContentBlockedError, _fault(status=400, code="content_policy_violation")),
    "RetryLaterError": Row(RetryLaterError, _fault(status=429, retry_after=30)),
    "CircuitOpenError": Row(CircuitOpenError, _open_breaker, provider_called=False),
    "LocalRateLimitError": Row(LocalRateLimitError, lambda sim, b: {"model": LIMITED}, provider_called=False),
    "TenantRateLimitError": Row(TenantRateLimitError, lambda sim, b: {"tenant": "one-a-minute"}, provider_called=False),
    "BudgetExceededError": Row(BudgetExceededError, lambda sim, b: {"tenant": "broke"}, provider_called=False),
}


def expected_calls(row: Row) -> tuple[int, int]:
    """(calls to the first model, calls to B) that the table prescribes for this row."""
    policy = on_error(row.error(*_sample_args(row.error)))
    first = 0 if not row.provider_called else (MAX_ATTEMPTS if policy.retry_same_model else 1)
    return first, (1 if policy.next_model else 0)


def _sample_args(cls: type[LLMOrchestratorError]) -> tuple[Any, ...]:
    if issubclass(cls, CircuitOpenError):
        return ("openai", A, 1.0)
    if issubclass(cls, LocalRateLimitError):
        return ("openai/" + A, 1.0)
    if issubclass(cls, RetryLaterError):
        return ("openai", A, 30.0, "RateLimitError")
    if issubclass(cls, BudgetExceededError):
        return ("broke", "cost_per_day_usd")
    return ("openai", A)


def _config(sim: Any) -> dict[str, Any]:
    cfg = make_config(sim, "openai", model=A, fallbacks=[B], retry=RETRY, breaker=BREAKER, tenants=TENANTS)
    cfg["providers"]["openai"]["model_rate_limits"] = MODEL_LIMITS
    cfg["providers"]["openai"]["timeout"] = {"connect": 2, "read": 0.5}
    return cfg


def _prime(orch_call: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Rows that need a limit used up: one request first (it succeeds), then the measured one."""
    if kwargs.get("model") == LIMITED or kwargs.get("tenant") == "one-a-minute":
        orch_call(kwargs)


def _sync(o: LLMOrchestrator, kwargs: dict[str, Any]) -> str:
    return o.send_request("hello", max_tokens=16, **kwargs).model


def _stream(o: LLMOrchestrator, kwargs: dict[str, Any]) -> str:
    chunks = list(o.send_streaming_request("hello", max_tokens=16, **kwargs))
    return chunks[-1].response.model


def _async(o: LLMOrchestrator, kwargs: dict[str, Any]) -> str:
    return asyncio.run(o.asend_request("hello", max_tokens=16, **kwargs)).model


def _astream(o: LLMOrchestrator, kwargs: dict[str, Any]) -> str:
    async def run() -> str:
        chunks = [c async for c in o.asend_streaming_request("hello", max_tokens=16, **kwargs)]
        return chunks[-1].response.model

    return asyncio.run(run())


PATHS = {
    "send_request": _sync,
    "send_streaming_request": _stream,
    "asend_request": _async,
    "asend_streaming_request": _astream,
}


def _calls(sim: Any, model: str) -> int:
    return sum(r["count"] for r in sim.stats()["requests"] if r["provider"] == "openai" and r["model"] == model)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(ROWS))
def test_every_row_of_the_table_on_every_library_path(sim, name, path):
    row, run = ROWS[name], PATHS[path]
    o = LLMOrchestrator(ConfigManager.from_dict(_config(sim)).config)  # memory state: a fresh one per case
    kwargs = row.setup(sim, o._parts.breakers)
    _prime(lambda kw: run(o, kw), kwargs)
    sim.reset_stats()
    first_model = kwargs.get("model", A)
    want_first, want_b = expected_calls(row)
    if want_b:
        assert run(o, kwargs) == B
    else:
        with pytest.raises(row.error):
            run(o, kwargs)
    assert (_calls(sim, first_model), _calls(sim, B)) == (want_first, want_b)


def test_the_table_covers_every_error_the_call_path_raises():
    for row in ROWS.values():
        assert (
            type(row.error(*_sample_args(row.error)))
            in __import__("llm_orchestrator.exceptions", fromlist=["ON_ERROR"]).ON_ERROR
        ), row.error


def test_readme_error_table_is_the_code_table():
    from llm_orchestrator.error_docs import error_table_markdown

    readme = (ROOT / "README.md").read_text()
    assert error_table_markdown() in readme, "README error table differs: paste `python -m llm_orchestrator.error_docs`"


# -- the worker reads the same table ----------------------------------------------------------------


@pytest.fixture(scope="module")
def table_worker(simulator, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table-worker")
    cfg = _config(simulator)
    config = write_config(
        tmp / "config.yaml", simulator, redis_url, model=A, fallbacks=[B], retry=RETRY, breaker=BREAKER, tenants=TENANTS
    )
    import yaml

    data = yaml.safe_load(config.read_text())
    data["providers"]["openai"]["model_rate_limits"] = MODEL_LIMITS
    data["providers"]["openai"]["timeout"] = cfg["providers"]["openai"]["timeout"]
    config.write_text(yaml.safe_dump(data))
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    # A model list another test of this process refreshed into this Redis would make the retired
    # model an unknown one (ConfigError) for the worker, which reads the list once: start clean, and
    # have the worker read the empty list now, before any later refresh.
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    w = WorkerProcess(worker_env(config, redis_url), tmp, concurrency=1, queues="llm.interactive").start(celery_app)
    assert producer.submit_completion("warm up", max_tokens=16).get(timeout=60)["status"] == "succeeded", w.log()
    yield {"producer": producer, "app": celery_app, "worker": w, "config": ConfigManager.load(config).config}
    w.stop()
    client.flushdb()  # the rows' revoked countdown jobs come back to the queue when the worker stops


@pytest.mark.parametrize("name", list(ROWS))
def test_every_row_of_the_table_through_a_worker_job(table_worker, sim, redis_url, name):
    row = ROWS[name]
    client = redis.Redis.from_url(redis_url)
    for pattern in ("llmorch:breaker:*", "llmorch:limit:*", "llmorch:tenant:*"):
        if keys := client.keys(pattern):
            client.delete(*keys)
    breakers = Breakers(BreakerSettings.from_config(table_worker["config"].breaker), redis=client)
    kwargs = row.setup(sim, breakers)
    submit = table_worker["producer"].submit_completion
    if kwargs.get("model") == LIMITED or kwargs.get("tenant") == "one-a-minute":
        assert submit("hello", max_tokens=16, **kwargs).get(timeout=60)["status"] == "succeeded"
    sim.reset_stats()
    first_model = kwargs.get("model", A)
    want_first, want_b = expected_calls(row)
    job = submit("hello", max_tokens=16, **kwargs)
    if on_error(row.error(*_sample_args(row.error))).stops_request and row.error(*_sample_args(row.error)).retryable:
        table_worker["worker"].wait_for_log(f"job {job.id} waits")  # it comes back later: take it back
        table_worker["app"].control.revoke(job.id)
    else:
        result = job.get(timeout=60)
        if want_b:
            assert result["status"] == "succeeded" and result["model"] == B, result
        else:
            assert result["status"] == "failed" and result["error"]["type"] == row.error.__name__, result
    assert (_calls(sim, first_model), _calls(sim, B)) == (want_first, want_b)
