"""A plain registry: the kind of source each tenant gets, and the factory that builds it.

A tenant's kind follows from its config: `legacy`, `api-callback` (protocol `api` with a
`callback_token`), `api-poll` (protocol `api` without one) or `wecom-mail`. A factory
takes what it needs from `SourceDeps` and ignores the rest; a new kind of source is a new
entry here and a new module, never a branch inside an existing source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.config import Config, TenantConfig
from bridge.errors import ConfigError
from bridge.ratelimit import RateLimiter
from bridge.routing import Router
from bridge.sources.base import Source
from bridge.sources.commit import Committer
from bridge.states import StateBoard
from bridge.store.base import Store

__all__ = [
    "SOURCE_TYPES",
    "SourceDeps",
    "SourceFactory",
    "build_source",
    "check_sources",
    "source_kind",
]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SourceDeps:
    """What sources may need from the rest of the bridge, built once by the app."""

    config: Config
    store: Store
    router: Router
    board: StateBoard
    rate: RateLimiter
    legacy: Any  # bridge.exmail.client.ExmailClient (a listener's Upstream)
    api: Any = None  # bridge.exmail_api.client.ApiClient for api.exmail.qq.com
    wecom_mail: Any = None  # an ApiClient for qyapi.weixin.qq.com (protocol wecom-mail)
    sleep: Sleep = asyncio.sleep

    def committer(self, tenant: TenantConfig) -> Committer:
        """The tenant's commit path."""
        return Committer(
            tenant=tenant.name,
            store=self.store,
            router=self.router,
            backoff_base_s=self.config.exmail.backoff_base_s,
            sleep=self.sleep,
        )


SourceFactory = Callable[[TenantConfig, SourceDeps], Source]


def source_kind(tenant: TenantConfig) -> str:
    """`legacy`, `api-callback`, `api-poll` or `wecom-mail`."""
    if tenant.protocol == "api":
        return "api-callback" if tenant.callback_token is not None else "api-poll"
    return tenant.protocol


def _legacy(tenant: TenantConfig, deps: SourceDeps) -> Source:
    from bridge.listener import Listener

    return Listener(
        tenant=tenant,
        upstream=deps.legacy,
        store=deps.store,
        router=deps.router,
        settings=deps.config.exmail,
        board=deps.board,
        sleep=deps.sleep,
    )


def _api_callback(tenant: TenantConfig, deps: SourceDeps) -> Source:
    # Callbacks arrive over HTTP on any replica; the owning replica still reconciles
    # after a gap and walks the directory (bridge/exmail_api/poll_source.py).
    from bridge.exmail_api.poll_source import build_api_callback_keeper

    return build_api_callback_keeper(tenant, deps)


def _api_poll(tenant: TenantConfig, deps: SourceDeps) -> Source:
    from bridge.exmail_api.poll_source import build_api_poller

    return build_api_poller(tenant, deps)


def _wecom_mail(tenant: TenantConfig, deps: SourceDeps) -> Source:
    from bridge.wecom_mail.source import build_wecom_mail_poller

    return build_wecom_mail_poller(tenant, deps)


SOURCE_TYPES: dict[str, SourceFactory] = {
    "legacy": _legacy,
    "api-callback": _api_callback,
    "api-poll": _api_poll,
    "wecom-mail": _wecom_mail,
}


def check_sources(tenants: Sequence[TenantConfig]) -> None:
    """ConfigError naming the first tenant whose kind of source this build lacks."""
    for i, tenant in enumerate(tenants):
        kind = source_kind(tenant)
        if kind not in SOURCE_TYPES:
            raise ConfigError(f"tenants[{i}].protocol", f"this build has no {kind} source")


def build_source(tenant: TenantConfig, deps: SourceDeps) -> Source:
    """The source of `tenant`, by its kind (check_sources() at start rules out a miss)."""
    return SOURCE_TYPES[source_kind(tenant)](tenant, deps)
