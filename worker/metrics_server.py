"""``/metrics`` for a worker node: started once in the main process, summing every child's metrics.

Off unless ``LLM_ORCH_METRICS_PORT`` is a port number (0 or unset = off). Called from the
``worker_init`` signal (see ``worker.resources``), before the pool forks:

1. ``PROMETHEUS_MULTIPROC_DIR`` is used, or a fresh temporary directory is made and exported,
   *before* ``prometheus_client`` is imported, so the children (forked later) each write their
   own metric files there; stale files of an earlier run are removed (one directory per node).
2. An HTTP server on ``LLM_ORCH_METRICS_BIND`` (default 127.0.0.1; the metrics name tenants and
   models, so expose them deliberately, e.g. ``0.0.0.0`` inside a container) serves a registry with the
   multiprocess collector plus ``llm_orch_queue_depth`` (Redis LLEN of the Celery queues, read
   at scrape time).

Children remove their live-gauge files when they exit (``worker_process_shutdown``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery.signals import worker_process_shutdown

log = logging.getLogger(__name__)
PORT_ENV = "LLM_ORCH_METRICS_PORT"
BIND_ENV = "LLM_ORCH_METRICS_BIND"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_started: dict[str, Any] = {}


def metrics_port(env: Mapping[str, str]) -> int | None:
    """The port from ``LLM_ORCH_METRICS_PORT``, or None when metrics are off.

    Raises:
        ValueError: the variable is set but is not a port number.
    """
    raw = env.get(PORT_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 <= int(raw) < 65536:
        raise ValueError(f"{PORT_ENV} must be a port number (0 = off), not {raw!r}")
    return int(raw) or None


def _prepare_multiproc_dir() -> Path:
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="llmorch-prometheus-"))
        os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def start_from_env() -> int | None:
    """Start the exporter if ``LLM_ORCH_METRICS_PORT`` asks for one (once per process).

    Returns:
        The port served, or None when metrics are off.
    """
    port = metrics_port(os.environ)
    if port is None or "server" in _started:
        return _started.get("port")
    directory = _prepare_multiproc_dir()  # before the first prometheus_client import
    import redis
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from llm_orchestrator.observability.metrics import QueueDepthCollector
    from worker import settings

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    client = redis.Redis.from_url(settings.redis_url(), socket_connect_timeout=2, socket_timeout=5)
    registry.register(QueueDepthCollector(client, settings.QUEUES, settings.KEY_PREFIX))
    _started["server"] = start_http_server(port, addr=os.environ.get(BIND_ENV, "127.0.0.1"), registry=registry)
    _started["port"] = port
    _started["pid"] = os.getpid()
    log.info("serving Prometheus metrics on port %d (multiprocess dir %s)", port, directory)
    return port


@worker_process_shutdown.connect
def _child_exit(pid: int | None = None, **_: Any) -> None:
    if "server" not in _started or _started["pid"] == os.getpid():
        return  # metrics off, or the main process itself
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())
