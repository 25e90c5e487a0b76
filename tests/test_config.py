"""ConfigManager: every error names the file, the field and the problem — never a secret."""

from __future__ import annotations

import pytest

from llm_orchestrator.config import ConfigManager
from llm_orchestrator.exceptions import ConfigError

GOOD = """
active_provider: openai
active_model: gpt-6-luna
providers:
  openai:
    api_key: ${OPENAI_API_KEY}
    base_url: ${OPENAI_BASE_URL:-}
    fallback_models: [gpt-6-sol, gpt-5.6-luna]
cost_tracking: {enabled: true, log_path: costs.csv}
redis: {url: "${REDIS_URL:-redis://127.0.0.1:6379/0}"}
"""
SECRET = "sk-live-canary-0123456789abcdef"


def load(tmp_path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return ConfigManager.load(path, env={"OPENAI_API_KEY": SECRET} if env is None else env)


def test_valid_file_resolves_env_and_defaults(tmp_path):
    cfg = load(tmp_path, GOOD).config
    assert cfg.active_provider == "openai"
    assert cfg.provider.api_key.get_secret_value() == SECRET
    assert cfg.provider.base_url is None  # ${OPENAI_BASE_URL:-} → empty → None
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"
    assert cfg.model_chain() == ["gpt-6-luna", "gpt-6-sol", "gpt-5.6-luna"]
    assert cfg.model_chain("gpt-6-sol") == ["gpt-6-sol", "gpt-5.6-luna"]
    assert cfg.retry.max_attempts == 3 and cfg.breaker.min_calls == 20


def test_default_with_value_and_env_override(tmp_path):
    text = GOOD.replace("${OPENAI_BASE_URL:-}", "${OPENAI_BASE_URL:-http://sim/openai/v1}")
    assert load(tmp_path, text).config.provider.base_url == "http://sim/openai/v1"
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://other/v1"}
    assert load(tmp_path, text, env).config.provider.base_url == "http://other/v1"


def test_secret_never_in_repr_or_str(tmp_path):
    cfg = load(tmp_path, GOOD).config
    for text in (repr(cfg), str(cfg), repr(cfg.provider), cfg.model_dump_json()):
        assert SECRET not in text


def test_missing_env_var_names_variable_not_value(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD, env={})
    msg = str(e.value)
    assert "OPENAI_API_KEY" in msg and "providers.openai.api_key" in msg and "config.yaml" in msg


def test_error_from_other_field_does_not_leak_secret(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace("active_model: gpt-6-luna", "active_model: ''"))
    assert "active_model" in str(e.value) and SECRET not in str(e.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("active_provider: openai", "active_provider: mistral"), "active_provider"),
        (("active_provider: openai", "active_provider: gemini"), "has no entry under providers"),
        (("active_model: gpt-6-luna", "active_model: '  '"), "active_model: is empty"),
        (("  openai:\n", "  cohere:\n    api_key: x\n  openai:\n"), "unknown provider 'cohere'"),
        (("cost_tracking:", "cost_trackign:"), "cost_trackign: unknown key"),
        (("    fallback_models:", "    fallbak_models:"), "providers.openai.fallbak_models: unknown key"),
        (("[gpt-6-sol, gpt-5.6-luna]", "[gpt-6-sol, '']"), "empty model name"),
        (("enabled: true", "enabled: maybe"), "cost_tracking.enabled"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, edit, expected):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace(*edit))
    assert expected in str(e.value)
    assert "config.yaml" in str(e.value)


def test_empty_api_key_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="providers.openai.api_key: is empty"):
        load(tmp_path, GOOD, env={"OPENAI_API_KEY": ""})


def test_bad_yaml_gives_line_number(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid YAML at line 2, column \d+: mapping values"):
        load(tmp_path, "active_provider: openai\nactive_model: a: b\n")


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(tmp_path, "- a\n- b\n")


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        ConfigManager.load(tmp_path / "nope.yaml")


def test_path_from_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("LLM_ORCH_CONFIG", str(path))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert ConfigManager.load().path == str(path)


def test_from_dict_and_nested_extension_blocks():
    data = {
        "active_provider": "anthropic",
        "active_model": "claude-haiku-5-5",
        "providers": {"anthropic": {"api_key": "${K}", "timeout": {"connect": 1, "read": 2}}},
        "retry": {"max_attempts": 5, "deadline": 30},
        "breaker": {"min_calls": 5, "failure_rate": 0.25},
    }
    cfg = ConfigManager.from_dict(data, env={"K": "secret"}).config
    assert cfg.provider.timeout.read == 2 and cfg.retry.max_attempts == 5 and cfg.breaker.failure_rate == 0.25
    with pytest.raises(ConfigError, match="breaker.failure_rate"):
        ConfigManager.from_dict({**data, "breaker": {"failure_rate": 1.5}}, env={"K": "s"})


def test_example_configs_in_repo_are_valid(monkeypatch):
    from pathlib import Path

    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "k")
    for path in sorted(Path(__file__).resolve().parent.parent.joinpath("config").glob("*.yaml")):
        ConfigManager.load(path)
