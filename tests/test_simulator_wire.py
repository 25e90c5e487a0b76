"""Small wire facts of the simulator that the SDKs do not check but real clients see."""

from __future__ import annotations

import time

import httpx
import pytest

KEY = "sk-test-wire"
OPENAI_GETS = ["/models", "/models/gpt-6-luna", "/batches", "/files/file-missing", "/batches/batch_missing"]
ANTHROPIC_GETS = [
    "/v1/models",
    "/v1/models/claude-haiku-5-5",
    "/v1/messages/batches",
    "/v1/messages/batches/msgbatch_missing",
]
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}


@pytest.mark.parametrize("path", OPENAI_GETS)
def test_every_openai_reply_carries_x_request_id(sim, path):
    reply = httpx.get(sim.base_url("openai") + path, headers={"Authorization": f"Bearer {KEY}"})
    assert reply.headers.get("x-request-id", "").startswith("req_"), (path, reply.status_code)


@pytest.mark.parametrize("path", ANTHROPIC_GETS)
def test_every_anthropic_reply_carries_request_id(sim, path):
    reply = httpx.get(sim.base_url("anthropic") + path, headers=ANTHROPIC_HEADERS)
    assert reply.headers.get("request-id", "").startswith("req_"), (path, reply.status_code)


def test_get_model_checks_the_key_on_all_three(sim):
    assert httpx.get(sim.base_url("openai") + "/models/gpt-6-luna").status_code == 401
    assert (
        httpx.get(
            sim.base_url("anthropic") + "/v1/models/claude-haiku-5-5", headers={"anthropic-version": "2026-10-21"}
        ).status_code
        == 401
    )
    assert httpx.get(sim.base_url("gemini") + "/v1/models/gemini-3.5-flash-lite").status_code == 403
    assert (
        httpx.get(
            sim.base_url("gemini") + "/v1/models/gemini-3.5-flash-lite", headers={"x-goog-api-key": "invalid-key"}
        ).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("provider", "path", "headers"),
    [
        ("openai", "/batches?limit=many", {"Authorization": f"Bearer {KEY}"}),
        ("anthropic", "/v1/models?limit=lots", ANTHROPIC_HEADERS),
        ("anthropic", "/v1/messages/batches?limit=x", ANTHROPIC_HEADERS),
        ("gemini", "/v1/models?pageSize=big", {"x-goog-api-key": KEY}),
    ],
)
def test_bad_query_parameters_are_a_400_in_the_providers_json_shape(sim, provider, path, headers):
    reply = httpx.get(sim.base_url(provider) + path, headers=headers)
    assert reply.status_code == 400 and reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert (body["error"]["type"] if provider != "gemini" else body["error"]["status"]) in (
        "invalid_request_error",
        "INVALID_ARGUMENT",
    )


def test_an_unknown_anthropic_version_is_refused(sim):
    reply = httpx.post(
        sim.base_url("anthropic") + "/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "1999-01-01"},
        json={"model": "claude-haiku-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 400 and "anthropic-version" in reply.json()["error"]["message"]


def test_retry_after_is_whole_seconds(sim):
    sim.add_fault(provider="openai", status=429, retry_after=1.2)
    reply = httpx.post(
        sim.base_url("openai") + "/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "gpt-6-luna", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status_code == 429 and reply.headers["retry-after"] == "2"
    assert "Please try again in 1.2s" in reply.json()["error"]["message"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_rate_limit_headers_on_every_chat_reply_follow_the_window(sim, provider):
    sim.set_limits(provider, rpm=5)
    url, headers, body, prefix = {
        "openai": (
            sim.base_url("openai") + "/chat/completions",
            {"Authorization": f"Bearer {KEY}"},
            {"model": "gpt-6-luna", "messages": [{"role": "user", "content": "x"}]},
            "x-ratelimit-",
        ),
        "anthropic": (
            sim.base_url("anthropic") + "/v1/messages",
            ANTHROPIC_HEADERS,
            {"model": "claude-haiku-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            "anthropic-ratelimit-",
        ),
    }[provider]
    remaining = []
    for _ in range(6):
        reply = httpx.post(url, headers=headers, json=body)
        names = {
            "openai": ("limit-requests", "remaining-requests"),
            "anthropic": ("requests-limit", "requests-remaining"),
        }[provider]
        assert reply.headers[prefix + names[0]] == "5"
        remaining.append((reply.status_code, int(reply.headers[prefix + names[1]])))
    assert remaining == [(200, 4), (200, 3), (200, 2), (200, 1), (200, 0), (429, 0)]


def test_unknown_model_is_each_providers_404(sim):
    o = httpx.post(
        sim.base_url("openai") + "/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "gpt-6-typo", "messages": [{"role": "user", "content": "x"}]},
    )
    assert o.status_code == 404 and o.json()["error"]["code"] == "model_not_found"
    a = httpx.post(
        sim.base_url("anthropic") + "/v1/messages",
        headers=ANTHROPIC_HEADERS,
        json={"model": "claude-typo", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
    )
    assert a.status_code == 404 and a.json()["error"] == {"type": "not_found_error", "message": "model: claude-typo"}
    g = httpx.post(
        sim.base_url("gemini") + "/v1/models/gemini-typo:generateContent",
        headers={"x-goog-api-key": KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
    )
    assert g.status_code == 404 and g.json()["error"]["status"] == "NOT_FOUND"
    assert "models/gemini-typo is not found" in g.json()["error"]["message"]


def test_a_slow_reply_that_finishes_after_a_reset_is_not_counted_in_the_fresh_stats(sim):
    """A test's call its client gave up on must not show in the next test's counts."""
    import threading

    sim.set_latency("openai", 800)
    request = {"model": "gpt-6-luna", "messages": [{"role": "user", "content": "x"}]}
    url, headers = sim.base_url("openai") + "/chat/completions", {"Authorization": f"Bearer {KEY}"}
    slow = threading.Thread(target=httpx.post, args=(url,), kwargs={"headers": headers, "json": request})
    slow.start()
    time.sleep(0.3)  # it has arrived and waits out its latency
    sim.reset()
    assert httpx.post(url, headers=headers, json=request).status_code == 200
    slow.join()
    assert sim.count() == 1
