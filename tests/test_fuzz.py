"""Bad input everywhere: random configs, payloads and model answers give typed errors, never crashes."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llm_orchestrator import ConfigManager
from llm_orchestrator.classification.cache import normalise
from llm_orchestrator.exceptions import ConfigError
from tasks.payloads import BatchPayload, CompletionPayload, RollupPayload, SignalPayload
from tests.worker_fixtures import stack  # noqa: F401 - fixture

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "active_provider",
        "active_model",
        "providers",
        "retry",
        "breaker",
        "redis",
        "cost_tracking",
        "classification",
        "tenants",
        "openai",
        "api_key",
        "cascade",
        "batch_size",
        "timeout",
        "x",
    ]
)
CONFIGS = st.recursive(SCALARS, lambda inner: st.dictionaries(KEYS, inner, max_size=6), max_leaves=25)


def _valid() -> dict:
    return {
        "active_provider": "openai",
        "active_model": "m",
        "providers": {"openai": {"api_key": "sk-fuzz-0000000000"}},
    }


@FUZZ
@given(CONFIGS)
def test_config_from_any_mapping_is_valid_or_a_config_error(data):
    try:
        ConfigManager.from_dict(data if isinstance(data, dict) else {"x": data}, env={})
    except ConfigError as e:
        assert "sk-fuzz" not in str(e)


@FUZZ
@given(st.text(alphabet=string.printable, max_size=300))
def test_config_from_any_yaml_text_is_valid_or_a_config_error(text):
    try:
        ConfigManager.parse(text, env={})
    except ConfigError:
        pass


@FUZZ
@given(KEYS, VALUES)
def test_one_bad_field_in_a_good_config_names_the_field(key, value):
    data = _valid()
    data[key] = value
    try:
        ConfigManager.from_dict(data, env={})
    except ConfigError as e:
        assert "sk-fuzz" not in str(e)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), VALUES, max_size=6) | VALUES)
def test_any_payload_is_accepted_or_a_validation_error(payload):
    for schema in (CompletionPayload, SignalPayload, BatchPayload, RollupPayload):
        try:
            schema.model_validate(payload)
        except ValidationError:
            pass


@FUZZ
@given(st.text(max_size=200))
def test_cache_normalisation_is_idempotent(text):
    assert normalise(normalise(text)) == normalise(text)


def test_yaml_with_python_tags_is_refused():
    with pytest.raises(ConfigError):
        ConfigManager.parse("!!python/object/apply:os.system ['true']", env={})
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_a_pickle_message_is_refused_by_the_worker(stack):
    """Only JSON is accepted: a pickled task body is never unpickled (it could run code)."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    app = stack["app"]
    app.conf.accept_content = ["json", "pickle"]  # the producer side only, to be able to send one
    try:
        job = app.send_task("llm.noop", kwargs={"payload": {}}, serializer="pickle")
        with pytest.raises(CeleryTimeout):
            job.get(timeout=5)
    finally:
        app.conf.accept_content = ["json"]
    assert "ContentDisallowed" in stack["worker"].log() or "disallowed" in stack["worker"].log().lower()
