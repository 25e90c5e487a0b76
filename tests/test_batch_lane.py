"""The provider batch lane through the real SDKs, over HTTP, against the simulator. No SDK is mocked.

Each provider's batch API (OpenAI files + batches, Anthropic message batches, Gemini
batchGenerateContent) is driven by its adapter; ``BatchLane`` prices every answer at the batch
rate and writes one ledger row per item.
"""

from __future__ import annotations

import time

import openai
import pytest

from llm_orchestrator import ConfigManager, LLMOrchestrator
from llm_orchestrator.batch_lane import BatchLane
from llm_orchestrator.exceptions import (
    BatchItemNotRunError,
    BatchNotFoundError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
)
from llm_orchestrator.pricing import from_micros, to_micros
from llm_orchestrator.providers.base import BatchItem, LLMResponse, Message, RequestOptions
from tests.conftest import MODELS, PROVIDERS, make_config

OPTS = RequestOptions(max_tokens=200)
UNKNOWN_IDS = {"openai": "batch_doesnotexist", "anthropic": "msgbatch_doesnotexist", "gemini": "batches/doesnotexist"}


def lane_for(sim, provider: str, redis_client=None) -> BatchLane:
    orchestrator = LLMOrchestrator(ConfigManager.from_dict(make_config(sim, provider)).config, redis=redis_client)
    return BatchLane(orchestrator)


def items(n: int = 3) -> list[BatchItem]:
    return [
        BatchItem(f"item-{i}", [Message("system", "Answer briefly."), Message("user", f"Question number {i}?")], OPTS)
        for i in range(n)
    ]


def wait_done(lane: BatchLane, batch_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = lane.status(batch_id).state
        if state != "running":
            return state
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still running after {timeout}s")


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def test_round_trip_prices_every_item_at_the_batch_rate(sim, provider, redis_client):
    sim.set_batch_delay(2000)  # long enough that a loaded CI box still sees "running" first
    lane = lane_for(sim, provider, redis_client)
    model = MODELS[provider][0]

    batch_id = lane.submit(items())
    status = lane.status(batch_id)
    assert status.state == "running" and status.batch_id == batch_id
    assert lane.collect(batch_id, job_id="job-1", tenant="acme") is None
    assert sim.count(provider, batch=True) == 0  # nothing is answered before the batch runs

    assert wait_done(lane, batch_id) == "done"
    status = lane.status(batch_id)
    assert (status.total, status.succeeded, status.failed) == (3, 3, 0)
    results = lane.collect(batch_id, job_id="job-1", tenant="acme")
    assert results is not None and set(results) == {"item-0", "item-1", "item-2"}

    tracker = lane.orchestrator.cost_tracker
    live_adapter = lane.orchestrator.adapter
    for custom_id, response in results.items():
        assert isinstance(response, LLMResponse)
        assert response.provider == provider and response.model == model and response.finish_reason == "stop"
        live = live_adapter.generate(items()[int(custom_id[-1])].messages, model, OPTS)
        assert (response.content, response.prompt_tokens, response.completion_tokens) == (
            live.content,
            live.prompt_tokens,
            live.completion_tokens,
        )
        batch_price = from_micros(to_micros(tracker.price(response.usage, provider, model, batch=True)))
        assert response.cost_usd == batch_price > 0
        assert batch_price < tracker.price(response.usage, provider, model)

    rows = tracker.records()
    assert sorted(r.job_id for r in rows) == ["job-1:item-0", "job-1:item-1", "job-1:item-2"]
    assert all(r.batch and r.tenant == "acme" for r in rows)
    raw_rows = tracker.ledger.rows()
    assert [r["batch"] for r in raw_rows] == ["1", "1", "1"]

    assert sim.count(provider, batch=True) == 3 and sim.count(provider, batch=False) == 3  # 3 live compares
    assert all(isinstance(r["batch"], bool) for r in sim.stats()["requests"])

    again = lane.collect(batch_id, job_id="job-1", tenant="acme")  # a repeated poll bills nothing twice
    assert again is not None and len(tracker.records()) == 3


def test_a_per_item_fault_fails_that_item_only(sim, provider, redis_client):
    sim.set_batch_delay(0)
    sim.add_fault(provider, MODELS[provider][0], status=429, count=1)
    lane = lane_for(sim, provider, redis_client)

    batch_id = lane.submit(items())
    assert wait_done(lane, batch_id) == "done"
    status = lane.status(batch_id)
    assert (status.total, status.succeeded, status.failed) == (3, 2, 1)
    results = lane.collect(batch_id, job_id="job-2")

    assert results is not None
    failed = {cid: r for cid, r in results.items() if isinstance(r, ProviderError)}
    assert list(failed) == ["item-0"]  # items are answered in order; the fault fires once
    assert isinstance(failed["item-0"], RateLimitError) and failed["item-0"].provider == provider
    assert all(isinstance(results[c], LLMResponse) for c in ("item-1", "item-2"))
    assert sorted(r.job_id for r in lane.orchestrator.cost_tracker.records()) == ["job-2:item-1", "job-2:item-2"]
    assert sim.count(provider, batch=True, status=429) == 1


def test_cancel_before_it_runs_bills_nothing(sim, provider, redis_client):
    sim.set_batch_delay(60_000)
    lane = lane_for(sim, provider, redis_client)

    batch_id = lane.submit(items(2))
    lane.cancel(batch_id)
    assert wait_done(lane, batch_id) == "cancelled"
    results = lane.collect(batch_id, job_id="job-3")

    assert results is not None and set(results) == {"item-0", "item-1"}
    assert all(isinstance(r, BatchItemNotRunError) and r.retryable for r in results.values())
    assert lane.orchestrator.cost_tracker.records() == []
    assert sim.count(provider, batch=True) == 0


def test_unknown_batch_id_is_a_typed_error(sim, provider):
    lane = lane_for(sim, provider)
    for call in (lane.status, lane.collect, lane.cancel):
        with pytest.raises(BatchNotFoundError) as info:
            call(UNKNOWN_IDS[provider])
        assert isinstance(info.value, InvalidRequestError) and not info.value.retryable
        assert info.value.status == 404 and "sk-test" not in str(info.value)


def test_results_of_a_running_batch_are_refused(sim, provider):
    sim.set_batch_delay(60_000)
    adapter = lane_for(sim, provider).orchestrator.adapter
    batch_id = adapter.submit_batch(items(1), MODELS[provider][0])
    with pytest.raises(InvalidRequestError, match="not ended"):
        adapter.batch_results(batch_id)


def test_openai_batches_list_follows_the_cursor(sim):
    client = openai.OpenAI(base_url=sim.base_url("openai"), api_key="sk-test", max_retries=0)
    lane = lane_for(sim, "openai")
    ids = {lane.submit(items(1)) for _ in range(3)}
    listed = [b.id for b in client.batches.list(limit=2)]  # the SDK pager asks for the next page
    assert ids <= set(listed) and len(listed) == len(set(listed))
