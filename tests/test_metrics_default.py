"""``/metrics`` in the documented default: ``LLM_ORCH_METRICS_PORT`` set, ``PROMETHEUS_MULTIPROC_DIR`` not.

One real worker for the module, started with the ``celery`` command as the README runs it, runs a
few ``llm.complete`` jobs against the simulator; the tests scrape its ``/metrics`` over HTTP, read
its log, check that every metric the Prometheus rules and the Grafana dashboard read is served,
and (last) stop it and look for the temporary multiprocess directory it made.
"""

from __future__ import annotations

import calendar
import re
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from llm_orchestrator.pricing import to_micros
from tests.test_monitoring import referenced_metric_names
from tests.worker_fixtures import WorkerProcess, worker_env, write_config

TENANT = "metrics-tenant"
COST_LIMIT_USD = Decimal("5.00")
TOKENS_LIMIT = 1_000_000
OK_JOBS = 4
SERVING = re.compile(r"serving Prometheus metrics on port (\d+) \(multiprocess dir (.+)\)")
OPENAI = {"provider": "openai", "model": "gpt-6-luna"}
HAIKU = {"provider": "anthropic", "model": "claude-haiku-5-5"}
SONNET = {"provider": "anthropic", "model": "claude-sonnet-5-5"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the worker's /metrics, by (sample name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def default_worker(simulator, redis_url, tmp_path_factory) -> Any:
    tmp = tmp_path_factory.mktemp("metrics-default")
    temp_root = tmp / "tmp"  # the worker's TMPDIR: where its temporary multiprocess directory goes
    temp_root.mkdir()
    redis.Redis.from_url(redis_url).flushdb()
    simulator.reset()
    config = write_config(
        tmp / "config.yaml",
        simulator,
        redis_url,
        tenants={TENANT: {"cost_per_day_usd": str(COST_LIMIT_USD), "tokens_per_day": TOKENS_LIMIT}},
    )
    port = _free_port()
    env = worker_env(config, redis_url, LLM_ORCH_METRICS_PORT=str(port), TMPDIR=str(temp_root))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the documented default: unset
    worker = WorkerProcess(env, tmp, concurrency=2, queues="llm.interactive")
    celery = Path(sys.executable).with_name("celery")
    worker.args = [str(celery), *worker.args[3:]]  # `celery -A worker.app worker ...`, not `python -m celery`
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    worker.start(celery_app)
    try:
        ok = [producer.submit_completion(f"question {i}", tenant=TENANT) for i in range(OK_JOBS)]
        ok_results = [job.get(timeout=60) for job in ok]
        # then, alone (so its settle is the tenant's latest): claude-haiku-5-5 answers 503 twice
        # (a retry), the job falls back to claude-sonnet-5-5
        simulator.add_fault(provider="anthropic", model=HAIKU["model"], status=503, count=2)
        fallback = producer.submit_completion("question 5", provider="anthropic", tenant=TENANT).get(timeout=60)
        assert [r["status"] for r in [*ok_results, fallback]] == ["succeeded"] * (OK_JOBS + 1), worker.log()
        yield {"worker": worker, "port": port, "temp_root": temp_root, "ok_results": ok_results, "fallback": fallback}
    finally:
        worker.stop()
        simulator.reset()


def test_per_call_series_appear_with_the_right_counts(default_worker):
    samples = scrape(default_worker["port"])
    ok_results, fallback = default_worker["ok_results"], default_worker["fallback"]
    assert {r["model"] for r in ok_results} == {OPENAI["model"]} and fallback["model"] == SONNET["model"]
    assert sample(samples, "llm_orch_requests_total", **OPENAI, outcome="ok") == OK_JOBS
    assert sample(samples, "llm_orch_request_latency_seconds_count", **OPENAI, outcome="ok") == OK_JOBS
    assert sample(samples, "llm_orch_request_latency_seconds_bucket", **OPENAI, outcome="ok", le="+Inf") == OK_JOBS
    assert sample(samples, "llm_orch_tokens_total", **OPENAI, kind="prompt") == sum(
        r["cost"]["prompt_tokens"] for r in ok_results
    )
    assert sample(samples, "llm_orch_cost_micro_usd_total", **OPENAI, tenant=TENANT) == sum(
        to_micros(Decimal(r["cost"]["usd"])) for r in ok_results
    )
    # the anthropic job: two 503s on haiku (the second a retry), one fallback, sonnet answers
    assert sample(samples, "llm_orch_requests_total", **HAIKU, outcome="error") == 2
    assert sample(samples, "llm_orch_errors_total", **HAIKU, error_type="ServerError") == 2
    assert sample(samples, "llm_orch_retries_total", **HAIKU) == 1
    assert (
        sample(
            samples,
            "llm_orch_fallbacks_total",
            provider="anthropic",
            from_model=HAIKU["model"],
            to_model=SONNET["model"],
            reason="ServerError",
        )
        == 1
    )
    assert sample(samples, "llm_orch_requests_total", **SONNET, outcome="ok") == 1
    assert sample(samples, "llm_orch_breaker_state", **OPENAI) == 0  # closed
    assert sample(samples, "llm_orch_queue_depth", queue="llm.interactive") == 0


def test_tenant_budget_gauges_hold_todays_share_of_each_limit(default_worker):
    samples = scrape(default_worker["port"])
    results = [*default_worker["ok_results"], default_worker["fallback"]]
    spent = sum(to_micros(Decimal(r["cost"]["usd"])) for r in results)
    tokens = sum(r["cost"]["prompt_tokens"] + r["cost"]["completion_tokens"] for r in results)
    cost_ratio = sample(samples, "llm_orch_tenant_budget_used_ratio", tenant=TENANT, limit="cost_per_day_usd")
    assert cost_ratio == pytest.approx(spent / to_micros(COST_LIMIT_USD)) and 0 < cost_ratio < 1
    assert sample(samples, "llm_orch_tenant_budget_used_ratio", tenant=TENANT, limit="tokens_per_day") == (
        pytest.approx(tokens / TOKENS_LIMIT)
    )
    midnight = calendar.timegm((*time.gmtime()[:3], 0, 0, 0, 0, 0, 0))
    assert (
        sample(samples, "llm_orch_tenant_budget_day_timestamp_seconds", tenant=TENANT, limit="cost_per_day_usd")
        == midnight
    )


def test_a_refused_call_shows_its_limit_as_used_up():
    """In this process (prometheus_client's default registry): a refusal sets the ratio to at least 1."""
    from prometheus_client import REGISTRY

    from llm_orchestrator.exceptions import BudgetExceededError
    from llm_orchestrator.providers.base import LLMResponse
    from llm_orchestrator.resilience.budgets import TenantBudgets, TenantLimit

    budgets = TenantBudgets({"refused-tenant": TenantLimit(tokens_per_day=100)})
    answer = LLMResponse(
        content="",
        provider="openai",
        model="gpt-6-luna",
        finish_reason="stop",
        prompt_tokens=30,
        completion_tokens=30,
        total_tokens=60,
    )
    budgets.settle(budgets.reserve("refused-tenant", "openai", "gpt-6-luna", 30, 10), answer)
    labels = {"tenant": "refused-tenant", "limit": "tokens_per_day"}
    assert REGISTRY.get_sample_value("llm_orch_tenant_budget_used_ratio", labels) == 0.6
    with pytest.raises(BudgetExceededError):
        budgets.reserve("refused-tenant", "openai", "gpt-6-luna", 50, 10)  # 60 + 50 > 100
    assert REGISTRY.get_sample_value("llm_orch_tenant_budget_used_ratio", labels) == 1.0
    assert REGISTRY.get_sample_value("llm_orch_tenant_budget_day_timestamp_seconds", labels) == (
        calendar.timegm(time.strptime(budgets.day(), "%Y%m%d"))
    )


def test_serving_line_is_logged_with_the_temporary_directory(default_worker):
    log = default_worker["worker"].log_path.read_text(errors="replace")
    [(port, directory)] = SERVING.findall(log)
    assert int(port) == default_worker["port"]
    assert Path(directory).parent == default_worker["temp_root"] and Path(directory).name.startswith(
        "llmorch-prometheus-"
    )
    assert any(Path(directory).glob("*.db"))  # the children's metric files


def test_every_metric_the_rules_and_dashboard_read_is_served(default_worker):
    served = {name for name, _ in scrape(default_worker["port"])}
    referenced = referenced_metric_names()
    assert {
        "llm_orch_requests_total",
        "llm_orch_request_latency_seconds_bucket",
        "llm_orch_tenant_budget_used_ratio",
    } <= referenced
    assert referenced - served == set()


def test_a_taken_port_stops_the_worker_and_leaves_no_directory(simulator, redis_url, tmp_path):
    import socket

    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = worker_env(config, redis_url, LLM_ORCH_METRICS_PORT=str(port), TMPDIR=str(temp_root))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        worker = WorkerProcess(env, tmp_path, concurrency=1, queues="llm.interactive").launch()
        try:
            assert worker.proc is not None and worker.proc.wait(60) != 0
        finally:
            worker.stop()
    assert f"cannot serve Prometheus metrics on port {port} (LLM_ORCH_METRICS_PORT): Address already in use" in (
        worker.log()
    )
    assert list(temp_root.glob("llmorch-prometheus-*")) == []


def test_a_port_that_is_not_a_number_stops_the_worker(simulator, redis_url, tmp_path):
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    worker = WorkerProcess(
        worker_env(config, redis_url, LLM_ORCH_METRICS_PORT="nine"), tmp_path, concurrency=1, queues="llm.interactive"
    ).launch()
    try:
        assert worker.proc is not None and worker.proc.wait(60) != 0
    finally:
        worker.stop()
    assert "LLM_ORCH_METRICS_PORT must be a port number (0 = off), not 'nine'" in worker.log()


def test_stopping_the_worker_removes_its_temporary_directory(default_worker):
    """Runs last in this module: it stops the module's worker."""
    worker = default_worker["worker"]
    [(_, directory)] = SERVING.findall(worker.log_path.read_text(errors="replace"))
    assert Path(directory).is_dir()
    worker.stop()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log()
    assert not Path(directory).exists()
    assert list(default_worker["temp_root"].glob("llmorch-prometheus-*")) == []
