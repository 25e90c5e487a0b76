"""The ``worker`` runner of ``llm-orch classify --via worker``: fan out through Celery.

Registered under the entry-point group ``llm_orchestrator.classify_runners`` (pyproject.toml),
so the library's CLI finds it without importing Celery itself. Rows go out as
``llm.classify_batch`` jobs of ``CHUNK`` signals on the ``llm.batch`` queue, at most
``IN_FLIGHT`` at a time, and come back in input order.

Redis: the broker and result backend are the config's ``redis.url`` (usually
``${REDIS_URL:-redis://…}``, so the environment still decides through the config); a config
without one is a ``ConfigError``, and an unreachable Redis fails before anything is sent.

Long signals: a text longer than ``classification.max_signal_chars`` is cut here exactly as the
pipeline cuts it (:func:`~llm_orchestrator.security.sanitize_signal`: head and tail kept) and its
answer is flagged ``truncated``, so the worker's payload limit never rejects a row for length.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from llm_orchestrator.classification.batch import ChunkResult, InputFileError, Runner
from llm_orchestrator.exceptions import ConfigError, LLMOrchestratorError
from llm_orchestrator.security import SanitizedSignal, sanitize_signal
from tasks.payloads import MAX_SIGNAL_CHARS, BatchSignal

CHUNK = 100
IN_FLIGHT = 16
JOB_TIMEOUT_SECONDS = 600
PING_TIMEOUT_SECONDS = 3
SHOWN_ID_CHARS = 60  # of a bad signal id in an error message


def runner(orch: Any) -> Runner:
    """A runner for the orchestrator's provider (the worker uses its own config for the rest).

    Raises:
        ConfigError: the config has no ``redis.url``.
        redis.ConnectionError: that Redis does not answer (nothing was sent).
    """
    url = orch.config.redis.url
    if not url:
        raise ConfigError("classify --via worker needs redis.url in the config (the Redis the workers use)")
    _ping(url)
    app, submit = _bind(url)
    provider = orch.provider
    limit = min(orch.config.classification.max_signal_chars, MAX_SIGNAL_CHARS)

    def run(rows: list[dict[str, Any]]) -> Iterator[ChunkResult]:
        chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
        flying: deque[tuple[list[dict[str, Any]], list[SanitizedSignal | None], Any]] = deque()
        try:
            for chunk in chunks:
                signals, cut = zip(*(_signal(r, limit) for r in chunk))
                flying.append((chunk, list(cut), submit(list(signals), provider=provider)))
                if len(flying) >= IN_FLIGHT:
                    yield _collect(*flying[0])
                    flying.popleft()
            while flying:
                yield _collect(*flying[0])
                flying.popleft()
        except BaseException:  # Ctrl-C, or a failed job: stop waiting, then let it go on up
            _stop_waiting(app, [handle.id for _, _, handle in flying])
            raise

    return run


def _ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=PING_TIMEOUT_SECONDS, socket_timeout=PING_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def _bind(url: str) -> tuple[Any, Any]:
    """Point the producer at ``url``; return the Celery app and ``submit_classification_batch``.

    ``worker.settings`` and ``worker.producer`` read ``REDIS_URL``; in this (CLI) process it is
    set to the config's URL before they are imported, and the app's conf follows it in case
    ``worker.app`` was imported earlier. The broker is ``CELERY_BROKER_URL`` when set (the
    workers' broker), else that same Redis.
    """
    os.environ["REDIS_URL"] = url
    from worker import settings
    from worker.app import celery_app
    from worker.producer import submit_classification_batch

    celery_app.conf.broker_url = settings.broker_url()  # CELERY_BROKER_URL (e.g. RabbitMQ), else this Redis
    celery_app.conf.result_backend = url
    return celery_app, submit_classification_batch


def _stop_waiting(app: Any, job_ids: list[str]) -> None:
    """Unsubscribe from these jobs' results now, while Redis is still reachable.

    Otherwise the result being waited on is finalised at interpreter exit, when Celery's
    ``AsyncResult.__del__`` can no longer reach Redis and prints a traceback. The jobs
    themselves still run on the workers (their results are kept for ``result_expires``).
    """
    import redis

    consumer = app.backend.result_consumer
    for job_id in job_ids:
        try:
            consumer.cancel_for(job_id)
        except (redis.RedisError, OSError):
            return  # Redis went away: nothing left to unsubscribe from


def _signal(row: dict[str, Any], limit: int) -> tuple[dict[str, Any], SanitizedSignal | None]:
    """The payload entry of ``row`` (its text cut to ``limit`` like the pipeline does) and the
    cut, if any.

    Raises:
        InputFileError: the worker would reject the row anyway (names the id and the limit).
    """
    text, cut = row["text"], None
    if len(text) > limit:
        cut = sanitize_signal(text, limit)
        text = cut.text
    signal = {"id": row["id"], "text": text}
    try:
        BatchSignal.model_validate(signal)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        shown = row["id"] if len(row["id"]) <= SHOWN_ID_CHARS else row["id"][:SHOWN_ID_CHARS] + "…"
        raise InputFileError(f"signal {shown!r}: {field}: {err['msg']} (the worker's limit)") from None
    return signal, cut


def _collect(chunk: list[dict[str, Any]], cuts: list[SanitizedSignal | None], handle: Any) -> ChunkResult:
    result = handle.get(timeout=JOB_TIMEOUT_SECONDS)
    if result["status"] != "succeeded":
        error = result.get("error", {})
        raise LLMOrchestratorError(f"job {handle.id} failed: {error.get('type')}: {error.get('message')}")
    answers = [_flag_cut(answer, cut) for answer, cut in zip(result["results"], cuts)]
    cost = result["cost"]
    return ChunkResult(
        chunk, answers, cost["prompt_tokens"], cost["cached_tokens"], result.get("call_latencies_ms", [])
    )


def _flag_cut(answer: dict[str, Any], cut: SanitizedSignal | None) -> dict[str, Any]:
    """The answer with the flags of the cut made here (the worker only saw the cut text)."""
    if cut is None:
        return answer
    flags = list(cut.flags) + [f for f in answer.get("flags", []) if f not in cut.flags]
    return {**answer, "truncated": answer.get("truncated", False) or cut.truncated, "flags": flags}
