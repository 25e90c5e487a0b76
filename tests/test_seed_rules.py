"""Seed 004's forbidden items, enforced: no fine-tuned model reaches a provider, no hot reload.

And one fidelity rule they sit next to: a reply naming a dated snapshot of the requested alias
keeps that id and is priced at the alias's list price.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from llm_orchestrator.config.manager import ConfigManager
from llm_orchestrator.exceptions import ConfigError, InvalidRequestError
from llm_orchestrator.models.ids import family, is_fine_tuned
from llm_orchestrator.orchestrator import LLMOrchestrator
from tests.conftest import make_config
from tests.worker_fixtures import WorkerProcess, worker_env, write_config

FINE_TUNED = ["ft:gpt-6-luna:acme:signals:abc123", "ft-legacy-davinci", "tunedModels/signals-tuned-1"]


@pytest.mark.parametrize("model_id", FINE_TUNED)
@pytest.mark.parametrize("where", ["active_model", "fallback_models", "default_model", "cascade", "limits"])
def test_fine_tuned_models_are_refused_at_config_load(sim, model_id, where):
    cfg = make_config(sim, "openai")
    block = cfg["providers"]["openai"]
    if where == "active_model":
        cfg["active_model"] = model_id
    elif where == "fallback_models":
        block["fallback_models"] = ["gpt-6-sol", model_id]
    elif where == "default_model":
        block["default_model"] = model_id
    elif where == "cascade":
        cfg["classification"] = {
            "cascade": {"openai": [{"model": "gpt-6-luna", "accept_at": 0.8}, {"model": model_id}]}
        }
    else:
        block["model_rate_limits"] = {model_id: {"rpm": 10}}
    with pytest.raises(ConfigError) as info:
        ConfigManager.from_dict(cfg, source="c.yaml")
    assert "fine-tuned" in str(info.value) and "c.yaml" in str(info.value)


@pytest.mark.parametrize("model_id", FINE_TUNED)
def test_a_fine_tuned_model_per_request_never_reaches_the_provider(sim, model_id):
    o = LLMOrchestrator(ConfigManager.from_dict(make_config(sim, "openai")).config)
    with pytest.raises(InvalidRequestError, match="fine-tuned"):
        o.send_request("hello", model=model_id)
    with pytest.raises(InvalidRequestError, match="fine-tuned"):
        list(o.send_streaming_request("hello", model=model_id))
    assert sim.stats()["requests"] == []


def test_model_id_helpers():
    assert all(is_fine_tuned(m) for m in FINE_TUNED) and not is_fine_tuned("gpt-6-luna")
    assert family("gpt-6-luna-2026-09-22") == "gpt-6-luna"
    assert family("claude-haiku-5-5-20261007") == "claude-haiku-5-5"
    assert family("gemini-1.5-flash-002") == "gemini-1.5-flash"
    assert family("gpt-6-luna") == "gpt-6-luna" and family("gpt-5.6-luna") == "gpt-5.6-luna"


@pytest.mark.parametrize(
    ("provider", "alias", "snapshot"),
    [
        ("openai", "gpt-6-luna", "gpt-6-luna-2026-09-22"),
        ("anthropic", "claude-haiku-5-5", "claude-haiku-5-5-20261007"),
        ("gemini", "gemini-3.5-flash-lite", "gemini-3.5-flash-lite-001"),
    ],
)
def test_a_dated_snapshot_reply_keeps_its_id_and_is_priced_at_its_family(sim, provider, alias, snapshot):
    sim._control("POST", "/_sim/models", {"provider": provider, "snapshots": {alias: snapshot}})
    o = LLMOrchestrator(ConfigManager.from_dict(make_config(sim, provider, model=alias)).config)
    r = o.send_request("hello", max_tokens=16, session_id="snap")
    assert r.model == snapshot
    assert r.cost_usd is not None and r.cost_usd > 0
    price = o.cost_tracker.prices[(provider, alias)]
    assert r.cost_usd == o.cost_tracker.price(r.usage, provider, alias).quantize(Decimal("0.000001"))
    assert price.rates.input > 0
    streamed = list(o.send_streaming_request("hello", max_tokens=16))[-1].response
    assert streamed.model == snapshot and streamed.cost_usd is not None


def test_the_worker_never_re_reads_its_config(sim, redis_url, tmp_path):
    """A prefork child recycled after every task (max-tasks-per-child 1) still runs the config the
    worker started with; the worker logs that config's sha256 at start."""
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    config = write_config(tmp_path / "config.yaml", sim, redis_url)
    worker = WorkerProcess(worker_env(config, redis_url), tmp_path, concurrency=1, queues="llm.interactive")
    worker.args += ["--max-tasks-per-child", "1"]
    worker.start(celery_app)
    try:
        first = producer.submit_completion("before the edit", max_tokens=16).get(timeout=60)
        data = yaml.safe_load(config.read_text())
        data["active_model"] = "gpt-6-sol"  # an edit that would show in the next job if the file were re-read
        config.write_text(yaml.safe_dump(data))
        second = producer.submit_completion("after the edit", max_tokens=16).get(timeout=60)
        assert first["model"] == second["model"] == "gpt-6-luna"
        log = worker.log_path.read_text()
        assert f"sha256 {ConfigManager.load(tmp_path / 'config.yaml').digest}" not in log
        assert log.count("loaded (sha256 ") == 1  # logged once, at start, with the hash of the file as it was
    finally:
        worker.stop()
