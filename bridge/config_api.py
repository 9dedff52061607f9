"""`[api]`: the subscription API on the public listener (`/v1/`), and how subscriptions
are delivered. Every key has a default, so configs without an `[api]` table keep working;
with no `admin_tokens` the API still answers, but only tokens made with
`exmail-bridge tokens create` can use it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["DEFAULT_SUBSCRIPTION_RETRY_S", "ApiSection"]

# The Standard Webhooks ladder (PROTOCOLS.md §3): about 28 hours of retries.
DEFAULT_SUBSCRIPTION_RETRY_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class ApiSection(BaseModel):
    """`[api]`: who may call `/v1/`, its limits, and subscription delivery settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admin_tokens: tuple[SecretStr, ...] = ()
    allow_private_targets: bool = False
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1 << 20)
    rate_per_s: float = Field(default=20.0, gt=0)
    rate_burst: int = Field(default=40, ge=1)
    attempts_retention_s: float = Field(default=7 * 86400.0, gt=0)
    attempts_max: int = Field(default=10_000, ge=10)  # per subscription
    disable_after_s: float = Field(default=3 * 86400.0, gt=0)
    refresh_s: float = Field(default=1.0, gt=0, le=2.0)
    retry_s: tuple[float, ...] = DEFAULT_SUBSCRIPTION_RETRY_S
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    max_subscriptions: int = Field(default=10_000, ge=1)

    @field_validator("admin_tokens", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # `admin_tokens_file` yields one string: one token per line.
        if isinstance(value, str):
            return tuple(line.strip() for line in value.splitlines() if line.strip())
        return value

    @field_validator("admin_tokens")
    @classmethod
    def _long_enough(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for item in value:
            if len(item.get_secret_value()) < 16:
                raise ValueError("each admin token must be at least 16 characters")
        return value

    @field_validator("retry_s")
    @classmethod
    def _ladder(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v < 0 for v in value):
            raise ValueError("must be a non-empty list of seconds >= 0")
        return value
