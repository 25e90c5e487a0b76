"""Per-process resources: one Redis client and one orchestrator per provider, built after fork.

The configuration is parsed once, in the worker's main process at start (``worker_init``), and
its sha256 logged; prefork children inherit it, so a child recycled later never re-reads the
file: a changed file takes effect on a worker restart only (seed 004: no hot reload).
``worker_process_init`` drops everything else inherited from the parent (Redis connections,
orchestrators); those are built lazily on first use in the child. Nothing is built at import.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init, worker_ready

log = logging.getLogger(__name__)
_lock = threading.Lock()
_orchestrators: dict[str, Any] = {}
_state: dict[str, Any] = {}


# The SDKs and their HTTP clients log whole requests (prompts, signals) at DEBUG: never emit those,
# whatever level the worker runs at. The library's own DEBUG lines carry hashes, not text.
QUIET_LOGGERS = ("openai", "anthropic", "google_genai", "httpx", "httpcore", "urllib3")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: Any, **_: Any) -> None:
    """One filter on every worker log handler redacts keys, tokens and PII from all records.

    A second one, first on each handler, rate-limits repeated connection errors while Redis is
    away (``worker.log_throttle``). Both also go on the handlers Celery gives billiard's
    ``multiprocessing`` logger (it does not propagate; its pool errors carry tracebacks).
    """
    from celery.utils.log import get_multiprocessing_logger

    from llm_orchestrator.security import install_redaction
    from worker.log_throttle import install_throttle

    for target in (logger, get_multiprocessing_logger()):
        if target is not None:
            install_redaction(target)
            install_throttle(target)
    for name in QUIET_LOGGERS:
        if logging.getLogger(name).getEffectiveLevel() < logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)


@worker_init.connect
def _preload_before_fork(**_: Any) -> None:
    """Import the library and the SDKs' lazy parts in the main process, before the pool forks.

    Children then start with everything loaded: no first task pays for imports, and no time
    limit can interrupt an import half-way (which would leave an SDK module broken).
    """
    from worker.metrics_server import start_from_env

    start_from_env()  # /metrics when LLM_ORCH_METRICS_PORT is set; must run before any fork
    import llm_orchestrator.orchestrator  # noqa: F401
    from llm_orchestrator.config.manager import ProviderConfig
    from llm_orchestrator.providers.registry import ADAPTERS, build_adapter

    for name in ADAPTERS:
        adapter = build_adapter(name, ProviderConfig(api_key="warm-up", base_url="http://127.0.0.1:9"))
        adapter.warm_up()
        adapter.close()


@worker_init.connect
def _load_config_once(**_: Any) -> None:
    """Parse the config in the main process, before the pool forks (children inherit it).

    Raises:
        SystemExit: the config cannot be loaded (one line: the file, the field, the problem; a
            worker that started anyway would take jobs only to fail them), or its ``redis.cluster``
            and REDIS_CLUSTER disagree (the Celery app, built at import from the environment,
            would use a result backend the state cannot be).
    """
    from llm_orchestrator.exceptions import ConfigError
    from worker import settings

    try:
        manager = _load()
    except ConfigError as e:
        raise SystemExit(f"config error: {e}") from None
    if bool(manager.config.redis.cluster) != settings.redis_cluster():
        raise SystemExit(
            f"the config says redis.cluster: {str(manager.config.redis.cluster).lower()} but "
            f"{settings.CLUSTER_ENV} is {'set' if settings.redis_cluster() else 'not set'}: "
            f"set {settings.CLUSTER_ENV}=1 for a Redis Cluster, and only then"
        )


@worker_ready.connect
def _log_config(**_: Any) -> None:
    """Say which file and version this worker runs (logging is set up by now; at worker_init it is not)."""
    manager = _load()
    log.info(
        "config %s loaded (sha256 %s); it is not re-read until the worker restarts",
        manager.path,
        manager.digest,
        extra={"config_path": manager.path, "config_sha256": manager.digest},
    )


@worker_process_init.connect
def _reset_after_fork(**_: Any) -> None:
    with _lock:
        _orchestrators.clear()
        manager = _state.get("config_manager")  # inherited from the main process: never re-read
        _state.clear()
        if manager is not None:
            _state["config_manager"] = manager


def _load() -> Any:
    with _lock:
        if "config_manager" not in _state:
            from llm_orchestrator.config.manager import ConfigManager

            _state["config_manager"] = ConfigManager.load()
        return _state["config_manager"]


def config() -> Any:
    """The validated config from ``$LLM_ORCH_CONFIG`` (parsed once, in the main process)."""
    return _load().config


def redis_client() -> Any:
    """This process's Redis client (REDIS_URL, else the config's redis.url); a cluster client with
    REDIS_CLUSTER=1 (the config's ``redis.cluster`` must agree: checked at worker start)."""
    import os

    from llm_orchestrator.redis_client import build
    from worker import settings

    url = os.environ.get("REDIS_URL") or config().redis.url or "redis://127.0.0.1:6379/0"
    with _lock:
        if "redis" not in _state:
            _state["redis"] = build(
                url,
                cluster=settings.redis_cluster(),
                socket_connect_timeout=5,
                socket_timeout=30,
                health_check_interval=25,
            )
        return _state["redis"]


def orchestrator(provider: str | None = None) -> Any:
    """The orchestrator for ``provider`` (default: the active one), built once per process."""
    from llm_orchestrator.orchestrator import LLMOrchestrator

    cfg = config()
    name = provider or cfg.active_provider
    client = redis_client()
    with _lock:
        if name not in _orchestrators:
            _orchestrators[name] = LLMOrchestrator(cfg.for_provider(name), redis=client)
        return _orchestrators[name]


def classifier(provider: str | None = None) -> Any:
    """The ``SignalClassifier`` on :func:`orchestrator` (``provider``), built once per process."""
    from llm_orchestrator.classification.pipeline import SignalClassifier

    orch = orchestrator(provider)
    with _lock:
        key = ("classifier", orch.provider)
        if key not in _state:
            _state[key] = SignalClassifier(orch)
        return _state[key]
