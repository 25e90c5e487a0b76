"""The example web app through FastAPI's test client, against a real worker."""

from __future__ import annotations

import json
import time

from tests.worker_fixtures import stack  # noqa: F401 - fixture


def test_webapp_enqueues_polls_and_relays_a_stream(stack, sim):
    from fastapi.testclient import TestClient

    from examples.webapp import app

    client = TestClient(app)
    job_id = client.post("/jobs/classification", json={"text": "The export crashes on large files"}).json()["job_id"]
    deadline = time.monotonic() + 30
    body = client.get(f"/jobs/{job_id}").json()
    while body["state"] != "SUCCESS" and time.monotonic() < deadline:
        time.sleep(0.2)
        body = client.get(f"/jobs/{job_id}").json()
    assert body["result"]["category"] == "bug_report"

    job_id = client.post("/jobs/completion", json={"prompt": "stream me", "stream": True}).json()["job_id"]
    with client.stream("GET", f"/jobs/{job_id}/stream") as resp:
        raw = "".join(resp.iter_text())
    texts = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ") and "job_id" not in line]
    result = json.loads(raw.split("event: result\ndata: ", 1)[1].split("\n", 1)[0])
    assert result["status"] == "succeeded" and "".join(texts) == result["content"]


def test_enqueue_csv_script(stack, sim, tmp_path):
    from examples.enqueue_csv import main

    path = tmp_path / "signals.csv"
    path.write_text("id,text,label\n1,The app crashes on login,bug_report\n2,Please add dark mode,feature_request\n")
    assert main([str(path)]) == 0


def test_webapp_rejects_unknown_providers_and_job_ids_at_once(stack, sim):
    from fastapi.testclient import TestClient

    from examples.webapp import app

    client = TestClient(app)
    resp = client.post("/jobs/completion", json={"prompt": "hi", "provider": "mistral"})
    assert resp.status_code == 422 and "provider" in resp.text
    assert client.get("/jobs/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/jobs/not-a-job-id").status_code == 404
    started = time.monotonic()
    resp = client.get("/jobs/00000000-0000-4000-8000-000000000000/stream")
    assert resp.status_code == 404 and time.monotonic() - started < 5
    job_id = client.post("/jobs/completion", json={"prompt": "hello", "provider": "anthropic"}).json()["job_id"]
    assert client.get(f"/jobs/{job_id}").status_code == 200  # a job just sent is known at once
