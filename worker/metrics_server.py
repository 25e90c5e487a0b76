"""``/metrics`` for a worker node: started once in the main process, summing every child's metrics.

Off unless ``LLM_ORCH_METRICS_PORT`` is a port number (0 or unset = off). Called from the
``worker_init`` signal (see ``worker.resources``), before the pool forks:

1. ``PROMETHEUS_MULTIPROC_DIR`` is used, or a fresh temporary directory is made and exported, so
   the children (forked later) each write their own metric files there; stale files of an earlier
   run are removed (one directory per node). ``prometheus_client`` picks single- or multi-process
   values when it is first imported, and by ``worker_init`` it already is: the ``celery`` command
   loads Flower's CLI plugin (the ``worker`` extra installs Flower), whose ``flower.options``
   imports it. So the value class is chosen again here, from the variable just exported.
2. An HTTP server on ``LLM_ORCH_METRICS_BIND`` (default 127.0.0.1; the metrics name tenants and
   models, so expose them deliberately, e.g. ``0.0.0.0`` inside a container) serves a registry with the
   multiprocess collector plus ``llm_orch_queue_depth`` (the Celery queues' waiting messages, read
   from the broker at scrape time: LLEN on Redis, a passive declare on RabbitMQ).

The "serving" line is logged on ``celeryd_after_setup`` (``worker_init`` runs before Celery sets up
logging, so a line logged there is lost). Children remove their live-gauge files when they exit
(``worker_process_shutdown``); on ``worker_shutdown`` (or at exit, after a cold shutdown) the main
process stops the server and removes the directory if it made it. A SIGKILLed worker leaves it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_shutdown, worker_shutdown

log = logging.getLogger(__name__)
PORT_ENV = "LLM_ORCH_METRICS_PORT"
BIND_ENV = "LLM_ORCH_METRICS_BIND"
DEFAULT_BIND = "127.0.0.1"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TEMP_DIR_PREFIX = "llmorch-prometheus-"
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


def _prepare_multiproc_dir() -> tuple[Path, bool]:
    """The multiprocess directory, emptied of stale files, and whether this process made it."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix=TEMP_DIR_PREFIX))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, True


def _use_multiprocess_values() -> None:
    """Make metrics created from now on write to ``PROMETHEUS_MULTIPROC_DIR``.

    ``prometheus_client.values.ValueClass`` is read each time a metric is created (after fork, in
    the children, for this library's metrics). A class that is already multi-process (the variable
    was set before the first import) is kept: a second one would open the same per-pid files twice.
    """
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()


def start_from_env() -> int | None:
    """Start the exporter if ``LLM_ORCH_METRICS_PORT`` asks for one (once per process).

    Returns:
        The port served, or None when metrics are off.

    Raises:
        SystemExit: the variable is not a port number, or the port cannot be served (e.g. taken).
            Celery logs and ignores an ``Exception`` raised by a signal handler — before its
            logging is set up, so nowhere — which would leave the worker running without metrics.
    """
    try:
        port = metrics_port(os.environ)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    if port is None or "server" in _started:
        return _started.get("port")
    directory, owned = _prepare_multiproc_dir()
    _use_multiprocess_values()
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    registry.register(queue_depth_collector())
    try:
        server = start_http_server(port, addr=os.environ.get(BIND_ENV, DEFAULT_BIND), registry=registry)
    except OSError as e:  # e.g. the port is taken: the worker does not start, and leaves no directory behind
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
            del os.environ[MULTIPROC_ENV]
        raise SystemExit(f"cannot serve Prometheus metrics on port {port} ({PORT_ENV}): {e.strerror or e}") from e
    _started.update(server=server, port=port, pid=os.getpid(), dir=directory, owned=owned)
    atexit.register(stop)
    return port


@celeryd_after_setup.connect
def _log_serving(**_: Any) -> None:
    if "server" in _started and _started["pid"] == os.getpid():
        log.info("serving Prometheus metrics on port %d (multiprocess dir %s)", _started["port"], _started["dir"])


@worker_shutdown.connect
def stop(**_: Any) -> None:
    """Stop the server and remove the multiprocess directory this process made (idempotent)."""
    if "server" not in _started or _started["pid"] != os.getpid():
        return
    httpd, _thread = _started.pop("server")
    httpd.shutdown()
    httpd.server_close()
    if _started["owned"]:
        shutil.rmtree(_started["dir"], ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == str(_started["dir"]):
            del os.environ[MULTIPROC_ENV]


@worker_process_shutdown.connect
def _child_exit(pid: int | None = None, **_: Any) -> None:
    if "pid" not in _started or _started["pid"] == os.getpid():
        return  # metrics off, or the main process itself
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())


def queue_depth_collector() -> Any:
    """The ``llm_orch_queue_depth`` collector for the configured broker (CELERY_BROKER_URL, else REDIS_URL).

    The queues live in the broker, which need not be REDIS_URL's Redis: LLEN there for a Redis
    broker, a passive declare for RabbitMQ.
    """
    from worker import settings

    broker = settings.broker_url()
    if settings.broker_kind(broker) == settings.AMQP:
        from worker.queue_depth import AmqpQueueDepthCollector

        return AmqpQueueDepthCollector(broker, settings.QUEUES)
    from llm_orchestrator.observability.metrics import QueueDepthCollector
    from llm_orchestrator.redis_client import build

    client = build(broker, socket_timeout=5)
    return QueueDepthCollector(client, settings.QUEUES, settings.KEY_PREFIX)
