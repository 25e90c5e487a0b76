"""Every Celery setting in one side-effect-free module (worker, beat, Flower and producers).

Numbers follow ../shared/reference/celery.md. A few can be shrunk by environment variables for
tests (production defaults shown): LLM_ORCH_VISIBILITY_TIMEOUT (1800), LLM_ORCH_RESTORE_INTERVAL
(10), LLM_ORCH_SOFT_TIME_LIMIT (120), LLM_ORCH_TIME_LIMIT (150), LLM_ORCH_RESULT_EXPIRES (86400).
Rules kept: visibility timeout ≥ 2 × (longest countdown + hard time limit); the job lease
(hard limit + 5 s) is shorter than the visibility timeout, so a crashed holder's lease has
lapsed by the time its message is redelivered.
"""

from __future__ import annotations

import os

from celery.schedules import crontab
from kombu import Exchange, Queue


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


KEY_PREFIX = "llmorch:"
QUEUES = ("llm.interactive", "llm.batch", "maintenance")
MAX_COUNTDOWN = 300  # longest retry countdown we ever schedule (seconds)
BATCH_POLL_SECONDS = _env_int("LLM_ORCH_BATCH_POLL_SECONDS", 60)  # batch-lane jobs look again this often
SOFT_TIME_LIMIT = _env_int("LLM_ORCH_SOFT_TIME_LIMIT", 120)
TIME_LIMIT = _env_int("LLM_ORCH_TIME_LIMIT", 150)
VISIBILITY_TIMEOUT = _env_int("LLM_ORCH_VISIBILITY_TIMEOUT", 1800)
RESTORE_INTERVAL = _env_int("LLM_ORCH_RESTORE_INTERVAL", 10)
RESULT_EXPIRES = _env_int("LLM_ORCH_RESULT_EXPIRES", 86400)
JOB_LEASE_SECONDS = TIME_LIMIT + 5  # past the hard time limit the holder is surely dead: its lease may lapse
# The outbox sweeper (worker/outbox.py): runs every OUTBOX_SWEEP_SECONDS; looks at jobs open longer
# than OUTBOX_STALE_SECONDS; re-sends one found nowhere in two sweeps; puts back on its queue one
# unacked for longer than JOB_LEASE_SECONDS (after delivery or its ETA) with no lease. A job whose
# holder died therefore runs again within about JOB_LEASE_SECONDS + OUTBOX_SWEEP_SECONDS.
OUTBOX_SWEEP_SECONDS = _env_int("LLM_ORCH_OUTBOX_SWEEP_SECONDS", 30)
OUTBOX_STALE_SECONDS = _env_int("LLM_ORCH_OUTBOX_STALE_SECONDS", 120)
_socket = {"socket_timeout": 30, "socket_connect_timeout": 5, "socket_keepalive": True, "health_check_interval": 25}


def celery_config() -> dict[str, object]:
    """The settings dict (built on call so REDIS_URL and overrides are read at start, not import)."""
    url = redis_url()
    return {
        "broker_url": url,
        "result_backend": url,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_retry_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_eta_task_limit": 200,
        "task_soft_time_limit": SOFT_TIME_LIMIT,
        "task_time_limit": TIME_LIMIT,
        "task_track_started": True,
        "result_expires": RESULT_EXPIRES,
        # Off: "extended" results store the task's args (prompts, signals: tenant data) in Redis.
        "result_extended": False,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "unacked_restore_interval": RESTORE_INTERVAL,
            "unacked_restore_throttle": RESTORE_INTERVAL,
            "global_keyprefix": KEY_PREFIX,
            **_socket,
        },
        "result_backend_transport_options": {"global_keyprefix": KEY_PREFIX},
        "redis_socket_timeout": 30,
        "redis_socket_connect_timeout": 5,
        "redis_socket_keepalive": True,
        "redis_backend_health_check_interval": 25,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_max_tasks_per_child": 5000,
        "worker_max_memory_per_child": 400_000,  # KiB
        "task_create_missing_queues": False,
        "task_default_queue": "llm.interactive",
        "task_queues": [Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        "task_routes": {
            "llm.complete": {"queue": "llm.interactive"},
            "llm.classify": {"queue": "llm.interactive"},
            "llm.noop": {"queue": "llm.interactive"},
            "llm.classify_batch": {"queue": "llm.batch"},
            "costs.rollup_daily": {"queue": "maintenance"},
            "jobs.sweep_outbox": {"queue": "maintenance"},
        },
        "beat_schedule": {
            "costs-rollup-daily": {"task": "costs.rollup_daily", "schedule": crontab(minute=15, hour=0),
                                   "options": {"queue": "maintenance", "expires": 3600}},
            "jobs-sweep-outbox": {"task": "jobs.sweep_outbox", "schedule": float(OUTBOX_SWEEP_SECONDS),
                                  "options": {"queue": "maintenance", "expires": OUTBOX_SWEEP_SECONDS}},
        },
        "beat_cron_starting_deadline": 3600,
    }
