"""Model registry: discovery through the real adapters, deprecation, filtering, caching."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_orchestrator.config.manager import ProviderConfig
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.models.registry import ModelRegistry
from llm_orchestrator.providers.registry import build_adapter
from tests.conftest import MODELS, PROVIDERS

PACKAGE = Path(__file__).resolve().parent.parent / "llm_orchestrator"


def registry(sim, client=None) -> ModelRegistry:
    adapters = {p: build_adapter(p, ProviderConfig(api_key="k", base_url=sim.base_url(p))) for p in PROVIDERS}
    return ModelRegistry(adapters, redis=client)


def test_refresh_lists_all_pages_without_tuned_or_non_chat(sim):
    found = registry(sim).refresh_models()
    for p in PROVIDERS:
        assert sorted(m.id for m in found[p]) == sorted(MODELS[p])
    ids = {m.id for ms in found.values() for m in ms}
    assert not any(i.startswith(("ft:", "tunedModels/")) or "embedding" in i for i in ids)


def test_removed_model_is_deprecated_not_deleted_and_comes_back(sim, caplog):
    reg = registry(sim)
    reg.refresh_models("openai")
    first_seen = reg.get("openai", "gpt-5.6-luna").discovered_at
    sim.set_models("openai", remove=["gpt-5.6-luna"])
    reg.refresh_models("openai")
    info = reg.get("openai", "gpt-5.6-luna")
    assert info.deprecated and info.discovered_at == first_seen
    assert "gpt-5.6-luna" not in {m.id for m in reg.list_models("openai")}
    assert "gpt-5.6-luna" in {m.id for m in reg.list_models("openai", include_deprecated=True)}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        reg.check_model("openai", "gpt-5.6-luna")
        reg.check_model("openai", "gpt-5.6-luna")
    assert sum("deprecated" in r.message for r in caplog.records) == 1
    sim.set_models("openai", add=["gpt-5.6-luna"])
    reg.refresh_models("openai")
    assert not reg.get("openai", "gpt-5.6-luna").deprecated


def test_new_model_is_discovered(sim):
    reg = registry(sim)
    reg.refresh_models("anthropic")
    sim.set_models("anthropic", add=["claude-opus-6-0"])
    reg.refresh_models("anthropic")
    assert reg.get("anthropic", "claude-opus-6-0") is not None


def test_reads_never_call_the_provider(sim):
    reg = registry(sim)
    reg.refresh_models()
    sim.reset_stats()
    for _ in range(10):
        reg.list_models()
        reg.check_model("gemini", "gemini-3.8-flash")
    assert sim.count() == 0


def test_unknown_model_error_lists_close_matches(sim):
    reg = registry(sim)
    reg.check_model("openai", "anything")  # no data yet: nothing to validate against
    reg.refresh_models("openai")
    with pytest.raises(ConfigError, match="gpt-6-luna"):
        reg.check_model("openai", "gpt-6-lun")


def test_redis_cache_survives_a_new_process(sim, redis_url, redis_client):
    reg = registry(sim, redis_client)
    reg.refresh_models()
    code = (
        "import redis; from llm_orchestrator.models.registry import ModelRegistry\n"
        f"r = ModelRegistry({{'openai': None, 'anthropic': None, 'gemini': None}}, redis=redis.Redis.from_url('{redis_url}'))\n"
        "print(len(r.list_models()), r.refreshed_at('openai') is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.split()
    assert out == [str(sum(len(m) for m in MODELS.values())), "True"]


def test_no_hardcoded_model_names_in_the_package():
    pattern = re.compile(r"[\"'](gpt-|claude-|gemini-)[0-9a-z.\-]+[\"']")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "simulator" in path.parts:
            continue  # the simulator plays the providers: it lists their models
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}")
    assert offenders == []


def test_refreshing_an_unconfigured_provider_is_a_config_error(sim):
    with pytest.raises(ConfigError, match="not configured"):
        registry(sim).refresh_models("mistral")


def test_unreachable_redis_skips_validation_instead_of_failing(sim, caplog):
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reg = registry(sim, client)
    with caplog.at_level(logging.WARNING):
        reg.check_model("openai", "anything-at-all")  # no data reachable: the request goes on
        assert reg.list_models("openai") == [] and reg.refreshed_at("openai") is None
    assert "skipping model validation" in caplog.text


def test_model_info_round_trips_through_dict(sim):
    from llm_orchestrator.models.registry import ModelInfo

    reg = registry(sim)
    reg.refresh_models("gemini")
    info = reg.get("gemini", "gemini-3.8-flash")
    assert ModelInfo.from_dict(info.to_dict()) == info and reg.has_data("gemini")


def test_an_orchestrators_registry_refreshes_every_configured_provider_with_its_own_adapter(sim):
    from llm_orchestrator import LLMOrchestrator
    from llm_orchestrator.config.manager import ConfigManager
    from tests.conftest import make_config

    cfg = make_config(sim, "openai")
    cfg["providers"]["gemini"]["api_key"] = "sk-invalid-gemini"  # only gemini's own adapter sends this key
    orch = LLMOrchestrator(ConfigManager.from_dict(cfg).config)
    found = orch.registry.refresh_models("anthropic")
    assert sorted(m.id for m in found["anthropic"]) == sorted(MODELS["anthropic"])
    from llm_orchestrator.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        orch.registry.refresh_models("gemini")
    assert sorted(m.id for m in orch.registry.refresh_models("openai")["openai"]) == sorted(MODELS["openai"])
