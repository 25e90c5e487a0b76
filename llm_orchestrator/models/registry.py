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
from collections.abc import Callable, Mapping
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
        return cls(
            id=d["id"],
            provider=d["provider"],
            deprecated=bool(d["deprecated"]),
            discovered_at=datetime.fromisoformat(d["discovered_at"]),
            last_seen_at=datetime.fromisoformat(d["last_seen_at"]),
        )


def usable(m: RemoteModel) -> bool:
    """Chat-capable base models only: no fine-tunes, no embedding-only models."""
    return not m.tuned and m.can_generate and not m.id.startswith(TUNED_PREFIXES)


class ModelRegistry:
    """The models each configured provider offers, discovered from its list-models endpoint and cached.

    Only :meth:`refresh_models` calls a provider; every other method reads the cache. With ``redis``
    the cache is shared by all processes (each reads a provider's entry once); while Redis is
    unreachable a read finds no models, so model validation is skipped rather than blocking requests.

    Args:
        adapters: provider name → that provider's adapter (only ``list_models`` is used), one
            entry per configured provider: each provider is refreshed with its own adapter. Any
            mapping: the orchestrator passes one that builds an adapter (and imports its SDK) on
            first lookup.
        redis: a client for the shared cache, or None (this process's memory).
        key_prefix: Redis key prefix (``redis.key_prefix``).

    Attributes:
        adapters: provider name → adapter, as given.
        prefix: the Redis key prefix.
    """

    def __init__(
        self, adapters: Mapping[str, BaseLLMProvider], redis: Any = None, key_prefix: str = "llmorch:"
    ) -> None:
        self.adapters: Mapping[str, BaseLLMProvider] = adapters
        self._redis: Any = redis
        self.prefix: str = key_prefix
        self._lock: threading.Lock = threading.Lock()
        self._memory: dict[str, dict[str, ModelInfo]] = {}
        self._refreshed: dict[str, datetime] = {}
        self._loaded: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._retry_at: float = 0.0  # Redis away: don't try loading again before this (monotonic)
        self._degraded: Callable[[BaseException], None] = DegradedLog(
            log, "model registry cache", "skipping model validation"
        ).warn

    # -- refresh (the only provider call) -----------------------------------------------------

    def refresh_models(self, provider: str | None = None) -> dict[str, list[ModelInfo]]:
        """Ask each configured provider (or just ``provider``) for its models and update the cache.

        Fine-tuned models and models that cannot generate text are left out. A cached model missing
        from the new listing is marked deprecated, not removed. Providers are refreshed one after
        another; an error stops the rest (the ones before it stay refreshed).

        Args:
            provider: refresh only this provider; None refreshes every configured one.

        Returns:
            Provider name → its cached models after the refresh (deprecated ones included), by id.

        Raises:
            ConfigError: ``provider`` is not configured.
            ProviderError: the provider's list-models call failed (e.g. ``AuthenticationError``).
            redis.RedisError: a Redis client is set but the cache write failed (e.g. Redis unreachable).
        """
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
            merged[model_id] = ModelInfo(
                model_id,
                provider,
                deprecated=remote.deprecated,
                discovered_at=old.discovered_at if old else now,
                last_seen_at=now,
            )
        for model_id, old in known.items():
            if model_id not in seen:
                if not old.deprecated:
                    log.warning("model %s/%s is no longer listed: marked deprecated", provider, model_id)
                merged[model_id] = ModelInfo(model_id, provider, True, old.discovered_at, old.last_seen_at)
        self._store(provider, merged, now)
        return sorted(merged.values(), key=lambda m: m.id)

    # -- reads (never call a provider) ------------------------------------------------------

    def list_models(self, provider: str | None = None, include_deprecated: bool = False) -> list[ModelInfo]:
        """List cached models, sorted by provider and id (no provider call).

        Args:
            provider: only this provider; None for every configured provider.
            include_deprecated: also list models the provider no longer lists.

        Returns:
            The cached models; empty for a provider never refreshed (or Redis unreachable).

        Raises:
            ConfigError: ``provider`` is not configured.
        """
        if provider is not None and provider not in self.adapters:
            raise ConfigError(f"provider {provider!r} is not configured")
        names = [provider] if provider else list(self.adapters)
        models = [m for name in names for m in self._load(name).values()]
        return sorted((m for m in models if include_deprecated or not m.deprecated), key=lambda m: (m.provider, m.id))

    def get(self, provider: str, model_id: str) -> ModelInfo | None:
        """Look up one cached model (no provider call).

        Args:
            provider: the provider's name.
            model_id: the model id as the provider lists it.

        Returns:
            Its entry (deprecated or not), or None when the cache does not hold it.
        """
        return self._load(provider).get(model_id)

    def has_data(self, provider: str) -> bool:
        """Tell whether the cache holds any model of ``provider``.

        Args:
            provider: the provider's name.

        Returns:
            True once a refresh stored at least one model for it (and the cache could be read).
        """
        return bool(self._load(provider))

    def refreshed_at(self, provider: str) -> datetime | None:
        """Tell when ``provider`` was last refreshed (by any process sharing the cache).

        Args:
            provider: the provider's name.

        Returns:
            The time of the last refresh (UTC), or None if never refreshed (or Redis unreachable).
        """
        self._load(provider)
        return self._refreshed.get(provider)

    def check_model(self, provider: str, model_id: str) -> None:
        """Check that ``provider`` offers ``model_id``; a deprecated model passes with a warning.

        Does nothing while the cache holds no model of ``provider`` (never refreshed, or Redis
        unreachable). The warning is logged once per deprecated model by this registry.

        Args:
            provider: the provider's name.
            model_id: the model about to be called.

        Raises:
            ConfigError: the cache lists models of ``provider`` but not ``model_id``; the message
                suggests up to three close matches.
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
            log.warning(
                "model %s/%s is deprecated (no longer listed by the provider); it still works for now",
                provider,
                model_id,
            )

    def needs_load(self, provider: str) -> bool:
        """Tell whether the next check of ``provider`` reads Redis (the async path then runs it in a thread).

        Args:
            provider: the provider's name.

        Returns:
            True when a Redis client is set, this process has not read ``provider``'s models yet, and
            no failed read is being waited out (``LOAD_RETRY_SECONDS``).
        """
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
