"""Classification through real Celery workers: ``llm.classify_batch`` and ``classify --via worker``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis

from llm_orchestrator.cli import main
from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from tests.conftest import ROOT
from tests.worker_fixtures import stack  # noqa: F401 - fixture


def test_batch_job_answers_every_signal_and_its_cost_matches_the_ledger(stack, sim, redis_url):
    rows = [json.loads(line) for line in (ROOT / "data" / "signals_sample.jsonl").read_text().splitlines()[:40]]
    signals = [{"id": r["id"], "text": r["text"]} for r in rows]
    handle = stack["producer"].submit_classification_batch(signals, tenant="acme")
    result = handle.get(timeout=120)
    assert result["status"] == "succeeded", result
    assert [r["id"] for r in result["results"]] == [s["id"] for s in signals]
    llm = [r for r in result["results"] if r["stage"] == "llm"]
    assert llm and sim.count(status=200) < len(llm)  # several signals per call
    assert sum(Decimal(r["cost_usd"]) for r in result["results"]) == Decimal(result["cost"]["usd"])
    rows_of_job = [
        r
        for r in CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url)).records()
        if r.job_id.startswith(handle.id + ":")
    ]
    assert len(rows_of_job) == len(result["call_latencies_ms"]) == sim.count(status=200)
    assert sum(r.cost_usd for r in rows_of_job) == Decimal(result["cost"]["usd"])
    assert {r.tenant for r in rows_of_job} == {"acme"}
    assert 0 <= result["cache_hit_rate"] <= 1


def test_cli_via_worker_classifies_the_sample_file(stack, sim, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    sample = ROOT / "data" / "signals_sample.jsonl"
    assert (
        main(["--config", str(stack["config"]), "classify", str(sample), "--output", str(out), "--via", "worker"]) == 0
    )
    text = capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and len({r["id"] for r in rows}) == 80
    assert "accuracy" in text and "per 1,000 signals" in text
    assert (
        main(["--config", str(stack["config"]), "classify", str(sample), "--output", str(out), "--via", "worker"]) == 0
    )  # resumed: nothing left to do
    assert "80 already in" in capsys.readouterr().out


def test_a_bad_batch_payload_fails_clearly(stack):
    result = stack["producer"].submit_classification_batch([{"text": "x", "provider": "openai"}]).get(timeout=30)
    assert result["status"] == "failed" and result["error"]["type"] == "InvalidPayload"
    assert "signals.0.provider" in result["error"]["message"]


def test_batch_lane_job_polls_the_provider_batch_with_countdowns(stack, sim, redis_url):
    sim.set_batch_delay(1500)  # the first look finds the provider batch still running
    signals = [
        {"id": "v1", "text": "The dashboard looks different today"},
        {"id": "v2", "text": "Saw the new colours on the landing page"},
    ]
    result = stack["producer"].submit_classification_batch(signals, lane="batch").get(timeout=120)
    assert result["status"] == "succeeded", result
    assert [r["id"] for r in result["results"]] == ["v1", "v2"]
    assert sim.count(batch=True) >= 1 and sim.count(batch=False) == 0
    rows = [
        r
        for r in CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url)).records()
        if r.job_id.startswith(result["job_id"])
    ]
    assert rows and all(r.batch for r in rows)
    assert sum(r.cost_usd for r in rows) == Decimal(result["cost"]["usd"])


def test_payload_limit_accepts_whatever_the_config_may_send():
    from llm_orchestrator.config.manager import ClassificationConfig
    from tasks.payloads import MAX_SIGNAL_CHARS

    cap = next(m.le for m in ClassificationConfig.model_fields["max_signal_chars"].metadata if hasattr(m, "le"))
    assert cap <= MAX_SIGNAL_CHARS


def test_cli_via_worker_truncates_and_flags_a_long_signal_like_local(stack, sim, tmp_path):
    from tests.test_cli_inputs import llm_orch, neutral, read_jsonl, write_jsonl

    rows = [{"id": f"s{i}", "text": neutral(i)} for i in range(60)]
    rows[50] = {"id": "long", "text": "word " * 5_000}  # 25,000 characters
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = llm_orch("--config", str(stack["config"]), "classify", str(source), "--output", str(out), "--via", "worker")
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: r for r in read_jsonl(out)}
    assert len(got) == 60 and got["long"]["truncated"] and "truncated" in got["long"]["flags"]
    assert not got["s1"]["truncated"]


def test_cli_via_worker_reads_redis_url_from_the_config_not_the_environment(stack, sim, tmp_path):
    from tests.test_cli_inputs import cli_env, llm_orch, read_jsonl

    out = tmp_path / "out.jsonl"
    head = tmp_path / "head.jsonl"
    head.write_text("\n".join((ROOT / "data" / "signals_sample.jsonl").read_text().splitlines()[:12]) + "\n")
    env = cli_env(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    proc = llm_orch(
        "--config", str(stack["config"]), "classify", str(head), "--output", str(out), "--via", "worker", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(out)) == 12


def test_cli_via_worker_without_redis_url_in_the_config_is_one_line(sim, tmp_path):
    from tests.test_cli_inputs import assert_one_line_error, llm_orch, write_config, write_jsonl

    config = write_config(tmp_path, sim)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "hello"}])
    assert_one_line_error(llm_orch("--config", config, "classify", str(source), "--via", "worker"), "redis.url")


def test_cli_via_worker_names_the_signal_and_the_limit_of_a_row_the_worker_would_refuse(sim, redis_url, tmp_path):
    from tests.test_cli_inputs import assert_one_line_error, llm_orch, write_config, write_jsonl

    config = write_config(tmp_path, sim, redis={"url": redis_url})
    long_id = "ticket-" + "9" * 250
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "hello"}, {"id": long_id, "text": "hi"}])
    proc = llm_orch("--config", config, "classify", str(source), "--via", "worker")
    assert_one_line_error(proc, "ticket-999", "200 characters")
    assert sim.count() == 0


@pytest.mark.slow
def test_ctrl_c_via_worker_flushes_what_is_done_and_the_same_command_resumes(stack, sim, tmp_path):
    """Kept last in this module: jobs in flight at Ctrl-C still run on the worker (the resume
    waits behind them), so no later test sees their provider calls."""
    import signal
    import subprocess
    import time

    from tests.test_cli_inputs import LLM_ORCH, interruptible_env, llm_orch, neutral, read_jsonl, write_jsonl

    n = 1600  # 16 jobs of 100 signals; at 300 ms a call, each job takes ~3 s on the 4-process worker
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"w{i}", "text": neutral(i)} for i in range(n)])
    out = tmp_path / "out.jsonl"
    args = ["--config", str(stack["config"]), "classify", str(source), "--output", str(out), "--via", "worker"]
    sim.set_latency("*", 300)
    proc = subprocess.Popen(
        [LLM_ORCH, *args], env=interruptible_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_text().count("\n") > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = read_jsonl(out)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip() == f"interrupted; {len(done)} done, resume with the same command"
    assert 0 < len(done) < n
    sim.set_latency("*", 0)
    again = llm_orch(*args, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(r["id"] for r in read_jsonl(out)) == sorted(f"w{i}" for i in range(n))
