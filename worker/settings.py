"""Every Celery setting in one side-effect-free module (worker, beat, Flower and producers).

Numbers follow ../shared/reference/celery.md. A few can be shrunk by environment variables for
tests (production defaults shown): LLM_ORCH_VISIBILITY_TIMEOUT (1800), LLM_ORCH_RESTORE_INTERVAL
(10), LLM_ORCH_SOFT_TIME_LIMIT (120), LLM_ORCH_TIME_LIMIT (150), LLM_ORCH_RESULT_EXPIRES (86400).
Rules kept: visibility timeout ≥ 2 × (longest countdown + hard time limit); the job lease
(hard limit + 5 s) is shorter than the visibility timeout, so a crashed holder's lease has
lapsed by the time its message is redelivered.

Two URLs: ``REDIS_URL`` holds the state (breaker, limiter, ledger, leases, the outbox and every
job's result key; producers send with ``ignore_result``) and Celery's result backend;
``CELERY_BROKER_URL`` (``amqp://`` or ``redis://``) is the broker, ``REDIS_URL`` when unset.
Per broker:

- ``redis://``: kombu's Redis transport with its visibility timeout, unacked restore and key
  prefix (``broker_transport_options``; only ever set for this broker), direct exchanges. The
  outbox sweeper re-sends messages that transport loses (``worker/outbox.py``).
- ``amqp://`` (RabbitMQ >= 3.10): durable quorum queues, publisher confirms (a publish is
  confirmed or raises), prefetch 1 per process, per-consumer QoS (``worker_detect_quorum_queues``).
  Exchanges are topic exchanges: Celery's native delayed delivery (5.5+) only works through
  topic or fanout exchanges. A countdown/ETA on a quorum queue then waits *in the broker*
  (28 ``celery_delayed_<n>`` quorum queues chained by TTL and dead-lettering, declared by each
  worker at start) instead of in a worker's memory, where it would block one prefetch slot of a
  quorum queue's static prefetch. Countdowns are whole seconds there (``tasks.llm.reschedule``).
  Quorum queues have no message priorities before RabbitMQ 4.0, so no queue declares
  ``x-max-priority``; use the separate queues. The server's ``consumer_timeout`` (30 min by
  default) must exceed the longest time a message stays unacked: queue wait after delivery plus
  the hard time limit (about 2 x TIME_LIMIT here, countdowns wait in the broker).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from celery.schedules import crontab
from kombu import Exchange, Queue


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def redis_url() -> str:
    """The state Redis (and result backend): REDIS_URL."""
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


CLUSTER_ENV = "REDIS_CLUSTER"


def redis_cluster() -> bool:
    """Whether REDIS_URL is the seed node of a Redis Cluster (``REDIS_CLUSTER=1``).

    On a cluster the worker keeps its state and job results there (hash-tagged keys; steps that
    span slots run as separate commands), Celery has no result backend (it cannot use a cluster;
    results are our own keys), and the broker must be elsewhere: RabbitMQ or a separate Redis.
    """
    return os.environ.get(CLUSTER_ENV, "").strip().lower() in ("1", "true", "yes")


AMQP = "amqp"
REDIS = "redis"
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
REDIS_SCHEMES = ("redis", "rediss", "redis+socket")


def broker_url() -> str:
    """The Celery broker: CELERY_BROKER_URL (``amqp://`` or ``redis://``), else REDIS_URL."""
    return os.environ.get("CELERY_BROKER_URL") or redis_url()


def broker_kind(url: str | None = None) -> str:
    """``"amqp"`` or ``"redis"`` for ``url`` (default: :func:`broker_url`).

    Raises:
        ValueError: a scheme other than amqp(s)/pyamqp or redis(s)/redis+socket.
    """
    scheme = urlsplit(url or broker_url()).scheme
    if scheme in AMQP_SCHEMES:
        return AMQP
    if scheme in REDIS_SCHEMES:
        return REDIS
    raise ValueError(f"CELERY_BROKER_URL must be an amqp:// or redis:// URL, not {scheme or 'no scheme'}://")


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


def celery_config(broker: str | None = None) -> dict[str, object]:
    """The settings dict (built on call so the URLs and overrides are read at start, not import).

    Args:
        broker: the broker URL; default :func:`broker_url` (CELERY_BROKER_URL, else REDIS_URL).
    """
    url = broker or broker_url()
    cluster = redis_cluster()
    if cluster and broker_kind(url) == REDIS and url == redis_url():
        raise ValueError(
            "a Redis Cluster cannot be Celery's broker: set CELERY_BROKER_URL to RabbitMQ "
            "(amqp://) or to a separate, non-cluster Redis"
        )
    per_broker = _amqp_broker(url) if broker_kind(url) == AMQP else _redis_broker(url)
    return {
        **per_broker,
        # Celery's Redis result backend cannot use a cluster; nothing needs it (results are our own keys).
        "result_backend": None if cluster else redis_url(),
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
        # Only Celery's own state writes use the backend (job results are our keys). On a connection
        # loss the worker's main process cancels each running job with such a write; ten retries with
        # backoff blocked it ~10-15 s per job (no consuming, heartbeats or time limits meanwhile).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 1,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
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
        "task_routes": {
            "llm.complete": {"queue": "llm.interactive"},
            "llm.classify": {"queue": "llm.interactive"},
            "llm.noop": {"queue": "llm.interactive"},
            "llm.classify_batch": {"queue": "llm.batch"},
            "costs.rollup_daily": {"queue": "maintenance"},
            "jobs.sweep_outbox": {"queue": "maintenance"},
        },
        "beat_schedule": {
            "costs-rollup-daily": {
                "task": "costs.rollup_daily",
                "schedule": crontab(minute=15, hour=0),
                "options": {"queue": "maintenance", "expires": 3600},
            },
            "jobs-sweep-outbox": {
                "task": "jobs.sweep_outbox",
                "schedule": float(OUTBOX_SWEEP_SECONDS),
                "options": {"queue": "maintenance", "expires": OUTBOX_SWEEP_SECONDS},
            },
        },
        "beat_cron_starting_deadline": 3600,
    }


def _redis_broker(url: str) -> dict[str, object]:
    """kombu's Redis transport: emulated acks (visibility timeout, restore sweep), one key prefix."""
    return {
        "broker_url": url,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "unacked_restore_interval": RESTORE_INTERVAL,
            "unacked_restore_throttle": RESTORE_INTERVAL,
            "global_keyprefix": KEY_PREFIX,
            **_socket,
        },
        "task_queues": [Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
    }


def _amqp_broker(url: str) -> dict[str, object]:
    """RabbitMQ: durable quorum queues on topic exchanges, publisher confirms (see the module docstring)."""
    return {
        "broker_url": url,
        "broker_transport_options": {"confirm_publish": True},  # py-amqp: every publish waits for basic.ack
        "task_queues": [
            Queue(
                q,
                Exchange(q, type="topic", durable=True),
                routing_key=q,
                durable=True,
                queue_arguments={"x-queue-type": "quorum"},
            )
            for q in QUEUES
        ],
        "worker_detect_quorum_queues": True,  # per-consumer QoS: quorum queues refuse global QoS
        "broker_native_delayed_delivery_queue_type": "quorum",
    }
