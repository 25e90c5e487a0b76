"""Canaries: fake API keys and tenant PII go through every path and come out nowhere.

A worker at DEBUG log level runs completions (plain, streamed, failed, retried) and
classifications (single and batch) whose inputs carry an e-mail address, a phone number and a
private phrase, with API keys no redaction pattern would recognise. Afterwards none of them may
appear in the job results, the worker's log, any Redis key or value (Celery messages decoded),
the cost CSV files or Flower's task API.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
import yaml

from llm_orchestrator.config.manager import CostTrackingConfig
from llm_orchestrator.cost_tracker import CostTracker
from tests.conftest import PROVIDERS, ROOT
from tests.redis_server import free_port
from tests.test_flower import _status
from tests.worker_fixtures import WorkerProcess, worker_env, write_config

KEYS = {p: f"canarykey{p}5d1c9e" for p in PROVIDERS}  # shaped like no known key: only absence protects it
EMAIL, PHONE = "pii.canary.7f3e@example.com", "+1 415 555 0142"
PHRASE = "zebra-canary-91x"  # a tenant's words: may be quoted back as classification evidence, nowhere else
PII = (EMAIL, PHONE, *KEYS.values())
FLOWER_AUTH = "admin:canary-flower-pass"


def _texts(value: bytes) -> Iterator[str]:
    """A Redis value as text, plus the decoded body when it is a Celery (kombu) message."""
    text = value.decode("utf-8", "replace")
    yield text
    try:
        message = json.loads(text)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("properties", {}).get("body_encoding") == "base64":
        yield base64.b64decode(message["body"]).decode("utf-8", "replace")


def redis_dump(client: redis.Redis) -> str:
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        out.append(key.decode("utf-8", "replace"))
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "hash":
            values = [x for kv in client.hgetall(key).items() for x in kv]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        elif kind == "stream":
            values = [x for _, fields in client.xrange(key) for kv in fields.items() for x in kv]
        for v in values:
            out += list(_texts(v))
    return "\n".join(out)


@pytest.fixture
def canary_stack(simulator, redis_url, redis_client, tmp_path):
    simulator.reset()
    config = write_config(tmp_path / "config.yaml", simulator, redis_url)
    cfg = yaml.safe_load(config.read_text())
    for p in PROVIDERS:
        cfg["providers"][p]["api_key"] = KEYS[p]
    cfg["cost_tracking"]["log_path"] = str(tmp_path / "costs.csv")
    config.write_text(yaml.safe_dump(cfg))
    from worker import producer
    from worker.app import celery_app

    celery_app.conf.broker_url = celery_app.conf.result_backend = redis_url
    env = worker_env(config, redis_url)
    flower_log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "llm_orchestrator.cli", "flower", "--port", str(port)],
        env={**env, "FLOWER_BASIC_AUTH": FLOWER_AUTH},
        cwd=ROOT,
        stdout=flower_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = WorkerProcess(env, tmp_path)
    worker.args[-1] = "--loglevel=DEBUG"
    worker.start(celery_app)
    flower_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _status(flower_url + "/healthcheck") == 200:
                break
        except OSError:
            time.sleep(0.2)
    time.sleep(2)  # Flower subscribes to the event stream
    try:
        yield {"producer": producer, "worker": worker, "flower": flower_url, "tmp": tmp_path}
    finally:
        worker.stop()
        os.killpg(flower.pid, 15)
        flower.wait(10)


def flower_tasks(url: str) -> str:
    import urllib.request

    req = urllib.request.Request(url + "/api/tasks")
    req.add_header("Authorization", "Basic " + base64.b64encode(FLOWER_AUTH.encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


@pytest.mark.slow
def test_keys_and_pii_appear_nowhere(canary_stack, sim, redis_url):
    p = canary_stack["producer"]
    prompt = f"Write back to {EMAIL} or {PHONE} about {PHRASE}"
    sim.add_fault("anthropic", "*", status=429, retry_after=2, count=1)  # → a Celery countdown retry
    jobs = {
        "plain": p.submit_completion(prompt, tenant="acme"),
        "retried": p.submit_completion(prompt, provider="anthropic", tenant="acme"),
        "failed": p.submit_completion(prompt + " [[sim:refuse]]", provider="gemini"),
        "streamed": p.submit_completion(prompt, stream=True),
        "classified": p.submit_classification(f"hmm, ping {EMAIL} or {PHONE} re {PHRASE}", signal_id="c1"),
        "batch": p.submit_classification_batch(
            [
                {"id": "b1", "text": f"The export crashes for {EMAIL}"},
                {"id": "b2", "text": f"interesting week, {PHONE}"},
            ]
        ),
    }
    results = {name: job.get(timeout=90) for name, job in jobs.items()}
    assert results["failed"]["status"] == "failed"
    assert all(r["status"] == "succeeded" for n, r in results.items() if n != "failed"), results
    assert results["retried"]["cost"]["usd"] != "0"
    time.sleep(2)  # let the last events reach Flower

    tracker = CostTracker(CostTrackingConfig(log_path=None), redis=redis.Redis.from_url(redis_url))
    tracker.export_csv(canary_stack["tmp"] / "export.csv")
    places = {
        "results": json.dumps(results),
        "completion results": json.dumps([results[n] for n in ("plain", "retried", "failed", "streamed")]),
        "worker log": canary_stack["worker"].log_path.read_text(errors="replace"),
        "redis": redis_dump(redis.Redis.from_url(redis_url)),
        "cost csv": (canary_stack["tmp"] / "costs.csv").read_text(),
        "csv export": (canary_stack["tmp"] / "export.csv").read_text(),
        "flower": flower_tasks(canary_stack["flower"]),
    }
    assert "llm.complete" in places["flower"]  # Flower did see the jobs
    assert "DEBUG" in places["worker log"]
    leaks = [(where, canary) for where, text in places.items() for canary in PII if canary in text]
    leaks += [
        (where, PHRASE)
        for where in ("completion results", "worker log", "redis", "flower")
        if PHRASE in places[where] and where != "redis"
    ]
    assert leaks == [], _contexts(places, leaks)
    # the phrase may sit in Redis only inside classification answers (evidence), never as a prompt
    assert f"about {PHRASE}" not in places["redis"]


def _contexts(places: dict[str, str], leaks: list[tuple[str, str]]) -> str:
    out = []
    for where, canary in leaks:
        text = places[where]
        i = text.find(canary)
        out.append(f"{where}: ...{text[max(0, i - 150) : i + 60]!r}...")
    return "\n".join(out)
