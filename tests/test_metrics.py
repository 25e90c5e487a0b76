"""Prometheus metrics and the structured call log, through real SDKs, the simulator and Redis.

The library records into prometheus_client's default registry when no multiprocess directory is
set (this test process); a worker started with ``LLM_ORCH_METRICS_PORT`` serves ``/metrics`` from
the multiprocess collector, fed by its forked children.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.exceptions import AllFallbacksFailedError, InvalidRequestError
from llm_orchestrator.pricing import to_micros
from llm_orchestrator.resilience.ratelimit import Limit, RateLimiter
from tests.conftest import make_config
from tests.worker_fixtures import WorkerProcess, worker_env, write_config

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 2}
SECRET_PROMPT = "my secret prompt text, mail me at jane.doe@example.com"


def orch(sim, provider="openai", redis_url=None, **extra) -> LLMOrchestrator:
    extra.setdefault("retry", FAST_RETRY)
    if redis_url:
        extra["redis"] = {"url": redis_url}
    return LLMOrchestrator(ConfigManager.from_dict(make_config(sim, provider, **extra)).config)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values before a block, so tests are independent of what ran earlier in the session."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples
        self.before = [value(n, **lab) for n, lab in samples]

    def __call__(self) -> list[float]:
        return [value(n, **lab) - b for (n, lab), b in zip(self.samples, self.before)]


def test_a_fallback_moves_requests_errors_retries_fallbacks_tokens_cost_and_latency(sim, redis_url, redis_client):
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503)
    o = orch(sim, redis_url=redis_url)
    luna = {"provider": "openai", "model": "gpt-6-luna"}
    sol = {"provider": "openai", "model": "gpt-6-sol"}
    delta = Delta(
        ("llm_orch_requests_total", {**luna, "outcome": "error"}),
        ("llm_orch_errors_total", {**luna, "error_type": "ServerError"}),
        ("llm_orch_retries_total", luna),
        (
            "llm_orch_fallbacks_total",
            {"provider": "openai", "from_model": "gpt-6-luna", "to_model": "gpt-6-sol", "reason": "ServerError"},
        ),
        ("llm_orch_requests_total", {**sol, "outcome": "ok"}),
        ("llm_orch_request_latency_seconds_count", {**sol, "outcome": "ok"}),
        ("llm_orch_tokens_total", {**sol, "kind": "prompt"}),
        ("llm_orch_tokens_total", {**sol, "kind": "completion"}),
        ("llm_orch_cost_micro_usd_total", {**sol, "tenant": "acme"}),
        ("llm_orch_request_latency_seconds_sum", {**sol, "outcome": "ok"}),
    )
    r = o.send_request("hello", tenant="acme")
    assert r.model == "gpt-6-sol"
    errors, by_type, retries, fallbacks, ok, latency_count, prompt, completion, cost, latency_sum = delta()
    assert (errors, by_type, retries, fallbacks, ok, latency_count) == (2, 2, 1, 1, 1, 1)
    assert (prompt, completion) == (r.prompt_tokens, r.completion_tokens) and prompt > 0
    assert cost == to_micros(r.cost_usd) > 0
    assert 0 < latency_sum < 5


def test_non_retryable_error_is_counted_without_fallback(sim):
    sim.add_fault(provider="openai", status=400)
    luna = {"provider": "openai", "model": "gpt-6-luna"}
    delta = Delta(
        ("llm_orch_errors_total", {**luna, "error_type": "InvalidRequestError"}),
        ("llm_orch_retries_total", luna),
        (
            "llm_orch_fallbacks_total",
            {
                "provider": "openai",
                "from_model": "gpt-6-luna",
                "to_model": "gpt-6-sol",
                "reason": "InvalidRequestError",
            },
        ),
    )
    with pytest.raises(InvalidRequestError):
        orch(sim).send_request("hello")
    assert delta() == [1, 0, 0]


def test_cached_prompt_tokens_are_counted_for_the_hit_rate(sim):
    o = orch(sim, "anthropic")
    model = {"provider": "anthropic", "model": "claude-haiku-5-5"}
    delta = Delta(
        ("llm_orch_tokens_total", {**model, "kind": "cached"}),
        ("llm_orch_tokens_total", {**model, "kind": "cache_write"}),
        ("llm_orch_tokens_total", {**model, "kind": "prompt"}),
    )
    system = "You are a careful assistant. " * 200
    responses = [o.send_request(f"question {i}", system=system, cache_system=True) for i in range(3)]
    cached, written, prompt = delta()
    assert cached == sum(r.cached_tokens for r in responses) > 0
    assert written == sum(r.cache_write_tokens for r in responses) > 0
    assert 0 < cached / prompt < 1


def test_breaker_opening_is_a_transition_and_a_state(sim, redis_url, redis_client):
    cfg = make_config(
        sim,
        "openai",
        redis={"url": redis_url},
        retry={**FAST_RETRY, "max_attempts": 1},
        breaker={"min_calls": 2, "failure_rate": 0.5, "open_seconds": 30},
        fallbacks=[],
    )
    o = LLMOrchestrator(ConfigManager.from_dict(cfg).config)
    luna = {"provider": "openai", "model": "gpt-6-luna"}
    delta = Delta(("llm_orch_breaker_transitions_total", {**luna, "from_state": "closed", "to_state": "open"}))
    sim.add_fault(provider="openai", status=503)
    for _ in range(3):
        with pytest.raises(AllFallbacksFailedError):
            o.send_request("hello")
    assert delta() == [1]
    assert value("llm_orch_breaker_state", **luna) == 2  # 0 closed, 1 half-open, 2 open


def test_limiter_wait_is_observed():
    now = [1000.0]
    limiter = RateLimiter({"openai": Limit("openai", 1, None)}, clock=lambda: now[0])
    labels = {"provider": "openai", "model": "gpt-6-luna"}
    delta = Delta(("llm_orch_limiter_wait_seconds_count", labels), ("llm_orch_limiter_wait_seconds_sum", labels))
    limiter.acquire("openai", "gpt-6-luna", 10, max_wait=120)
    limiter.acquire("openai", "gpt-6-luna", 10, max_wait=120, sleep=lambda s: now.__setitem__(0, now[0] + s))
    waits, seconds = delta()
    assert waits == 1 and 59 < seconds <= 61


def test_call_log_line_has_the_fields_and_no_prompt_or_key(sim, redis_url, redis_client, caplog):
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503, count=1)
    o = orch(sim, redis_url=redis_url)
    with caplog.at_level(logging.INFO, logger="llm_orchestrator.calls"):
        r = o.send_request(
            SECRET_PROMPT, system="sk-abcdefghijklmnop1234", tenant="ops@example.com", job_id="job-7", attempt=1
        )
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "llm_orchestrator.calls"]
    assert len(lines) == 2  # the 503, then the retry that answered
    failed, ok = (json.loads(line) for line in lines)
    for entry in (failed, ok):
        assert {
            "prompt_hash",
            "provider",
            "model",
            "attempt",
            "try",
            "retries",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "cost_usd",
            "latency_ms",
            "outcome",
            "error_type",
            "job_id",
            "request_id",
            "tenant",
        } <= set(entry)
        assert entry["job_id"] == "job-7" and entry["attempt"] == 1
        assert entry["tenant"] == "[REDACTED:email]"
    assert failed["outcome"] == "error" and failed["error_type"] == "ServerError" and failed["status"] == 503
    assert ok["outcome"] == "ok" and ok["error_type"] is None and ok["retries"] == 1 and ok["try"] == 2
    assert ok["cost_usd"] == str(r.cost_usd) and ok["request_id"] == r.request_id
    assert ok["prompt_tokens"] == r.prompt_tokens and ok["prompt_hash"] == failed["prompt_hash"]
    text = caplog.text + "".join(lines)
    for secret in ("secret prompt", "jane.doe", "sk-abcdefghijklmnop1234", "sk-test-openai", "ops@example.com"):
        assert secret not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_serves_metrics_of_its_children_and_queue_depth(sim, redis_url, redis_client, tmp_path):
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    port = _free_port()
    config = write_config(tmp_path / "config.yaml", sim, redis_url)
    env = worker_env(
        config, redis_url, LLM_ORCH_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom")
    )
    w = WorkerProcess(env, tmp_path, concurrency=2, queues="llm.interactive").start(celery_app)
    try:
        jobs = [producer.submit_completion(f"question {i}", tenant="acme") for i in range(4)]
        assert all(j.get(timeout=60)["status"] == "succeeded" for j in jobs)
        # nobody consumes `maintenance` here: the message waits in its Redis list
        celery_app.send_task("costs.rollup_daily", kwargs={"payload": {"day": "2000-01-01"}})
        deadline = time.monotonic() + 10
        while True:
            samples = _scrape(port)
            ok = samples.get(
                ("llm_orch_requests_total", (("model", "gpt-6-luna"), ("outcome", "ok"), ("provider", "openai"))), 0
            )
            depth = samples.get(("llm_orch_queue_depth", (("queue", "maintenance"),)))
            if (ok, depth) == (4, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (ok, depth) == (4, 1), w.log()
        assert samples[("llm_orch_queue_depth", (("queue", "llm.interactive"),))] == 0
        assert (
            samples[
                (
                    "llm_orch_request_latency_seconds_count",
                    (("model", "gpt-6-luna"), ("outcome", "ok"), ("provider", "openai")),
                )
            ]
            == 4
        )
        assert (
            samples[
                ("llm_orch_cost_micro_usd_total", (("model", "gpt-6-luna"), ("provider", "openai"), ("tenant", "acme")))
            ]
            > 0
        )
    finally:
        w.stop()
        redis_client.delete("llmorch:maintenance")


def test_worker_without_port_serves_nothing(tmp_path):
    """Off by default: the metrics server starts only when LLM_ORCH_METRICS_PORT is a port number."""
    from worker.metrics_server import metrics_port

    assert metrics_port({}) is None
    assert metrics_port({"LLM_ORCH_METRICS_PORT": "0"}) is None
    assert metrics_port({"LLM_ORCH_METRICS_PORT": "9464"}) == 9464
    with pytest.raises(ValueError, match="LLM_ORCH_METRICS_PORT"):
        metrics_port({"LLM_ORCH_METRICS_PORT": "nine"})


def test_library_import_does_not_import_prometheus(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, llm_orchestrator, llm_orchestrator.observability, llm_orchestrator.cli\n"
        "assert 'prometheus_client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": "/usr/bin:/bin"})


def test_library_runs_without_prometheus_client(sim, tmp_path):
    """With prometheus_client unimportable, calls work and the call log is still written."""
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(make_config(sim, "openai")))
    code = (
        "import sys, logging, io\n"
        "sys.modules['prometheus_client'] = None\n"
        "buf = io.StringIO(); h = logging.StreamHandler(buf)\n"
        "logging.getLogger('llm_orchestrator.calls').addHandler(h)\n"
        "logging.getLogger('llm_orchestrator.calls').setLevel(logging.INFO)\n"
        "from llm_orchestrator import LLMOrchestrator\n"
        f"r = LLMOrchestrator.from_yaml({str(cfg)!r}).send_request('hi')\n"
        'assert r.content and \'"outcome": "ok"\' in buf.getvalue(), buf.getvalue()\n'
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": "/usr/bin:/bin"})
