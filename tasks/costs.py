"""``costs.rollup_daily``: the nightly usage rollup (beat runs it at 00:15 UTC)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

from celery import Task
from pydantic import ValidationError

from tasks.payloads import RollupPayload
from worker import resources
from worker.app import celery_app
from worker.keys import ROLLUP

ROLLUP_TTL_SECONDS = 400 * 86400


def rollup_day(day: date) -> list[dict[str, Any]]:
    """Recompute one UTC day from the ledger and overwrite its stored rows (idempotent)."""
    rows = resources.orchestrator().cost_tracker.rollup(day)
    resources.redis_client().set(ROLLUP.format(day=day.isoformat()), json.dumps(rows), ex=ROLLUP_TTL_SECONDS)
    return rows


def stored_rollup(day: date) -> list[dict[str, Any]]:
    raw = resources.redis_client().get(ROLLUP.format(day=day.isoformat()))
    return json.loads(raw) if raw else []


@celery_app.task(name="costs.rollup_daily", bind=True, acks_late=True, soft_time_limit=600, time_limit=660)
def rollup_daily(self: Task, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll up ``payload["day"]`` (YYYY-MM-DD), or yesterday and the day before (late rows)."""
    try:
        data = RollupPayload.model_validate(payload or {})
    except ValidationError:
        return {
            "job_id": self.request.id,
            "status": "failed",
            "error": {"type": "InvalidPayload", "message": "day must be YYYY-MM-DD"},
        }
    today = datetime.now(timezone.utc).date()
    days = [date.fromisoformat(data.day)] if data.day else [today - timedelta(days=1), today - timedelta(days=2)]
    return {"job_id": self.request.id, "status": "succeeded", "days": {d.isoformat(): rollup_day(d) for d in days}}
