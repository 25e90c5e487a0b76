"""ModelRegistry: what each provider serves, discovered from its list-models endpoint.

There is no hard-coded model list. ``refresh_models`` is the only thing that asks a provider
(manual: no timer, no refresh on request). A model missing from a later listing is marked
deprecated, not deleted, and stays usable; one that comes back is un-deprecated. Fine-tuned
models and models that cannot generate text are left out. The cache lives in Redis when a
client is given (so every process and a new process see it), else in memory.
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.providers.base import BaseLLMProvider, RemoteModel
from llm_orchestrator.resilience.degrade import DegradedLog, redis_errors
from llm_orchestrator.resilience.keys import MODELS, MODELS_REFRESHED

log = logging.getLogger(__name__)
LOAD_RETRY_SECONDS = 5.0  # how long a process with Redis away validates nothing before looking again
TUNED_PREFIXES = ("ft:", "ft-", "tunedModels/")


@dataclass(frozen=True)
class ModelInfo:
    """One model of one provider, as the registry knows it."""

    id: str
    provider: str
    deprecated: bool
    discovered_at: datetime
    last_seen_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["discovered_at"] = self.discovered_at.isoformat()
        d["last_seen_at"] = self.last_seen_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        return cls(id=d["id"], provider=d["provider"], deprecated=bool(d["deprecated"]),
                   discovered_at=datetime.fromisoformat(d["discovered_at"]),
                   last_seen_at=datetime.fromisoformat(d["last_seen_at"]))


def usable(m: RemoteModel) -> bool:
    """Chat-capable base models only: no fine-tunes, no embedding-only models."""
    return not m.tuned and m.can_generate and not m.id.startswith(TUNED_PREFIXES)


class ModelRegistry:
    """Discovered models per provider.

    Args:
        adapters: provider name → that provider's adapter (only ``list_models`` is used), one
            entry per configured provider: each provider is refreshed with its own adapter.
        redis: a client for the shared cache, or None.
        key_prefix: Redis key prefix.
    """

    def __init__(self, adapters: dict[str, BaseLLMProvider], redis: Any = None, key_prefix: str = "llmorch:") -> None:
        self.adapters = adapters
        self._redis = redis
        self.prefix = key_prefix
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, ModelInfo]] = {}
        self._refreshed: dict[str, datetime] = {}
        self._loaded: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._retry_at = 0.0  # Redis away: don't try loading again before this (monotonic)
        self._degraded = DegradedLog(log, "model registry cache", "skipping model validation").warn

    # -- refresh (the only provider call) -----------------------------------------------------

    def refresh_models(self, provider: str | None = None) -> dict[str, list[ModelInfo]]:
        """Ask each provider (or just ``provider``) for its models and update the cache."""
        names = [provider] if provider else list(self.adapters)
        result: dict[str, list[ModelInfo]] = {}
        for name in names:
            if name not in self.adapters:
                raise ConfigError(f"provider {name!r} is not configured")
            listed = [m for m in self.adapters[name].list_models() if usable(m)]
            result[name] = self._merge(name, listed, datetime.now(timezone.utc))
        return result

    def _merge(self, provider: str, listed: list[RemoteModel], now: datetime) -> list[ModelInfo]:
        known = self._load(provider)
        seen = {m.id: m for m in listed}
        merged: dict[str, ModelInfo] = {}
        for model_id, remote in seen.items():
            old = known.get(model_id)
            merged[model_id] = ModelInfo(model_id, provider, deprecated=remote.deprecated,
                                         discovered_at=old.discovered_at if old else now, last_seen_at=now)
        for model_id, old in known.items():
            if model_id not in seen:
                if not old.deprecated:
                    log.warning("model %s/%s is no longer listed: marked deprecated", provider, model_id)
                merged[model_id] = ModelInfo(model_id, provider, True, old.discovered_at, old.last_seen_at)
        self._store(provider, merged, now)
        return sorted(merged.values(), key=lambda m: m.id)

    # -- reads (never call a provider) ------------------------------------------------------

    def list_models(self, provider: str | None = None, include_deprecated: bool = False) -> list[ModelInfo]:
        """Cached models, sorted by provider and id.

        Raises:
            ConfigError: ``provider`` is not configured.
        """
        if provider is not None and provider not in self.adapters:
            raise ConfigError(f"provider {provider!r} is not configured")
        names = [provider] if provider else list(self.adapters)
        models = [m for name in names for m in self._load(name).values()]
        return sorted((m for m in models if include_deprecated or not m.deprecated), key=lambda m: (m.provider, m.id))

    def get(self, provider: str, model_id: str) -> ModelInfo | None:
        return self._load(provider).get(model_id)

    def has_data(self, provider: str) -> bool:
        return bool(self._load(provider))

    def refreshed_at(self, provider: str) -> datetime | None:
        self._load(provider)
        return self._refreshed.get(provider)

    def check_model(self, provider: str, model_id: str) -> None:
        """Validate a model before use: unknown → ConfigError with close matches; deprecated → warn once.

        Does nothing until the registry has been refreshed for ``provider``.
        """
        models = self._load(provider)
        if not models:
            return
        info = models.get(model_id)
        if info is None:
            close = difflib.get_close_matches(model_id, list(models), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"model {model_id!r} is not offered by {provider}{hint}")
        if info.deprecated and (provider, model_id) not in self._warned:
            self._warned.add((provider, model_id))
            log.warning("model %s/%s is deprecated (no longer listed by the provider); it still works for now",
                        provider, model_id)

    def needs_load(self, provider: str) -> bool:
        """Whether the next check of ``provider`` reads Redis (once per process)."""
        with self._lock:
            return self._redis is not None and provider not in self._loaded and time.monotonic() >= self._retry_at

    # -- storage ----------------------------------------------------------------------------

    def _load(self, provider: str) -> dict[str, ModelInfo]:
        """This process's copy, read from Redis once per process (refresh re-reads)."""
        with self._lock:
            if provider in self._loaded or self._redis is None or time.monotonic() < self._retry_at:
                return self._memory.get(provider, {})
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(MODELS.format(prefix=self.prefix, provider=provider))
            pipe.get(MODELS_REFRESHED.format(prefix=self.prefix, provider=provider))
            raw, stamp = pipe.execute()
        except redis_errors() as e:  # no data is "don't validate", never "block the request"
            self._degraded(e)
            self._retry_at = time.monotonic() + LOAD_RETRY_SECONDS
            return {}
        models = {k.decode(): ModelInfo.from_dict(json.loads(v)) for k, v in raw.items()}
        with self._lock:
            self._memory[provider] = models
            if stamp:
                self._refreshed[provider] = datetime.fromisoformat(stamp.decode())
            self._loaded.add(provider)
            return models

    def _store(self, provider: str, models: dict[str, ModelInfo], now: datetime) -> None:
        if self._redis is not None:
            key = MODELS.format(prefix=self.prefix, provider=provider)
            pipe = self._redis.pipeline()
            pipe.delete(key)
            if models:
                pipe.hset(key, mapping={m.id: json.dumps(m.to_dict()) for m in models.values()})
            pipe.set(MODELS_REFRESHED.format(prefix=self.prefix, provider=provider), now.isoformat())
            pipe.execute()
        with self._lock:
            self._memory[provider] = models
            self._refreshed[provider] = now
            self._loaded.add(provider)

