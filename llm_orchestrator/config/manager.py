"""Configuration: pydantic models for the YAML file, and ``ConfigManager`` to load it.

The file is read once at start (no hot reload). ``${VAR}`` and ``${VAR:-default}`` are
resolved from the environment before validation. Every problem becomes a ``ConfigError``
naming the file, the field path and what is wrong, never a secret's value.
"""

from __future__ import annotations

import hashlib
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from llm_orchestrator.classification.prompt import DEFAULT_PROMPT_VERSION, PROMPTS
from llm_orchestrator.exceptions import ConfigError
from llm_orchestrator.models.ids import is_fine_tuned

PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini")
DEFAULT_CONFIG_PATH = "config/config.yaml"
CONFIG_ENV_VAR = "LLM_ORCH_CONFIG"

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")
DEFAULT_TENANT = "default"  # the `tenants` entry used for a tenant without its own
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
MICRO_USD = Decimal("0.000001")
MAX_USD = Decimal(1_000_000_000)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutConfig(_Strict):
    """Seconds. ``read`` bounds the wait for each chunk of the answer."""

    connect: float = Field(5.0, gt=0)
    read: float = Field(60.0, gt=0)


class RateLimitConfig(_Strict):
    """Requests and tokens per minute; ``None`` means unlimited (or, for a provider, learned from
    its rate-limit headers unless ``learn_from_headers`` is off)."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    learn_from_headers: bool = True


class ProviderConfig(_Strict):
    """One provider's block."""

    api_key: SecretStr
    base_url: str | None = None
    default_model: str | None = None  # used when a job picks this provider explicitly
    fallback_models: list[str] = Field(default_factory=list)
    timeout: TimeoutConfig = TimeoutConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    model_rate_limits: dict[str, RateLimitConfig] = Field(default_factory=dict)
    # Gemini only: {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", ...}; None = adapter default.
    safety_settings: dict[str, str] | None = None

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("is empty")
        return v

    @field_validator("base_url")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("fallback_models")
    @classmethod
    def _models_not_empty(cls, v: list[str]) -> list[str]:
        if any(not m.strip() for m in v):
            raise ValueError("contains an empty model name")
        return v


class CostTrackingConfig(_Strict):
    enabled: bool = True
    log_path: str | None = "costs.csv"
    pricing_path: str | None = None  # user YAML overriding/adding prices
    spool_path: str | None = None  # ledger rows written while Redis is away (default: user state dir)


class RedisConfig(_Strict):
    url: str | None = None
    key_prefix: str = "llmorch:"
    cluster: bool = False  # url names a seed node of a Redis Cluster


class RetryConfig(_Strict):
    """The one retry layer (SDK retries are off)."""

    max_attempts: int = Field(3, ge=1)  # per model, first try included
    base_delay: float = Field(0.5, ge=0)  # seconds; full jitter in [0, min(cap, base*2^n)]
    max_delay: float = Field(8.0, ge=0)
    deadline: float = Field(120.0, gt=0)  # whole request, all models, all retries
    max_inline_wait: float = Field(10.0, ge=0)  # longer waits are raised as RetryLaterError


class BreakerConfig(_Strict):
    """Count-over-time circuit breaker per (provider, model), state in Redis when configured."""

    enabled: bool = True
    window_seconds: int = Field(60, ge=1)
    min_calls: int = Field(20, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    open_seconds: float = Field(30.0, gt=0)
    max_open_seconds: float = Field(300.0, gt=0)
    half_open_probes: int = Field(3, ge=1)
    probe_lease_seconds: float = Field(30.0, gt=0)


def _usd(value: Any) -> Decimal | None:
    """A USD amount, exact: a string ("5.00") or a number; at most 6 decimals (micro-dollars)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError('must be a USD amount such as "5.00"')
    try:
        amount = Decimal(str(value).strip())
        exact = amount.is_finite() and amount == amount.quantize(MICRO_USD)
    except ArithmeticError:
        raise ValueError('must be a USD amount such as "5.00"') from None
    if not amount.is_finite() or not 0 < amount <= MAX_USD:
        raise ValueError(f"must be more than 0 and at most {MAX_USD} USD")
    if not exact:
        raise ValueError("has more than 6 decimal places (money is counted in micro-dollars)")
    return amount


class TenantLimits(_Strict):
    """One tenant's limits (omit one for no limit). Days are UTC days."""

    rpm: int | None = Field(None, gt=0, strict=True)  # requests to the provider per minute
    tokens_per_day: int | None = Field(None, gt=0, strict=True)
    cost_per_day_usd: Decimal | None = None  # exact; write it as a string: "5.00"

    _cost = field_validator("cost_per_day_usd", mode="before")(_usd)

    @property
    def cost_per_day_micros(self) -> int | None:
        return None if self.cost_per_day_usd is None else int(self.cost_per_day_usd / MICRO_USD)

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tokens_per_day is None and self.cost_per_day_usd is None


class AlertsConfig(_Strict):
    """Operational alerts (``llm_orchestrator.alerts``): a threshold set to null is off.

    ``error_rate`` and ``latency_p99_seconds`` are judged per provider/model over each window of
    ``window_seconds`` (aligned to the epoch) from this process's provider calls, once the window
    has ended and only when it held at least ``window_min_calls`` calls (successful ones for the p99).
    """

    enabled: bool = True
    latency_seconds: float | None = Field(10.0, gt=0, allow_inf_nan=False)  # one provider call
    max_retries: int | None = Field(2, ge=0, strict=True)  # tries after the first, all models
    job_cost_usd: Decimal | None = Decimal("1.00")  # one request
    budget_warn_ratio: float = Field(0.8, gt=0, lt=1, allow_inf_nan=False)  # plus 100 %, always
    error_rate: float | None = Field(0.05, gt=0, lt=1, allow_inf_nan=False)  # failed / all calls, per window
    latency_p99_seconds: float | None = Field(10.0, gt=0, allow_inf_nan=False)  # successful calls, per window
    window_seconds: int = Field(300, ge=1, le=86400, strict=True)
    window_min_calls: int = Field(20, ge=1, strict=True)  # fewer calls in a window: not judged
    webhook_url: SecretStr | None = None  # POSTed JSON; may hold a token, so never logged
    webhook_timeout_seconds: float = Field(2.0, gt=0, le=30, allow_inf_nan=False)

    _cost = field_validator("job_cost_usd", mode="before")(_usd)

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _http_url(cls, v: Any) -> Any:
        if v is None or v == "":
            return None
        if not isinstance(v, str) or not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class CascadeStage(_Strict):
    """One model of the classification cascade: keep its answer when confidence >= ``accept_at``."""

    model: str = Field(min_length=1)
    accept_at: float = Field(0.0, ge=0, le=1)


class ClassificationConfig(_Strict):
    """Product-signal classification (``llm_orchestrator.classification``).

    ``cascade`` runs cheap → top within the job's provider; the last stage's answer is always
    kept. Answers go ``batch_size`` signals to a call.
    """

    # provider → its stages, cheap first. A provider without an entry: one stage, its model.
    cascade: dict[Literal["openai", "anthropic", "gemini"], list[CascadeStage]] = Field(default_factory=dict)
    batch_size: int = Field(10, ge=1, le=50)  # signals per model call
    keyword_stage: bool = True
    json_mode: bool = False
    max_signal_chars: int = Field(8000, ge=100, le=100_000)
    cache_ttl_seconds: int = Field(7 * 86400, ge=0)  # result cache; 0 turns it off
    prompt_version: str = DEFAULT_PROMPT_VERSION  # a key of classification.prompt.PROMPTS
    # a model file from `llm-orch prefilter train` (JSON); None: no prefilter stage
    prefilter_path: str | None = None

    @field_validator("prompt_version")
    @classmethod
    def _registered_prompt(cls, v: str) -> str:
        if v not in PROMPTS:
            raise ValueError(f"unknown prompt version {v[:64]!r}; expected one of {', '.join(PROMPTS)}")
        return v

    def stages(self, provider: str, active_model: str) -> list[CascadeStage]:
        """The cascade of ``provider`` (never another provider's models)."""
        return list(self.cascade.get(provider, [])) or [CascadeStage(model=active_model)]  # type: ignore[call-overload]


class OrchestratorConfig(_Strict):
    """The whole file."""

    active_provider: Literal["openai", "anthropic", "gemini"]
    active_model: str
    providers: dict[str, ProviderConfig]
    cost_tracking: CostTrackingConfig = CostTrackingConfig()
    redis: RedisConfig = RedisConfig()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    classification: ClassificationConfig = ClassificationConfig()
    # tenant name (or "default") → its limits; see resilience/budgets.py
    tenants: dict[str, TenantLimits] = Field(default_factory=dict)
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("active_model")
    @classmethod
    def _model_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty")
        return v

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, v: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        unknown = sorted(set(v) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r}; expected one of {', '.join(PROVIDERS)}")
        return v

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, v: dict[str, TenantLimits]) -> dict[str, TenantLimits]:
        for name in v:
            if not TENANT_NAME.match(name):
                raise ValueError(
                    f"tenant name {name[:64]!r} must be 1-64 letters, digits or _.@:- (starting with a letter or digit)"
                )
        return v

    @model_validator(mode="after")
    def _active_provider_configured(self) -> OrchestratorConfig:
        if self.active_provider not in self.providers:
            raise ValueError(f"active_provider {self.active_provider!r} has no entry under providers")
        return self

    @model_validator(mode="after")
    def _no_fine_tuned_models(self) -> OrchestratorConfig:
        """Seed 004 forbids fine-tuned models: refuse them here, before anything is called."""
        for where, model in self._model_ids():
            if is_fine_tuned(model):
                raise ValueError(f"{where}: {model!r} is a fine-tuned model; fine-tuned models are not supported")
        return self

    def _model_ids(self) -> list[tuple[str, str]]:
        """(field path, model id) of every model the file names."""
        found = [("active_model", self.active_model)]
        for name, block in self.providers.items():
            if block.default_model:
                found.append((f"providers.{name}.default_model", block.default_model))
            found += [(f"providers.{name}.fallback_models", m) for m in block.fallback_models]
            found += [(f"providers.{name}.model_rate_limits", m) for m in block.model_rate_limits]
        for name, stages in self.classification.cascade.items():
            found += [(f"classification.cascade.{name}", s.model) for s in stages]
        return found

    @property
    def provider(self) -> ProviderConfig:
        """The active provider's block."""
        return self.providers[self.active_provider]

    def for_provider(self, provider: str) -> OrchestratorConfig:
        """This config with ``provider`` active (an explicit choice; never an automatic switch).

        Raises:
            ConfigError: the provider is not configured or has no ``default_model``.
        """
        if provider == self.active_provider:
            return self
        block = self.providers.get(provider)
        if block is None:
            raise ConfigError(f"provider {provider!r} is not configured")
        if not block.default_model:
            raise ConfigError(f"providers.{provider}.default_model is needed to send jobs to {provider}")
        return self.model_copy(update={"active_provider": provider, "active_model": block.default_model})

    def tenant_limits(self, tenant: str | None) -> TenantLimits | None:
        """The limits of ``tenant``: its own entry, else ``default``; None for no tenant."""
        if tenant is None:
            return None
        return self.tenants.get(tenant) or self.tenants.get(DEFAULT_TENANT)

    def model_chain(self, model: str | None = None) -> list[str]:
        """The models to try in order: ``model`` (or the active one), then the fallbacks."""
        first = model or self.active_model
        chain = [first]
        for m in self.provider.fallback_models:
            if m not in chain:
                chain.append(m)
        return chain


class ConfigManager:
    """Loads and validates a configuration file, once at start (no hot reload).

    Args:
        config: the validated configuration.
        path: where it came from (a file path or a label such as ``<dict>``), or None.
        digest: the file's sha256 (first 12 hex digits), or None when it did not come from a file.

    Attributes:
        config: the validated configuration.
        path: its source, as given.
        digest: which version of the file a process runs (for logs), or None.

    Example:
        >>> cfg = ConfigManager.load("config/demo.yaml").config
        >>> cfg.active_provider
        'openai'
    """

    def __init__(self, config: OrchestratorConfig, path: str | None = None, digest: str | None = None) -> None:
        self.config: OrchestratorConfig = config
        self.path: str | None = path
        self.digest: str | None = digest  # sha256 (first 12 hex) of the file's text: which version a process runs

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> ConfigManager:
        """Read, resolve and validate a YAML file.

        Args:
            path: the file; default ``$LLM_ORCH_CONFIG``, then ``config/config.yaml``.
            env: variables for ``${VAR}``; default ``os.environ``.

        Returns:
            The manager, with the file's ``path`` and ``digest``.

        Raises:
            ConfigError: the file cannot be read, is not valid YAML, names an unset variable or has an
                invalid field; the message names the file, the field and the problem (never a secret).
        """
        path = str(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return cls(cls.parse(text, source=path, env=env), path=path, digest=digest)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "<dict>", env: dict[str, str] | None = None
    ) -> ConfigManager:
        """Validate an already-parsed mapping (``${VAR}`` is still resolved).

        Args:
            data: the configuration as the YAML file would parse.
            source: how error messages name it; also the manager's ``path``.
            env: variables for ``${VAR}``; default ``os.environ``.

        Returns:
            The manager (``digest`` None).

        Raises:
            ConfigError: an unset variable or an invalid field, named with ``source``.
        """
        return cls(_validate(_resolve(data, env if env is not None else dict(os.environ), source, ()), source), source)

    @classmethod
    def parse(cls, text: str, source: str = "<string>", env: dict[str, str] | None = None) -> OrchestratorConfig:
        """Parse YAML text into a validated config.

        Args:
            text: the YAML document.
            source: how error messages name it.
            env: variables for ``${VAR}``; default ``os.environ``.

        Returns:
            The validated configuration.

        Raises:
            ConfigError: invalid YAML (with line and column), a top level that is not a mapping, an
                unset variable or an invalid field.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or "invalid YAML"
            raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
        resolved = _resolve(data, env if env is not None else dict(os.environ), source, ())
        return _validate(resolved, source)


def _validate(data: dict[str, Any], source: str) -> OrchestratorConfig:
    try:
        return OrchestratorConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (typo?)"
            problems.append(f"{loc}: {msg}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _resolve(value: Any, env: dict[str, str], source: str, path: tuple[str, ...]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string, recursively."""
    if isinstance(value, dict):
        return {k: _resolve(v, env, source, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, source, (*path, str(i))) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        name, has_default, default = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        if has_default is not None:
            return default or ""
        raise ConfigError(f"{source}: {'.'.join(path)}: environment variable {name} is not set")

    return _ENV_PATTERN.sub(substitute, value)
