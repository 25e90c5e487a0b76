"""Builds an orchestrator's parts from the config (dependency injection in one place).

Any part can be passed in instead (tests, benchmarks, a shared registry). Nothing here
connects to Redis or a provider: redis-py connects on first command, SDK clients on first call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_orchestrator.alerts import Alerts
from llm_orchestrator.config.manager import OrchestratorConfig
from llm_orchestrator.cost_tracker import CostTracker
from llm_orchestrator.models.registry import ModelRegistry
from llm_orchestrator.pricing import load_prices
from llm_orchestrator.providers.base import BaseLLMProvider
from llm_orchestrator.providers.registry import LazyAdapters, build_adapter
from llm_orchestrator.resilience.breakers import Breakers
from llm_orchestrator.resilience.budgets import TenantBudgets
from llm_orchestrator.resilience.ratelimit import RateLimiter


@dataclass
class Parts:
    """The collaborators of one orchestrator."""

    adapter: BaseLLMProvider
    registry: ModelRegistry | None
    cost_tracker: CostTracker | None
    breakers: Breakers
    limiter: RateLimiter
    redis: Any
    budgets: TenantBudgets = field(default_factory=TenantBudgets)  # default: no tenant limits
    alerts: Alerts = field(default_factory=Alerts)  # default: alerts off


def redis_from_config(config: OrchestratorConfig) -> Any:
    """A lazily-connecting Redis client for ``redis.url``, or None when none is configured."""
    if not config.redis.url:
        return None
    from llm_orchestrator.redis_client import build

    return build(config.redis.url, cluster=config.redis.cluster, health_check_interval=30)


def assemble(
    config: OrchestratorConfig,
    *,
    redis: Any = None,
    adapter: BaseLLMProvider | None = None,
    registry: ModelRegistry | None = None,
    cost_tracker: CostTracker | None = None,
    breakers: Breakers | None = None,
    limiter: RateLimiter | None = None,
    budgets: TenantBudgets | None = None,
    alerts: Alerts | None = None,
) -> Parts:
    """Return the parts for ``config``, building each one not given.

    Args:
        config: the validated configuration.
        redis: a client; when None, one is made from ``config.redis.url`` if set.
        adapter, registry, cost_tracker, breakers, limiter, budgets, alerts: ready-made parts.
    """
    client = redis if redis is not None else redis_from_config(config)
    prefix = config.redis.key_prefix
    if adapter is None:
        adapter = build_adapter(config.active_provider, config.provider)
    if registry is None:  # every configured provider, each adapter built (its SDK imported) on first use
        adapters = LazyAdapters(config.providers, {config.active_provider: adapter})
        registry = ModelRegistry(adapters, redis=client, key_prefix=prefix)
    if cost_tracker is None and config.cost_tracking.enabled:
        cost_tracker = CostTracker(config.cost_tracking, redis=client, key_prefix=prefix)
    if alerts is None:
        alerts = Alerts(config.alerts, redis=client, key_prefix=prefix)
    if breakers is None:
        breakers = Breakers(config.breaker, redis=client, key_prefix=prefix, on_open=alerts.breaker_opened)
    if limiter is None:
        limiter = RateLimiter.from_config(config, redis=client, key_prefix=prefix)
    if budgets is None:
        prices = cost_tracker.prices if cost_tracker is not None else None  # one table: budgets agree with the ledger
        if prices is None and any(t.cost_per_day_usd is not None for t in config.tenants.values()):
            prices = load_prices(config.cost_tracking.pricing_path)
        budgets = TenantBudgets.from_config(
            config, redis=client, key_prefix=prefix, prices=prices, on_usage=alerts.budget_usage
        )
    return Parts(
        adapter=adapter,
        registry=registry,
        cost_tracker=cost_tracker,
        breakers=breakers,
        limiter=limiter,
        redis=client,
        budgets=budgets,
        alerts=alerts,
    )
