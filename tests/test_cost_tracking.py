"""Exact money: prices, cached/cache-write arithmetic, the exactly-once ledger, CSV, rollup."""

from __future__ import annotations

import csv
import logging
import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from llm_orchestrator.config.manager import CostTrackingConfig, ProviderConfig
from llm_orchestrator.cost_tracker import CSV_COLUMNS, CostRecord, CostTracker
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.pricing import from_micros, load_prices, to_micros
from llm_orchestrator.providers.base import Message, RequestOptions, Usage
from llm_orchestrator.providers.registry import build_adapter
from tests.conftest import PROVIDERS, STATES
from tests.conftest import state_of as _state

CFG = CostTrackingConfig(enabled=True, log_path=None)


@pytest.fixture(params=STATES)
def tracker(request):
    """The same tests on memory, a single Redis and a Redis Cluster."""
    return CostTracker(CFG, redis=_state(request))


def test_plain_price_arithmetic():
    t = CostTracker(CFG)
    cost = t.price(Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000), "openai", "gpt-6-luna")
    assert cost == Decimal("0.10") + Decimal("0.50")


def test_cached_and_cache_write_tokens_priced_separately():
    t = CostTracker(CFG)
    usage = Usage(prompt_tokens=10_000, completion_tokens=500, cached_tokens=6_000, cache_write_tokens=2_000)
    # haiku-5-5: input 0.10, cached 0.01, write 0.125, output 0.50 per 1M
    expected = (
        Decimal(2_000) * Decimal("0.10") + 6_000 * Decimal("0.01") + 2_000 * Decimal("0.125") + 500 * Decimal("0.50")
    ) / 1_000_000
    assert t.price(usage, "anthropic", "claude-haiku-5-5") == expected


def test_batch_price_and_long_context_tier():
    t = CostTracker(CFG)
    u = Usage(prompt_tokens=1000, completion_tokens=1000)
    assert t.price(u, "gemini", "gemini-3.8-flash", batch=True) == t.price(u, "gemini", "gemini-3.8-flash") / 2
    big = Usage(prompt_tokens=200_000, completion_tokens=0)
    assert t.price(big, "anthropic", "claude-haiku-5-5") == Decimal("0.10")  # 200k × 0.50 / 1M


def test_unknown_model_is_unknown_not_zero(caplog):
    t = CostTracker(CFG)
    with caplog.at_level(logging.WARNING):
        r1 = t.log_usage(Usage(10, 10), provider="openai", model="gpt-unknown")
        t.log_usage(Usage(10, 10), provider="openai", model="gpt-unknown")
    assert r1.cost_usd is None and r1.to_row()["cost_usd"] == ""
    assert sum("no price" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_costs_from_real_simulator_responses(sim, provider):
    model = {"openai": "gpt-6-luna", "anthropic": "claude-haiku-5-5", "gemini": "gemini-3.5-flash-lite"}[provider]
    adapter = build_adapter(provider, ProviderConfig(api_key="k", base_url=sim.base_url(provider)))
    msgs = [Message("system", "You classify product feedback. " * 200), Message("user", "hello")]
    t = CostTracker(CFG)
    records = [
        t.log_usage(adapter.generate(msgs, model, RequestOptions(max_tokens=50, cache_system=True))) for _ in range(2)
    ]
    assert records[1].cached_tokens > 0 and records[1].cost_usd < records[0].cost_usd
    price = t.prices[(provider, model)].rates
    r = records[1]
    expected = (
        (r.prompt_tokens - r.cached_tokens - r.cache_write_tokens) * price.input
        + r.cached_tokens * price.cached_input
        + r.cache_write_tokens * price.cache_write
        + r.completion_tokens * price.output
    ) / 1_000_000
    assert r.cost_micros == to_micros(expected)


def test_user_pricing_file_overrides_and_adds(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        "openai:\n  my-model: {input: '1', cached_input: '0.1', cache_write: '1', output: '2'}\n"
        "  gpt-6-luna: {input: '9', cached_input: '0.9', cache_write: '9', output: '9'}\n"
    )
    prices = load_prices(path)
    assert prices[("openai", "my-model")].rates.output == Decimal(2)
    assert prices[("openai", "gpt-6-luna")].rates.input == Decimal(9)
    path.write_text("openai:\n  bad: {input: '1'}\n")
    with pytest.raises(ConfigError, match="openai.bad"):
        load_prices(path)


def test_ledger_writes_once_per_job_attempt(tracker):
    u = Usage(100, 50)
    first = tracker.log_usage(u, provider="openai", model="gpt-6-luna", job_id="job-1", attempt=0, session_id="s")
    again = tracker.log_usage(u, provider="openai", model="gpt-6-luna", job_id="job-1", attempt=0, session_id="s")
    retry = tracker.log_usage(u, provider="openai", model="gpt-6-luna", job_id="job-1", attempt=1, session_id="s")
    assert again.row_id == first.row_id and retry.row_id != first.row_id
    assert len(tracker.records()) == 2
    assert tracker.get_session_cost("s") == first.cost_usd + retry.cost_usd


def test_pending_marker_makes_a_crash_visible(tracker):
    tracker.begin("job-crash", 0)  # the process dies here, after calling the provider
    assert "job-crash:0" in tracker.pending(older_than=0)
    tracker.log_usage(Usage(1, 1), provider="openai", model="gpt-6-luna", job_id="job-crash", attempt=0)
    assert tracker.pending(older_than=0) == {}


def _duplicate_writer(url: str, barrier, out) -> None:
    t = CostTracker(CFG, redis=redis.Redis.from_url(url))
    barrier.wait()
    rec = t.log_usage(Usage(100, 50), provider="openai", model="gpt-6-luna", job_id="dup-job", attempt=0)
    out.put(rec.row_id)


def test_concurrent_duplicate_writes_from_processes_give_one_row(redis_url, redis_client):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_duplicate_writer, args=(redis_url, barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    row_ids = {out.get(timeout=5) for _ in procs}
    assert len(row_ids) == 1
    assert len(CostTracker(CFG, redis=redis_client).records()) == 1


def test_csv_log_columns_and_round_trip(tmp_path, tracker):
    tracker.log_path = str(tmp_path / "costs.csv")
    recs = [
        tracker.log_usage(
            Usage(1000 + i, 10, cached_tokens=i),
            provider="anthropic",
            model="claude-haiku-5-5",
            session_id="s",
            tenant="acme",
        )
        for i in range(5)
    ]
    rows = list(csv.DictReader(Path(tracker.log_path).read_text(encoding="utf-8").splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 5
    assert [Decimal(r["cost_usd"]) for r in rows] == [r.cost_usd for r in recs]
    out = tmp_path / "export.csv"
    assert tracker.export_csv(out) == 5
    back = [
        CostRecord.from_row({**r, "ts": "0"})
        for r in csv.DictReader(Path(out).read_text(encoding="utf-8").splitlines())
    ]
    assert [b.cost_micros for b in back] == [r.cost_micros for r in recs]
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert tracker.export_csv(out, since=future) == 0


def _csv_appender(path: str, n: int) -> None:
    t = CostTracker(CostTrackingConfig(enabled=True, log_path=path))
    for _ in range(n):
        t.log_usage(Usage(10, 10), provider="openai", model="gpt-6-luna", request_id="x" * 200)


def test_csv_appends_from_several_processes_never_tear(tmp_path):
    path = str(tmp_path / "shared.csv")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_csv_appender, args=(path, 200)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    rows = list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 800 and all(r["request_id"] == "x" * 200 for r in rows)


def test_rollup_is_exact_and_idempotent(tracker):
    for i in range(30):
        tracker.log_usage(Usage(1000 + i, 100), provider="openai", model="gpt-6-luna", tenant="acme" if i % 2 else "")
    today = datetime.now(timezone.utc).date()
    rows = tracker.rollup(today)
    assert rows == tracker.rollup(today)
    assert sum(r["requests"] for r in rows) == 30
    total = sum(Decimal(r["cost_usd"]) for r in rows)
    assert total == sum((r.cost_usd for r in tracker.records()), Decimal(0))


def test_integer_micros_stay_exact_over_a_million_records():
    t = CostTracker(CFG)
    price = t.prices[("openai", "gpt-6-luna")]
    micros = to_micros(price.cost(Usage(3, 1)))  # 3 × 0.10 + 1 × 0.50 per 1M = 0.0000008 → 1 µ$
    assert micros == 1
    total = sum(micros for _ in range(1_000_000))
    assert from_micros(total) == Decimal("1.000000")
    assert float(sum(0.0000008 for _ in range(1000))) != 0.0008  # floats would drift; we never use them
