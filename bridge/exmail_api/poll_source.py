"""The source of an `api` tenant: newcount polling of `watch` plus directory walks.

Without callbacks it polls every `poll_interval_s`. With callbacks (the receiver commits
what Tencent sends, on any replica) the same loop runs every `directory_interval_s`: its
first round reconciles the watched mailboxes after a start or hand-off (a callback sent
while no replica ran is lost after Tencent's three tries), then it walks the directory
and re-checks the watched counts once per interval, a net under dropped callbacks.
"""

from __future__ import annotations

from bridge.backoffs import Backoff
from bridge.config import TenantConfig
from bridge.exmail_api.directory import DirectoryWalker, SimpleListReader
from bridge.exmail_api.newcount import ApiNewcount
from bridge.exmail_api.watch import DirectoryWatch
from bridge.sources.poller import Poller
from bridge.sources.recovery import Recovery
from bridge.sources.registry import SourceDeps

__all__ = ["build_api_callback_keeper", "build_api_poller", "recovery_for"]


def build_api_poller(tenant: TenantConfig, deps: SourceDeps) -> Poller:
    """The source of an `api` tenant without callbacks."""
    return _api_poller(tenant, deps, "api", deps.config.exmail.poll_interval_s)


def build_api_callback_keeper(tenant: TenantConfig, deps: SourceDeps) -> Poller:
    """The source of an `api` tenant with callbacks: reconcile, then walk and re-check."""
    return _api_poller(tenant, deps, "api-callback", deps.config.exmail.directory_interval_s)


def _api_poller(tenant: TenantConfig, deps: SourceDeps, label: str, interval_s: float) -> Poller:
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
        protocol=label,
        reader=ApiNewcount(client=deps.api, tenant=tenant),
        watchlist=watchlist,
        store=deps.store,
        committer=committer,
        board=deps.board,
        recovery=recovery_for(tenant, deps),
        interval_s=interval_s,
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
