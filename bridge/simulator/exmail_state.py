"""The Exmail simulator's state: tenants, directories, mailboxes, push queues, tokens.

Plain data plus the methods the control API (and in-process tests) call. The only asyncio
object is one `Event` per tenant, set when a push is queued, so held listens wake at once
without polling.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from bridge.simulator.exmail_faults import Faults, SimSettings, apply_fields
from bridge.simulator.exmail_model import SimMail, SimTenant

__all__ = ["ExmailSimState", "SimMail", "SimTenant", "UnknownTenant"]

ACTION_DELETED, ACTION_ADDED, ACTION_MODIFIED = 1, 2, 3


class UnknownTenant(KeyError):
    """No tenant with this client_id (only when the simulator has a credentials file)."""


class ExmailSimState:
    """Every simulated tenant; `credentials` (client_id -> secret) closes the door to others."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        settings: SimSettings | None = None,
    ) -> None:
        self.credentials = dict(credentials) if credentials is not None else None
        self._initial = settings or SimSettings()
        self.closing = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        """Forget tenants, tokens, faults and counters; restore the initial settings."""
        self.settings = apply_fields(self._initial, {})
        self.faults = Faults()
        self.tenants: dict[str, SimTenant] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires at)
        self.token_requests: Counter[str] = Counter()
        self.listen_requests: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._last_ver = 0

    def close(self) -> None:
        """Release every held listen (server shutdown)."""
        self.closing.set()
        for tenant in self.tenants.values():
            tenant.wakeup.set()

    # -- tenants, credentials, tokens --------------------------------------------------------

    def tenant(self, client_id: str) -> SimTenant:
        """The tenant `client_id` (created on first use unless credentials are fixed)."""
        found = self.tenants.get(client_id)
        if found is not None:
            return found
        if self.credentials is not None and client_id not in self.credentials:
            raise UnknownTenant(client_id)
        self.tenants[client_id] = created = SimTenant(client_id=client_id)
        return created

    def known(self, client_id: str) -> bool:
        """Whether `client_id` is a tenant: in the credentials file, else one that asked for
        a token (so a mail to a misspelt tenant, or to its name, is refused, not dropped)."""
        if self.credentials is not None:
            return client_id in self.credentials
        return self.token_requests[client_id] > 0

    def check_credentials(self, client_id: str, secret: str) -> bool:
        """Whether this credential may get a token."""
        if not client_id or not secret:
            return False
        if self.credentials is None:
            return True
        expected = self.credentials.get(client_id)
        return expected is not None and secrets.compare_digest(expected, secret)

    def issue_token(self, client_id: str) -> tuple[str, int]:
        """A new token for `client_id` and its lifetime in seconds."""
        tenant = self.tenant(client_id)
        expires_in_s = (tenant.settings or self.settings).token_expires_in_s
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (client_id, time.monotonic() + expires_in_s)
        return token, expires_in_s

    def tenant_of_token(self, token: str) -> SimTenant | None:
        """The tenant a live token belongs to, or None if unknown, revoked or expired."""
        entry = self.tokens.get(token)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            del self.tokens[token]
            return None
        return self.tenant(entry[0])

    def revoke_tokens(self, client_id: str) -> int:
        """Revoke every token of `client_id`; how many there were."""
        doomed = [t for t, (owner, _) in self.tokens.items() if owner == client_id]
        for token in doomed:
            del self.tokens[token]
        return len(doomed)

    # -- settings and faults -----------------------------------------------------------------

    def configure(self, client_id: str | None = None, /, **changes: Any) -> None:
        """Change behaviour settings, globally or for one tenant."""
        if client_id is None:
            self.settings = apply_fields(self.settings, changes)
            return
        tenant = self.tenant(client_id)
        tenant.settings = apply_fields(tenant.settings or self.settings, changes)

    def settings_for(self, tenant: SimTenant) -> SimSettings:
        """The settings in force for `tenant`."""
        return tenant.settings or self.settings

    def set_faults(self, client_id: str | None = None, /, **changes: Any) -> None:
        """Replace the faults, globally or for one tenant (no arguments = clear them)."""
        faults = apply_fields(Faults(), changes)
        if client_id is None:
            self.faults = faults
        else:
            self.tenant(client_id).faults = faults

    def clear_faults(self) -> None:
        """Clear every fault, global and per tenant."""
        self.faults = Faults()
        for tenant in self.tenants.values():
            tenant.faults = None

    def faults_for(self, tenant: SimTenant | None, endpoint: str) -> Faults:
        """The faults this request gets (a tenant's own win over the global ones)."""
        own = tenant is not None and tenant.faults is not None
        faults = tenant.faults if tenant is not None and tenant.faults is not None else self.faults
        if not faults.applies_to(endpoint):
            return Faults()
        if faults.times is not None:
            faults.times -= 1
            if faults.times <= 0:  # used up: the tenant falls back to the global faults
                if tenant is not None and own:
                    tenant.faults = None
                else:
                    self.faults = Faults()
        return faults

    # -- mail ----------------------------------------------------------------------------------

    def send_mail(
        self, client_id: str, *, to: str, sender: str, subject: str = "", summary: str = ""
    ) -> str:
        """Deliver a mail: bump the unread count and queue a new-mail push; its MailId."""
        tenant = self.tenant(client_id)
        mail = SimMail(
            mail_id=f"ZC{next(self._ids):04d}-{secrets.token_urlsafe(12)}",
            mailbox=to,
            sender=_sender(sender),
            subject=subject,
            summary=summary,
        )
        tenant.mails[mail.mail_id] = mail
        tenant.unread[to] = tenant.unread.get(to, 0) + 1
        tenant.enqueue(mail.push(tenant.unread[to]))
        return mail.mail_id

    def repush(self, client_id: str, mail_id: str) -> None:
        """Queue the new-mail push of an existing mail again (same MailId)."""
        tenant = self.tenant(client_id)
        mail = tenant.mails[mail_id]
        tenant.enqueue(mail.push(tenant.unread.get(mail.mailbox, 0)))

    def set_unread(self, client_id: str, mailbox: str, count: int) -> None:
        """Set a mailbox's unread count and queue an unread push."""
        tenant = self.tenant(client_id)
        tenant.unread[mailbox] = max(0, count)
        tenant.enqueue({"UserName": mailbox, "NewCount": tenant.unread[mailbox]})

    def mark_read(self, client_id: str, mailbox: str) -> int:
        """One mail of `mailbox` was read elsewhere: decrement and queue an unread push."""
        tenant = self.tenant(client_id)
        self.set_unread(client_id, mailbox, tenant.unread.get(mailbox, 0) - 1)
        return tenant.unread[mailbox]

    def push_raw(self, client_id: str, push: dict[str, Any]) -> None:
        """Queue any JSON object as a push (to test unknown shapes)."""
        self.tenant(client_id).enqueue(push)

    # -- directory -----------------------------------------------------------------------------

    def add_user(self, client_id: str, alias: str, **fields: Any) -> str:
        """Add an account to the directory; the new version."""
        tenant = self.tenant(client_id)
        tenant.users[alias] = {"Name": alias.split("@")[0], **fields}
        return self._bump(tenant, ACTION_ADDED, alias)

    def modify_user(self, client_id: str, alias: str, **fields: Any) -> str:
        """Change an account; the new version."""
        tenant = self.tenant(client_id)
        tenant.users[alias].update(fields)
        return self._bump(tenant, ACTION_MODIFIED, alias)

    def remove_user(self, client_id: str, alias: str) -> str:
        """Delete an account; the new version."""
        tenant = self.tenant(client_id)
        del tenant.users[alias]
        return self._bump(tenant, ACTION_DELETED, alias)

    def _bump(self, tenant: SimTenant, action: int, alias: str) -> str:
        self._last_ver = tenant.ver = max(int(time.time() * 1000), self._last_ver + 1)
        tenant.changes.append((tenant.ver, action, alias))
        tenant.queue = deque(p for p in tenant.queue if set(p) != {"Ver"})
        tenant.enqueue({"Ver": str(tenant.ver)})
        return str(tenant.ver)

    def delta(self, tenant: SimTenant, since: int) -> list[dict[str, Any]]:
        """`user/list` entries after version `since` (0 = everyone, as additions)."""
        if since == 0:
            return [{"Action": ACTION_ADDED, "Alias": alias} for alias in tenant.users]
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for ver, action, alias in tenant.changes:
            if ver > since:
                first.setdefault(alias, action)
                last[alias] = action
        return [
            {"Action": _net_action(first[alias], action), "Alias": alias}
            for alias, action in last.items()
            if not (first[alias] == ACTION_ADDED and action == ACTION_DELETED)
        ]

    # -- single sign-on ------------------------------------------------------------------------

    def new_auth_key(self, tenant: SimTenant, mailbox: str) -> str:
        """A one-time login key for `mailbox`."""
        key = secrets.token_hex(20).upper()
        tenant.auth_keys[key] = mailbox
        return key

    def use_auth_key(self, agent: str, user: str, ticket: str) -> bool:
        """Consume a login key: True if it was valid and unused for this agent and user."""
        tenant = self.tenants.get(agent)
        if tenant is None or tenant.auth_keys.get(ticket) != user:
            return False
        del tenant.auth_keys[ticket]
        return True

    # -- statistics ----------------------------------------------------------------------------

    def stats(self, client_id: str) -> dict[str, Any]:
        """Counters for one tenant (JSON-ready)."""
        tenant = self.tenants.get(client_id) or SimTenant(client_id=client_id)
        return {
            "token_requests": self.token_requests[client_id],
            "listen_requests": self.listen_requests[client_id],
            "listen_vers": list(tenant.listen_vers),
            "listens_connected": tenant.listens_connected,
            "queued": len(tenant.queue),
            "ver": str(tenant.ver),
            "unread": dict(tenant.unread),
        }


def _sender(sender: str) -> str:
    if "<" in sender:
        return sender
    return f'"{sender.split("@")[0]}"<{sender}>'


def _net_action(first: int, last: int) -> int:
    return ACTION_ADDED if first == ACTION_ADDED else last
