"""Small parts of the job skeleton against a real Redis: the re-entrant lease and the job's cost total."""

from __future__ import annotations

from decimal import Decimal

from tasks.results import succeeded, with_job_total
from worker.leases import JobLease


def test_lease_is_reentrant_for_its_holder_only(redis_client):
    mine = JobLease(redis_client, "job-1", ttl_seconds=30)
    twin = JobLease(redis_client, "job-1", ttl_seconds=30)
    assert mine.acquire()
    assert mine.acquire()  # run again in the same process after Redis came back: still ours
    assert not twin.acquire()
    twin.release()  # not the holder: no effect
    assert not twin.acquire()
    mine.release()
    assert twin.acquire()


def test_reacquiring_refreshes_the_ttl(redis_client):
    lease = JobLease(redis_client, "job-2", ttl_seconds=30)
    assert lease.acquire()
    redis_client.pexpire(lease.key, 1000)
    assert lease.acquire()
    assert lease.ttl_left() > 20


def test_job_total_covers_earlier_attempts():
    result = succeeded("j", "openai", "m", [])
    result["cost"]["usd"] = "0.000020"
    again = with_job_total(result, Decimal("0.000040"))  # attempt 0 was paid for, then retried
    assert again["cost"]["usd"] == "0.000040" and again["cost"]["answer_usd"] == "0.000020"
    assert with_job_total(result, Decimal("0.000020")) is result  # the usual case: unchanged
    assert with_job_total(result, Decimal(0)) is result  # nothing in the ledger (no job id, keyword stage)


def test_a_twin_claims_busy_while_the_job_runs_and_the_stored_result_once_it_finished(redis_client):
    """What a redelivered twin gets when its countdown ends: the first run's result, never a second run."""
    mine = JobLease(redis_client, "job-3", ttl_seconds=30)
    twin = JobLease(redis_client, "job-3", ttl_seconds=30)
    assert mine.claim().leased
    busy = twin.claim()
    assert not busy.leased and busy.done is None and 0 < busy.busy_for <= 30
    result = succeeded("job-3", "openai", "m", [])
    assert mine.finish(result, 60) == result
    again = twin.claim()
    assert again.done == result and not again.leased
    assert twin.finish({**result, "status": "failed"}, 60) == result  # a late finish keeps the first result
