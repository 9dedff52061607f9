"""The subscription API's request and response bodies, as pydantic models.

They validate what comes in (unknown keys refused) and shape what goes out, and the
OpenAPI document's schemas are generated from them (`api_openapi`), so the document and
the server cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "AttemptList",
    "AttemptOut",
    "JobOut",
    "Problem",
    "RecoverIn",
    "ResendOut",
    "RotateIn",
    "SecretOut",
    "SubscriptionCreated",
    "SubscriptionIn",
    "SubscriptionList",
    "SubscriptionOut",
    "SubscriptionPatch",
    "TestOut",
    "TokenCreated",
    "TokenIn",
    "TokenList",
    "TokenOut",
]

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Patterns = Annotated[list[Pattern], Field(min_length=1, max_length=50)]
TenantName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://")]
Description = Annotated[str, StringConstraints(max_length=500)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[MetaKey, MetaValue], Field(max_length=32)]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


def _whsec(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith("whsec_"):
        raise ValueError("must look like whsec_<base64>")
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after whsec_ is not valid base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("the key must be 24 to 64 bytes")
    return value


class SubscriptionIn(_In):
    """`POST /v1/subscriptions`."""

    url: Url
    event_types: Patterns = Field(default_factory=lambda: ["*"])
    tenants: Patterns = Field(default_factory=lambda: ["*"])
    mailboxes: Patterns = Field(default_factory=lambda: ["*"])
    description: Description = ""
    metadata: Metadata = Field(default_factory=dict)
    secret: Annotated[str, StringConstraints(max_length=200)] | None = None

    _check_secret = field_validator("secret")(classmethod(lambda c, v: _whsec(v)))


class SubscriptionPatch(_In):
    """`PATCH /v1/subscriptions/{id}`: the fields given replace the stored ones."""

    url: Url | None = None
    event_types: Patterns | None = None
    tenants: Patterns | None = None
    mailboxes: Patterns | None = None
    description: Description | None = None
    metadata: Metadata | None = None


class RotateIn(_In):
    """`POST /v1/subscriptions/{id}/secret/rotate`."""

    grace_s: int = Field(default=86400, ge=0, le=7 * 86400)
    secret: Annotated[str, StringConstraints(max_length=200)] | None = None

    _check_secret = field_validator("secret")(classmethod(lambda c, v: _whsec(v)))


class RecoverIn(_In):
    """`POST /v1/subscriptions/{id}/recover`: resend what failed in [since, until]."""

    since: AwareDatetime
    until: AwareDatetime | None = None


class TokenIn(_In):
    """`POST /v1/tokens`."""

    tenants: Annotated[list[TenantName], Field(min_length=1, max_length=100)]
    description: Description = ""


class SubscriptionOut(_Out):
    """A subscription, without its secret."""

    id: str
    url: str
    event_types: list[str]
    tenants: list[str]
    mailboxes: list[str]
    description: str
    metadata: dict[str, str]
    scope: list[str] | None
    disabled: bool
    disabled_reason: str
    created_at: Timestamp
    updated_at: Timestamp


class SubscriptionCreated(SubscriptionOut):
    """The subscription just made, with its secret (shown only this once)."""

    secret: str


class SubscriptionList(_Out):
    """One page of subscriptions; `next_cursor` is null on the last page."""

    data: list[SubscriptionOut]
    next_cursor: str | None


class SecretOut(_Out):
    """The new secret after a rotation."""

    secret: str
    old_secret_expires_at: Timestamp | None


class TestOut(_Out):
    """What the receiver answered to a signed `exmail.ping`."""

    event_id: str
    ok: bool
    status_code: int | None
    duration_ms: int
    error: str


class AttemptOut(_Out):
    """One delivery attempt."""

    id: str
    event_id: str
    event_type: str
    at: Timestamp
    status: Literal["succeeded", "failed"]
    status_code: int | None
    duration_ms: int
    error: str
    trigger: str


class AttemptList(_Out):
    """One page of attempts, newest first."""

    data: list[AttemptOut]
    next_cursor: str | None


class ResendOut(_Out):
    """A resend, queued."""

    event_id: str
    status: Literal["queued"]


class JobOut(_Out):
    """A background recovery job, started."""

    id: str
    status: Literal["running"]
    since: Timestamp
    until: Timestamp


class TokenOut(_Out):
    """A scoped token, without its value or hash (neither is ever shown again)."""

    id: str
    tenants: list[str]
    description: str
    created_at: Timestamp


class TokenCreated(TokenOut):
    """A scoped token just made; `token` is shown only this once."""

    token: str


class TokenList(_Out):
    """One page of scoped tokens, by id (creation order); `next_cursor` is null on the
    last page."""

    data: list[TokenOut]
    next_cursor: str | None


class Problem(_Out):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
