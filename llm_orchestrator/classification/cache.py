"""The result cache: an identical signal is never sent to a model twice within the TTL.

Feedback exports repeat themselves ("+1", the same canned complaint pasted by ten users). A
signal's key is a hash of its normalised text (case folded, whitespace collapsed), the prompt
version, the provider and the cascade's models: change any of those and the old answers are
ignored. Only answers a model gave and the parser accepted are stored. Redis when the
orchestrator has it (shared by every worker), else (or while Redis is away) this process's memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import CLASSIFY_CACHE

log = logging.getLogger(__name__)
MEMORY_ENTRIES = 100_000  # the in-process cache forgets the oldest entries past this


def normalise(text: str) -> str:
    """Case-folded with runs of whitespace collapsed: what counts as "the same signal"."""
    return " ".join(text.casefold().split())


def cache_digest(text: str, *, prompt_version: str, provider: str, models: list[str]) -> str:
    """The cache key's hash for a (sanitised) signal text."""
    h = hashlib.sha256()
    for part in (prompt_version, provider, ",".join(models), normalise(text)):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


class ResultCache:
    """Stored answers by digest: ``get`` → dict or None, ``put`` dict.

    Args:
        ttl: seconds an answer is kept; 0 turns the cache off.
        redis: a client, or None for this process's memory.
        prefix: the Redis key prefix.
    """

    def __init__(self, ttl: int, redis: Any = None, prefix: str = "llmorch:") -> None:
        self.ttl = ttl
        self._redis = redis
        self._prefix = prefix
        self._memory: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._degraded = DegradedLog(log, "classification result cache")

    def get(self, digest: str) -> dict[str, Any] | None:
        if not self.ttl:
            return None
        raw = self._get(digest)
        return None if raw is None else json.loads(raw)

    def put(self, digest: str, answer: dict[str, Any]) -> None:
        if self.ttl:
            self._put(digest, json.dumps(answer))

    def _get(self, digest: str) -> str | bytes | None:
        if self._redis is not None:
            try:
                return self._redis.get(CLASSIFY_CACHE.format(prefix=self._prefix, digest=digest))
            except redis_errors() as err:  # a miss is always safe: the model is asked instead
                self._degraded.warn(err)
        with self._lock:
            hit = self._memory.get(digest)
            if hit is None or hit[0] < time.monotonic():
                return None
            self._memory.move_to_end(digest)
            return hit[1]

    def _put(self, digest: str, raw: str) -> None:
        if self._redis is not None:
            try:
                self._redis.set(CLASSIFY_CACHE.format(prefix=self._prefix, digest=digest), raw, ex=self.ttl)
                return
            except redis_errors() as err:
                self._degraded.warn(err)
        with self._lock:
            self._memory[digest] = (time.monotonic() + self.ttl, raw)
            self._memory.move_to_end(digest)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)
