"""`llm-orch stats`: numbers over a time window from Redis (ledger rows + the stats stream)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import yaml

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.cli import main
from llm_orchestrator.exceptions import AllFallbacksFailedError, InvalidRequestError
from llm_orchestrator.observability.stats import MAX_EVENTS, STATS_TTL_SECONDS, parse_window, percentile
from llm_orchestrator.resilience.keys import STATS_EVENTS
from tests.conftest import make_config

FAST_RETRY = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.02, "deadline": 20, "max_inline_wait": 2}


def setup(sim, redis_url, tmp_path, **extra):
    extra.setdefault("retry", FAST_RETRY)
    cfg = make_config(sim, "openai", redis={"url": redis_url}, **extra)
    path = tmp_path / "stats.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), LLMOrchestrator(ConfigManager.from_dict(cfg).config)


def stats_json(path, capsys, since="1h"):
    capsys.readouterr()
    assert main(["--config", path, "stats", "--since", since, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_json_counts_calls_failures_fallbacks_costs(sim, redis_url, redis_client, tmp_path, capsys):
    path, o = setup(sim, redis_url, tmp_path)
    acme = [o.send_request(f"hello {i}", tenant="acme") for i in range(2)]
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503, count=2)
    beta = o.send_request("hello beta", tenant="beta")  # luna fails twice, falls back to sol
    sim.add_fault(provider="openai", status=400, count=1)
    with pytest.raises(InvalidRequestError):
        o.send_request("bad request", tenant="acme")
    assert beta.model == "gpt-6-sol"

    s = stats_json(path, capsys)
    assert s["calls"] == {"total": 6, "ok": 3, "error": 3}
    assert s["errors"] == {"ServerError": 2, "InvalidRequestError": 1}
    assert s["fallbacks"] == {"total": 1, "by_reason": {"ServerError": 1}}
    assert s["breaker_opens"] == {"total": 0, "by_model": {}}
    lat = s["latency_ms"]
    assert lat["count"] == 3 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    cost = s["cost_usd"]
    assert Decimal(cost["by_tenant"]["acme"]) == sum(r.cost_usd for r in acme)
    assert Decimal(cost["by_tenant"]["beta"]) == beta.cost_usd
    assert Decimal(cost["by_model"]["openai/gpt-6-luna"]) == sum(r.cost_usd for r in acme)
    assert Decimal(cost["by_model"]["openai/gpt-6-sol"]) == beta.cost_usd
    assert Decimal(cost["total"]) == sum(r.cost_usd for r in [*acme, beta])
    assert s["tokens"]["prompt"] == sum(r.prompt_tokens for r in [*acme, beta])
    assert 0 <= s["cache_hit_rate"] <= 1
    assert s["window"]["seconds"] == 3600 and not s["window"]["truncated"]


def test_breaker_opens_are_counted(sim, redis_url, redis_client, tmp_path, capsys):
    path, o = setup(
        sim,
        redis_url,
        tmp_path,
        retry={**FAST_RETRY, "max_attempts": 1},
        fallbacks=[],
        breaker={"min_calls": 2, "failure_rate": 0.5, "open_seconds": 30},
    )
    sim.add_fault(provider="openai", status=503)
    for _ in range(3):
        with pytest.raises(AllFallbacksFailedError):
            o.send_request("hello")
    s = stats_json(path, capsys)
    assert s["breaker_opens"] == {"total": 1, "by_model": {"openai/gpt-6-luna": 1}}
    assert s["calls"]["error"] == 2  # the third request was refused by the open breaker: no provider call
    assert s["errors"] == {"ServerError": 2}


def test_events_and_rows_outside_the_window_are_left_out(sim, redis_url, redis_client, tmp_path, capsys):
    path, o = setup(sim, redis_url, tmp_path)
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    redis_client.xadd(
        STATS_EVENTS.format(prefix="llmorch:"),
        {"kind": "fallback", "provider": "openai", "model": "gpt-6-luna", "error": "ServerError"},
        id=f"{two_hours_ago}-0",
    )
    o.send_request("hello")
    assert stats_json(path, capsys, "1h")["fallbacks"]["total"] == 0
    assert stats_json(path, capsys, "24h")["fallbacks"]["total"] == 1
    assert stats_json(path, capsys, "7d")["calls"]["total"] == 1


def test_stats_stream_is_bounded(sim, redis_url, redis_client, tmp_path):
    _, o = setup(sim, redis_url, tmp_path)
    o.send_request("hello")
    key = STATS_EVENTS.format(prefix="llmorch:")
    assert 0 < redis_client.ttl(key) <= STATS_TTL_SECONDS
    assert redis_client.xlen(key) == 1 and MAX_EVENTS >= 10_000


def test_stats_table(sim, redis_url, redis_client, tmp_path, capsys):
    path, o = setup(sim, redis_url, tmp_path)
    sim.add_fault(provider="openai", model="gpt-6-luna", status=503, count=2)
    o.send_request("hello", tenant="acme")
    capsys.readouterr()
    assert main(["--config", path, "stats", "--since", "24h"]) == 0
    out = capsys.readouterr().out
    for text in (
        "p50",
        "p95",
        "p99",
        "openai/gpt-6-sol",
        "acme",
        "ServerError",
        "fallbacks",
        "breaker opens",
        "cache hit rate",
    ):
        assert text in out, text


def test_stats_needs_redis_and_a_valid_window(sim, tmp_path, capsys):
    path = tmp_path / "noredis.yaml"
    path.write_text(yaml.safe_dump(make_config(sim, "openai")))
    assert main(["--config", str(path), "stats"]) == 1
    assert "redis.url" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", str(path), "stats", "--since", "yesterday"])


def test_window_and_percentile_helpers():
    assert [parse_window(w) for w in ("90s", "15m", "1h", "24h", "7d")] == [90, 900, 3600, 86400, 604800]
    with pytest.raises(ValueError):
        parse_window("1w")
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
