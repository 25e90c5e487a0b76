"""Each adapter through its real SDK, over HTTP, against the simulator. No SDK is mocked."""

from __future__ import annotations

import asyncio
import os
import pickle

import pytest

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import (
    AuthenticationError,
    ContentBlockedError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from llm_orchestrator.providers.base import LLMResponse, Message, RequestOptions
from llm_orchestrator.providers.registry import ADAPTERS, build_adapter
from tests.conftest import MODELS, PROVIDERS

KEY = "sk-test-canary-5f1e2d3c4b5a"
OPTS = RequestOptions(max_tokens=200)
MSGS = [Message("system", "Answer briefly."), Message("user", "Why do retries need jitter?")]


def adapter_for(sim, provider: str, key: str = KEY, read: float = 5.0):
    cfg = ProviderConfig(api_key=key, base_url=sim.base_url(provider), timeout={"connect": 2, "read": read})
    return build_adapter(provider, cfg)


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def model_of(provider: str) -> str:
    return MODELS[provider][0]


def test_same_field_set_and_nonzero_tokens(sim, provider):
    r = adapter_for(sim, provider).generate(MSGS, model_of(provider), OPTS)
    assert isinstance(r, LLMResponse)
    assert set(r.to_dict()) == set(LLMResponse.__dataclass_fields__) - {"rate_limits", "session_cost_usd"}
    assert r.provider == provider and r.model == model_of(provider)
    assert r.content and r.finish_reason == "stop"
    assert r.prompt_tokens > 0 and r.completion_tokens > 0
    assert r.total_tokens == r.prompt_tokens + r.completion_tokens
    assert r.request_id and r.latency_ms > 0


def test_stream_text_equals_plain_text(sim, provider):
    adapter = adapter_for(sim, provider)
    plain = adapter.generate(MSGS, model_of(provider), OPTS)
    chunks = list(adapter.stream(MSGS, model_of(provider), OPTS))
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert "".join(c.text for c in chunks) == plain.content == chunks[-1].response.content
    final = chunks[-1].response
    assert (final.prompt_tokens, final.completion_tokens) == (plain.prompt_tokens, plain.completion_tokens)


def test_async_generate_and_stream_across_event_loops(sim, provider):
    adapter = adapter_for(sim, provider)

    async def once() -> tuple[LLMResponse, str]:
        r = await adapter.agenerate(MSGS, model_of(provider), OPTS)
        text = "".join([c.text async for c in adapter.astream(MSGS, model_of(provider), OPTS)])
        return r, text

    for _ in range(2):  # a second asyncio.run must not reuse a client bound to a closed loop
        r, text = asyncio.run(once())
        assert r.content == text and r.completion_tokens > 0


def test_max_tokens_truncation_is_length(sim, provider):
    r = adapter_for(sim, provider).generate(MSGS, model_of(provider), RequestOptions(max_tokens=3))
    assert r.finish_reason == "length"


def test_refusal_is_content_filter_or_blocked(sim, provider):
    msgs = [Message("user", "[[sim:refuse]] do something bad")]
    adapter = adapter_for(sim, provider)
    if provider == "gemini":  # a blocked prompt has no candidates at all
        with pytest.raises(ContentBlockedError):
            adapter.generate(msgs, model_of(provider), OPTS)
    else:
        assert adapter.generate(msgs, model_of(provider), OPTS).finish_reason == "content_filter"


def test_cached_tokens_reported_on_repeat(sim, provider):
    long_system = "You classify product feedback. " * 200  # > 1024 tokens
    msgs = [Message("system", long_system), Message("user", "hello")]
    opts = RequestOptions(max_tokens=50, cache_system=True)
    adapter = adapter_for(sim, provider)
    first = adapter.generate(msgs, model_of(provider), opts)
    second = adapter.generate(msgs, model_of(provider), opts)
    assert first.cached_tokens == 0 and second.cached_tokens > 0
    assert second.prompt_tokens == first.prompt_tokens  # prompt_tokens includes cached tokens
    if provider == "anthropic":
        assert first.cache_write_tokens > 0 and second.cache_write_tokens == 0


@pytest.mark.parametrize(
    ("status", "code", "expected", "retryable"),
    [
        (500, None, ServerError, True),
        (503, None, ServerError, True),
        (429, None, RateLimitError, True),
        (400, None, InvalidRequestError, False),
    ],
)
def test_status_faults_map_to_error_tree(sim, provider, status, code, expected, retryable):
    sim.add_fault(provider=provider, status=status, retry_after=7, code=code)
    with pytest.raises(expected) as info:
        adapter_for(sim, provider).generate(MSGS, model_of(provider), OPTS)
    err = info.value
    assert err.status == status and err.retryable is retryable and err.provider == provider
    assert err.__cause__ is not None  # the SDK error is kept
    if status in (429, 500, 503):
        assert err.retry_after == 7
    assert sim.count(provider=provider) == 1  # SDK retries are off: exactly one request


def test_anthropic_overloaded_529_is_retryable(sim):
    sim.add_fault(provider="anthropic", status=529, retry_after_ms=1500)
    with pytest.raises(ServerError) as info:
        adapter_for(sim, "anthropic").generate(MSGS, model_of("anthropic"), OPTS)
    assert info.value.status == 529 and info.value.retryable and info.value.retry_after == 1.5


def test_openai_insufficient_quota_is_not_retryable(sim):
    sim.add_fault(provider="openai", status=429, code="insufficient_quota")
    with pytest.raises(RateLimitError) as info:
        adapter_for(sim, "openai").generate(MSGS, model_of("openai"), OPTS)
    assert not info.value.retryable and info.value.code == "insufficient_quota"


def test_anthropic_spend_limit_is_not_retryable(sim):
    sim.add_fault(provider="anthropic", status=429, code="enforced_spend_limit_reached")
    with pytest.raises(RateLimitError) as info:
        adapter_for(sim, "anthropic").generate(MSGS, model_of("anthropic"), OPTS)
    assert not info.value.retryable


def test_bad_key_is_authentication_error_without_the_key(sim, provider):
    with pytest.raises(AuthenticationError) as info:
        adapter_for(sim, provider, key="sk-invalid-" + KEY).generate(MSGS, model_of(provider), OPTS)
    # Gemini's real answer to a bad key is 400 INVALID_ARGUMENT / API_KEY_INVALID, not a 401
    assert info.value.status == (400 if provider == "gemini" else 401) and not info.value.retryable
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_gemini_missing_key_is_403_authentication_error(sim):
    import httpx

    reply = httpx.post(
        sim.base_url("gemini") + "/v1/models/gemini-3.5-flash-lite:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert reply.status_code == 403 and reply.json()["error"]["status"] == "PERMISSION_DENIED"


def test_retired_model_is_model_not_found(sim, provider):
    with pytest.raises(ModelNotFoundError) as info:
        adapter_for(sim, provider).generate(MSGS, "model-retired-2024", OPTS)
    assert info.value.status == 404 and info.value.model == "model-retired-2024"


def test_timeout_fault_is_request_timeout(sim, provider):
    sim.add_fault(provider=provider, kind="timeout")
    with pytest.raises(RequestTimeoutError) as info:
        adapter_for(sim, provider, read=0.5).generate(MSGS, model_of(provider), OPTS)
    assert info.value.retryable


def test_malformed_body_is_server_error_not_crash(sim, provider):
    sim.add_fault(provider=provider, kind="malformed")
    with pytest.raises(ServerError, match="malformed"):
        adapter_for(sim, provider).generate(MSGS, model_of(provider), OPTS)


@pytest.mark.parametrize("kind", ["midstream_error", "malformed"])
def test_broken_stream_raises_server_error_after_first_chunks(sim, provider, kind):
    sim.add_fault(provider=provider, kind=kind, after_chunks=2)
    received = []
    with pytest.raises(ServerError):
        for chunk in adapter_for(sim, provider).stream(MSGS, model_of(provider), OPTS):
            received.append(chunk)
    assert received and not any(c.done for c in received)


def test_async_errors_are_mapped_too(sim, provider):
    sim.add_fault(provider=provider, status=503)
    with pytest.raises(ServerError):
        asyncio.run(adapter_for(sim, provider).agenerate(MSGS, model_of(provider), OPTS))


def test_errors_pickle_round_trip(sim, provider):
    sim.add_fault(provider=provider, status=429, retry_after=3)
    with pytest.raises(ProviderError) as info:
        adapter_for(sim, provider).generate(MSGS, model_of(provider), OPTS)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is type(info.value)
    assert (copy.status, copy.retryable, copy.retry_after) == (429, True, 3)


def test_list_models_all_pages_and_flags(sim, provider):
    models = {m.id: m for m in adapter_for(sim, provider).list_models()}
    for expected in MODELS[provider]:
        assert expected in models  # anthropic and gemini list 2 per page: pagination was followed
    if provider == "openai":
        assert models["ft:gpt-6-luna:acme:signals:abc123"].tuned
    if provider == "gemini":
        assert not models["text-embedding-005"].can_generate


def test_unknown_provider_is_config_error():
    from llm_orchestrator.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown provider"):
        build_adapter("cohere", ProviderConfig(api_key="k"))
    assert set(ADAPTERS) == set(PROVIDERS)


REAL_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
REAL_MODELS = {"openai": "gpt-6-luna", "anthropic": "claude-haiku-5-5", "gemini": "gemini-3.5-flash-lite"}


@pytest.mark.integration
@pytest.mark.parametrize("name", PROVIDERS)
def test_real_provider_smoke(name):
    key = os.environ.get(REAL_KEYS[name]) or (os.environ.get("GOOGLE_API_KEY") if name == "gemini" else None)
    if not key:
        pytest.skip(f"{REAL_KEYS[name]} not set")
    adapter = build_adapter(name, ProviderConfig(api_key=key, timeout={"connect": 5, "read": 60}))
    r = adapter.generate([Message("user", "Say OK.")], REAL_MODELS[name], RequestOptions(max_tokens=16))
    assert r.content and r.prompt_tokens > 0
