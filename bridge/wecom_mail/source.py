"""The source of a `wecom-mail` tenant: qyapi get_newcount polling of `watch`.

WeCom-native mail offers counts, not mails, and no per-member push: this is the only way
to hear about its mail. There is no Exmail directory to resolve patterns against, so
`watch` lists mailboxes (the config refuses patterns for this protocol).
"""

from __future__ import annotations

from bridge.config import TenantConfig
from bridge.exmail_api.poll_source import recovery_for
from bridge.exmail_api.watch import PlainWatch
from bridge.sources.poller import Poller
from bridge.sources.registry import SourceDeps
from bridge.wecom_mail.count import QyapiEmailLookup, WecomMailCount
from sinks.wecom_members import MemberDirectory

__all__ = ["build_wecom_mail_poller"]


def build_wecom_mail_poller(tenant: TenantConfig, deps: SourceDeps) -> Poller:
    """A poller of the tenant's watched mailboxes over qyapi."""
    members = MemberDirectory(
        api=QyapiEmailLookup(client=deps.wecom_mail, tenant=tenant), users={}, lookup_email=True
    )
    return Poller(
        tenant=tenant.name,
        protocol="wecom-mail",
        reader=WecomMailCount(client=deps.wecom_mail, tenant=tenant, members=members),
        watchlist=PlainWatch(tenant.watch),
        store=deps.store,
        committer=deps.committer(tenant),
        board=deps.board,
        recovery=recovery_for(tenant, deps),
        interval_s=deps.config.exmail.poll_interval_s,
        sleep=deps.sleep,
    )
