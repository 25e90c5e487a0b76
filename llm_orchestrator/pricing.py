"""Prices and the cost formula. Money is exact: ``Decimal`` per call, integer micro-dollars stored.

cost = uncached input × input + cached × cached_input + cache writes × cache_write
       + output × output                     (all per 1M tokens; batch jobs × (1 − discount))

One call's cost is rounded half-up to a whole micro-dollar once, when it is recorded; every sum
after that is an exact integer sum.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.models.ids import family
from llm_orchestrator.providers.base import Usage

log = logging.getLogger(__name__)
PER_TOKENS = Decimal(1_000_000)
MICRO = Decimal("0.000001")
PRICE_FIELDS = ("input", "cached_input", "cache_write", "output")


@dataclass(frozen=True)
class Rates:
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal


@dataclass(frozen=True)
class Price:
    """One model's list prices (USD per 1M tokens)."""

    provider: str
    model: str
    rates: Rates
    batch_discount: Decimal = Decimal(0)
    long_context_above: int | None = None
    long_context: Rates | None = None
    effective_date: str = ""
    source: str = ""
    verified: bool = False

    def cost(self, usage: Usage, batch: bool = False) -> Decimal:
        """Exact cost of one call in USD (not rounded)."""
        rates = self.rates
        if self.long_context is not None and self.long_context_above and usage.prompt_tokens > self.long_context_above:
            rates = self.long_context
        uncached = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
        total = (
            uncached * rates.input
            + usage.cached_tokens * rates.cached_input
            + usage.cache_write_tokens * rates.cache_write
            + usage.completion_tokens * rates.output
        ) / PER_TOKENS
        if batch:
            total *= 1 - self.batch_discount
        return total


def price_for(prices: dict[tuple[str, str], Price], provider: str, model: str) -> Price | None:
    """The price of ``model``: its own entry, else its family's (a dated snapshot such as
    ``gpt-6-luna-2026-09-22`` is billed at ``gpt-6-luna``'s list price)."""
    return prices.get((provider, model)) or prices.get((provider, family(model)))


def to_micros(usd: Decimal) -> int:
    """Round a cost half-up to whole micro-dollars (done once per call)."""
    return int((usd / MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) * MICRO).quantize(MICRO)


def _rates(data: dict[str, Any], where: str) -> Rates:
    try:
        return Rates(**{f: Decimal(str(data[f])) for f in PRICE_FIELDS})
    except (KeyError, ArithmeticError) as e:
        raise ConfigError(f"{where}: every price needs {', '.join(PRICE_FIELDS)} as numbers ({e})") from None


def parse_prices(data: dict[str, Any], source: str) -> dict[tuple[str, str], Price]:
    """Parse a pricing mapping ``provider → model → fields``."""
    prices: dict[tuple[str, str], Price] = {}
    for provider, models in (data or {}).items():
        for model, entry in (models or {}).items():
            where = f"{source}: {provider}.{model}"
            long_ctx = entry.get("long_context")
            prices[(provider, model)] = Price(
                provider=provider,
                model=model,
                rates=_rates(entry, where),
                batch_discount=Decimal(str(entry.get("batch_discount", 0))),
                long_context_above=long_ctx.get("above_prompt_tokens") if long_ctx else None,
                long_context=_rates(long_ctx, where + ".long_context") if long_ctx else None,
                effective_date=str(entry.get("effective_date", "")),
                source=str(entry.get("source", "")),
                verified=bool(entry.get("verified", False)),
            )
    return prices


def load_prices(override_path: str | Path | None = None) -> dict[tuple[str, str], Price]:
    """The packaged price table, with a user file's entries added or replacing."""
    text = resources.files("llm_orchestrator").joinpath("pricing.yaml").read_text(encoding="utf-8")
    prices = parse_prices(yaml.safe_load(text), "pricing.yaml")
    if override_path:
        try:
            data = yaml.safe_load(Path(override_path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"{override_path}: cannot read pricing file ({type(e).__name__})") from None
        prices.update(parse_prices(data, str(override_path)))
    return prices


_PACKAGED: dict[tuple[str, str], Price] = {}


def calculate_cost(
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    batch: bool = False,
) -> Decimal | None:
    """The exact list-price cost of one call in USD (rounded to the micro-dollar), or None when unpriced.

    ``prompt_tokens`` includes ``cached_tokens`` and ``cache_write_tokens`` (the library's convention);
    a dated snapshot is priced at its family's list price.

    Args:
        provider: ``openai``, ``anthropic`` or ``gemini``.
        model: the model id (or a dated snapshot of it).
        prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens: the call's usage.
        batch: priced at the provider's batch discount.

    Returns:
        The cost as a ``Decimal`` with six decimals, or None for a model the price table lacks.
    """
    if not _PACKAGED:
        _PACKAGED.update(load_prices())
    price = price_for(_PACKAGED, provider, model)
    if price is None:
        return None
    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
    )
    return from_micros(to_micros(price.cost(usage, batch=batch)))


COST_TIERS = ("cheap", "mid", "top")


def cost_tiers(prices: dict[tuple[str, str], Price]) -> dict[tuple[str, str], str]:
    """Each priced model's tier within its provider, from the price table (not a hard-coded list):
    by the blended price (3 input : 1 output), the cheapest third is ``cheap``, the dearest ``top``."""
    tiers: dict[tuple[str, str], str] = {}
    for provider in {p for p, _ in prices}:
        models = sorted(
            (m for p, m in prices if p == provider),
            key=lambda m: 3 * prices[(provider, m)].rates.input + prices[(provider, m)].rates.output,
        )
        for rank, model in enumerate(models):
            tiers[(provider, model)] = COST_TIERS[min(2, rank * 3 // max(1, len(models)))]
    return tiers
