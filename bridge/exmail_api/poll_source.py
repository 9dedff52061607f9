"""The source of an `api` tenant without callbacks: newcount polling plus directory walks."""

from __future__ import annotations

from bridge.backoffs import Backoff
from bridge.config import TenantConfig
from bridge.exmail_api.directory import DirectoryWalker, SimpleListReader
from bridge.exmail_api.newcount import ApiNewcount
from bridge.exmail_api.watch import DirectoryWatch
from bridge.sources.poller import Poller
from bridge.sources.recovery import Recovery
from bridge.sources.registry import SourceDeps

__all__ = ["build_api_poller"]


def build_api_poller(tenant: TenantConfig, deps: SourceDeps) -> Poller:
    """A poller of the tenant's watched mailboxes over the new API."""
    settings, committer = deps.config.exmail, deps.committer(tenant)
    walker = DirectoryWalker(
        tenant=tenant.name,
        reader=SimpleListReader(client=deps.api, tenant=tenant),
        store=deps.store,
        committer=committer,
    )
    watchlist = DirectoryWatch(
        tenant=tenant.name,
        watch=tenant.watch,
        walker=walker,
        store=deps.store,
        interval_s=settings.directory_interval_s,
    )
    return Poller(
        tenant=tenant.name,
        protocol="api",
        reader=ApiNewcount(client=deps.api, tenant=tenant),
        watchlist=watchlist,
        store=deps.store,
        committer=committer,
        board=deps.board,
        recovery=recovery_for(tenant, deps),
        interval_s=settings.poll_interval_s,
        sleep=deps.sleep,
    )


def recovery_for(tenant: TenantConfig, deps: SourceDeps) -> Recovery:
    """Back off and park as the legacy listener does, with the same settings."""
    settings = deps.config.exmail
    return Recovery(
        tenant=tenant.name,
        board=deps.board,
        backoff=Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s),
        park_s=settings.park_s,
        sleep=deps.sleep,
    )
