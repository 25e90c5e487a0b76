"""Types shared by the memory and Redis breakers."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_JITTER = 0.1  # ±10 % on every open time


@dataclass(frozen=True)
class BreakerSettings:
    """Numbers from the ``breaker`` config block (seconds)."""

    window_seconds: int = 60
    min_calls: int = 20
    failure_rate: float = 0.5
    open_seconds: float = 30.0
    max_open_seconds: float = 300.0
    half_open_probes: int = 3
    probe_lease_seconds: float = 30.0
    jitter: float = DEFAULT_JITTER

    @classmethod
    def from_config(cls, cfg: object) -> BreakerSettings:
        fields = (
            "window_seconds",
            "min_calls",
            "failure_rate",
            "open_seconds",
            "max_open_seconds",
            "half_open_probes",
            "probe_lease_seconds",
        )
        return cls(**{f: getattr(cfg, f) for f in fields})


@dataclass(frozen=True)
class Permit:
    """The answer to "may I call?". Report the outcome with the same permit.

    ``gen`` is the breaker generation it was granted in; ``lease`` is set for half-open probes;
    ``backend`` says which store granted it ("redis" or "memory").
    """

    provider: str
    model: str
    gen: int
    lease: str | None = None
    allowed: bool = True
    retry_after: float = 0.0
    backend: str = "memory"
