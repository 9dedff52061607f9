"""Which credential keys each tenant `protocol` needs, allows and forbids.

A wrong combination is a configuration error naming the offending key, so an operator who
pastes a CorpSecret into a legacy tenant (or forgets the AES key of a callback) learns it
at start, not from a silent tenant.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bridge.baselines import is_glob
from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.config import TenantConfig

__all__ = ["check_aes_key", "check_tenant", "required_keys"]

_AES_KEY_RE = re.compile(r"^[A-Za-z0-9+/]{43}$")
_LEGACY = ("client_id", "client_secret")
_CORP = ("corp_id", "corp_secret")
_CALLBACK = ("callback_token", "callback_aes_key")
# per protocol: keys that must be set, keys that must not be
_REQUIRED = {"legacy": _LEGACY, "api": _CORP, "wecom-mail": _CORP}
_FORBIDDEN = {
    "legacy": (*_CORP, "sso_secret", *_CALLBACK),
    "api": _LEGACY,
    "wecom-mail": (*_LEGACY, "sso_secret", *_CALLBACK),
}
_WHY = {
    "legacy": 'belongs to protocol "api" or "wecom-mail", not "legacy"',
    "api": 'belongs to protocol "legacy", not "api"',
    "wecom-mail": 'is not used by protocol "wecom-mail"',
}


def check_aes_key(value: SecretStr | None) -> SecretStr | None:
    """An EncodingAESKey is 43 base64 characters that decode (with "=") to 32 bytes."""
    if value is None:
        return None
    # 43 characters of the base64 alphabet plus "=" always decode to exactly 32 bytes.
    if not _AES_KEY_RE.match(value.get_secret_value()):
        raise ValueError("must be 43 base64 characters (the EncodingAESKey)")
    return value


def required_keys(protocol: str) -> tuple[str, ...]:
    """The keys a tenant of `protocol` must set."""
    return _REQUIRED.get(protocol, ())


def _is_set(tenant: TenantConfig, key: str) -> bool:
    value = getattr(tenant, key)
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def check_tenant(path: str, tenant: TenantConfig) -> None:
    """Raise ConfigError naming `path.key` when the tenant's keys do not fit its protocol."""
    protocol = tenant.protocol
    for key in _REQUIRED[protocol]:
        if not _is_set(tenant, key):
            raise ConfigError(f"{path}.{key}", "required")
    for key in _FORBIDDEN[protocol]:
        if _is_set(tenant, key):
            raise ConfigError(f"{path}.{key}", _WHY[protocol])
    _check_watch(path, tenant)
    token, aes = (_is_set(tenant, key) for key in _CALLBACK)
    if token != aes:
        missing = "callback_aes_key" if token else "callback_token"
        raise ConfigError(f"{path}.{missing}", "required when callback mode is configured")


def _check_watch(path: str, tenant: TenantConfig) -> None:
    """wecom-mail has no directory to resolve a pattern against: it needs mailboxes."""
    if tenant.protocol != "wecom-mail":
        return
    for j, entry in enumerate(tenant.watch):
        if is_glob(entry):
            raise ConfigError(
                f"{path}.watch[{j}]", 'patterns need a directory; "wecom-mail" has none'
            )
