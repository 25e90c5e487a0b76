"""`llm-orch` commands against the simulator, as the README shows them."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import yaml

from llm_orchestrator import LLMOrchestrator
from llm_orchestrator.cli import main
from tests.conftest import PROVIDERS, make_config


def write(sim, redis_url, tmp_path):
    cfg = make_config(sim, "openai", redis={"url": redis_url})
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_models_refresh_then_list(sim, redis_url, redis_client, tmp_path, capsys):
    path = write(sim, redis_url, tmp_path)
    assert main(["--config", path, "models", "list"]) == 0
    assert "run `llm-orch models refresh`" in capsys.readouterr().err
    assert main(["--config", path, "models", "refresh"]) == 0
    out = capsys.readouterr().out
    assert all(f"{p}: 3 models" in out for p in PROVIDERS)  # every configured provider
    assert main(["--config", path, "models", "list", "--provider", "openai", "--json"]) == 0
    ids = {m["id"] for m in json.loads(capsys.readouterr().out)}
    assert ids == {"gpt-6-luna", "gpt-6-sol", "gpt-5.6-luna"}
    assert main(["--config", path, "models", "list"]) == 0
    assert "gpt-6-sol" in capsys.readouterr().out


def test_models_list_shows_list_prices_and_a_cost_tier_from_the_price_table(
    sim, redis_url, redis_client, tmp_path, capsys
):
    from llm_orchestrator.pricing import cost_tiers, load_prices

    path = write(sim, redis_url, tmp_path)
    assert main(["--config", path, "models", "refresh", "--provider", "anthropic"]) == 0
    capsys.readouterr()
    assert main(["--config", path, "models", "list", "--provider", "anthropic", "--json"]) == 0
    listed = {m["id"]: m for m in json.loads(capsys.readouterr().out)}
    prices, tiers = load_prices(), cost_tiers(load_prices())
    for model_id, m in listed.items():
        price = prices[("anthropic", model_id)]
        assert m["price_per_1m"] == {
            "input": str(price.rates.input),
            "cached_input": str(price.rates.cached_input),
            "output": str(price.rates.output),
        }
        assert m["cost_tier"] == tiers[("anthropic", model_id)]
    assert {m["cost_tier"] for m in listed.values()} <= {"cheap", "mid", "top"} and len(listed) == 3
    assert len({m["cost_tier"] for m in listed.values()}) == 3  # three models: one per tier
    assert main(["--config", path, "models", "list", "--provider", "anthropic"]) == 0
    table = capsys.readouterr().out
    assert "cost tier" in table and "$/1M in" in table and "cheap" in table and "top" in table


def test_costs_export_rollup_report(sim, redis_url, redis_client, tmp_path, capsys):
    path = write(sim, redis_url, tmp_path)
    orch = LLMOrchestrator.from_yaml(path)
    for i in range(3):
        orch.send_request(f"hello {i}", tenant="acme")
    out = tmp_path / "export.csv"
    assert main(["--config", path, "costs", "export", "--output", str(out)]) == 0
    assert len(list(csv.DictReader(Path(out).read_text(encoding="utf-8").splitlines()))) == 3
    day = datetime.now(timezone.utc).date().isoformat()
    assert main(["--config", path, "costs", "rollup", "--date", day]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert rows[0]["requests"] == 3 and rows[0]["tenant"] == "acme"
    assert main(["--config", path, "costs", "report", "--date", day]) == 0
    assert "gpt-6-luna" in capsys.readouterr().out


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("active_provider: nope\n")
    assert main(["--config", str(path), "models", "list"]) == 2
    assert "config error" in capsys.readouterr().err


def test_classify_sample_file_resumes_and_reports_accuracy(sim, tmp_path, capsys):
    from tests.conftest import ROOT

    cfg = make_config(sim, "openai")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sample = ROOT / "data" / "signals_sample.jsonl"
    out = tmp_path / "out.jsonl"
    lines = sample.read_text().splitlines()
    head = tmp_path / "head.jsonl"
    head.write_text("\n".join(lines[:10]) + "\n")
    assert main(["--config", str(path), "classify", str(head), "--output", str(out)]) == 0
    assert main(["--config", str(path), "classify", str(sample), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and len({r["id"] for r in rows}) == 80  # the second run skipped the first 10
    assert "10 already in" in text and "accuracy" in text and "confusion matrix" in text
    for r in rows:
        assert {"id", "category", "confidence", "evidence", "stage", "model", "cost_usd"} <= set(r)
    llm = [r for r in rows if r["stage"] == "llm"]
    # 10 signals a call: the 80 rows needed far fewer calls than signals sent to a model
    assert 0 < sim.count(status=200) <= len(llm) // 5 + 2
    assert all(r["batched"] for r in llm if r["confidence"] > 0)
    assert "per 1,000 signals" in text and "prompt cache hit rate" in text


def test_classify_rejects_bad_input(sim, tmp_path, capsys):
    cfg = make_config(sim, "openai")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    assert main(["--config", str(path), "classify", str(bad)]) == 2
    assert "needs a string field 'text'" in capsys.readouterr().err
