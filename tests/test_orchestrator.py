"""The fallback loop over real adapters, real SDKs and the simulator (and a real Redis)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.exceptions import (
    AllFallbacksFailedError,
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from tests.conftest import MODELS, PROVIDERS, make_config

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 2}


def orch(sim, provider="openai", redis_url=None, read_timeout=5.0, **extra) -> LLMOrchestrator:
    extra.setdefault("retry", FAST_RETRY)
    if redis_url:
        extra["redis"] = {"url": redis_url}
    cfg = make_config(sim, provider, **extra)
    cfg["providers"][provider]["timeout"]["read"] = read_timeout
    return LLMOrchestrator(ConfigManager.from_dict(cfg).config)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_falls_back_in_order_within_the_provider_only(sim, provider, caplog):
    first, second, third = MODELS[provider]
    sim.add_fault(provider=provider, model=first, status=503)
    sim.add_fault(provider=provider, model=second, kind="timeout")
    o = orch(sim, provider, read_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="llm_orchestrator.orchestrator"):
        r = o.send_request("hello", deadline=30)
    assert r.model == third and r.provider == provider
    tried = [a["model"] for a in r.attempts]
    assert tried == [first, first, second, second, third]
    assert [a["error_type"] for a in r.attempts][:4] == [
        "ServerError",
        "ServerError",
        "RequestTimeoutError",
        "RequestTimeoutError",
    ]
    assert sum("trying next model" in rec.message for rec in caplog.records) == 2
    others = {row["provider"] for row in sim.stats()["requests"]}
    assert others == {provider}  # never another provider


def test_all_fallbacks_failed_lists_every_try(sim):
    sim.add_fault(provider="openai", status=500)
    with pytest.raises(AllFallbacksFailedError) as info:
        orch(sim).send_request("hello")
    attempts = info.value.attempts
    assert [a["model"] for a in attempts] == [m for m in MODELS["openai"][:3] for _ in range(2)]
    assert all(a["status"] == 500 and a["latency_ms"] >= 0 and a["retryable"] for a in attempts)
    assert sim.count(provider="openai") == 6  # 3 models x 2 tries: no stacked SDK retries


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(401, None, AuthenticationError), (400, None, InvalidRequestError), (429, "insufficient_quota", RateLimitError)],
)
def test_errors_no_model_can_fix_stop_at_once(sim, status, code, error):
    sim.add_fault(provider="openai", status=status, code=code)
    with pytest.raises(error):
        orch(sim).send_request("hello")
    assert sim.count(provider="openai") == 1


def test_model_override_starts_the_chain_there(sim):
    r = orch(sim).send_request("hello", model="gpt-6-sol")
    assert r.model == "gpt-6-sol"


def test_long_retry_after_goes_to_next_model_then_retry_later(sim):
    sim.add_fault(provider="openai", status=429, retry_after=60)
    with pytest.raises(AllFallbacksFailedError) as info:
        orch(sim).send_request("hello")
    assert info.value.retryable and info.value.retry_after == 60  # the worker turns this into a countdown
    assert {a["error_type"] for a in info.value.attempts} == {"RateLimitError"}


def test_open_breaker_fails_fast_without_calling_provider(sim, redis_url, redis_client):
    o = orch(
        sim,
        redis_url=redis_url,
        breaker={"min_calls": 4, "failure_rate": 0.5, "open_seconds": 30},
        retry={**FAST_RETRY, "max_attempts": 1},
    )
    sim.add_fault(provider="openai", status=503)
    for _ in range(4):
        with pytest.raises(AllFallbacksFailedError):
            o.send_request("hello")
    sim.clear_faults()
    sim.reset_stats()
    with pytest.raises(AllFallbacksFailedError) as info:
        o.send_request("hello")
    assert {a["error_type"] for a in info.value.attempts} == {"CircuitOpenError"}
    assert sim.count() == 0  # no provider call at all
    assert info.value.retry_after > 20


def test_streaming_falls_back_before_first_token(sim):
    sim.add_fault(provider="anthropic", model="claude-haiku-5-5", status=529)
    chunks = list(orch(sim, "anthropic").send_streaming_request("hello"))
    assert chunks[-1].done and chunks[-1].response.model == "claude-sonnet-5-5"
    assert chunks[-1].response.cost_usd is not None


def test_streaming_error_after_first_token_is_raised_not_spliced(sim):
    sim.add_fault(provider="openai", model="gpt-6-luna", kind="midstream_error", after_chunks=2)
    got = []
    with pytest.raises(ServerError):
        for chunk in orch(sim).send_streaming_request("hello"):
            got.append(chunk)
    assert got and {c.response for c in got} == {None}
    assert sim.count(model="gpt-6-sol") == 0


def test_async_fallback_and_stream(sim):
    sim.add_fault(provider="gemini", model="gemini-3.5-flash-lite", status=500)
    o = orch(sim, "gemini")

    async def go():
        r = await o.asend_request("hello")
        chunks = [c async for c in o.asend_streaming_request("hello")]
        return r, chunks

    r, chunks = asyncio.run(go())
    assert r.model == "gemini-3.8-flash" == chunks[-1].response.model


def test_cost_is_recorded_per_session_and_job(sim, redis_url, redis_client):
    o = orch(sim, redis_url=redis_url)
    r1 = o.send_request("hello", session_id="s1", job_id="j1", attempt=0)
    r2 = o.send_request("hello again", session_id="s1")
    assert r1.cost_usd > 0 and o.cost_tracker.get_session_cost("s1") == r1.cost_usd + r2.cost_usd
    assert o.cost_tracker.pending(older_than=0) == {}


def test_failed_job_leaves_no_pending_marker(sim, redis_url, redis_client):
    sim.add_fault(provider="openai", status=400)
    o = orch(sim, redis_url=redis_url)
    with pytest.raises(InvalidRequestError):
        o.send_request("hello", job_id="j2")
    assert o.cost_tracker.pending(older_than=0) == {}


def test_registry_validates_models_once_refreshed(sim):
    o = orch(sim)
    o.send_request("hello", model="gpt-6-typo")  # no registry data yet: not validated
    o.registry.refresh_models()
    with pytest.raises(ConfigError, match="did you mean"):
        o.send_request("hello", model="gpt-6-lunaa")


def test_prompt_text_is_never_logged(sim, caplog):
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503)
    with caplog.at_level(logging.DEBUG):
        orch(sim).send_request("secret prompt text 12345")
    assert "secret prompt text" not in caplog.text
    assert "sk-test-openai" not in caplog.text
