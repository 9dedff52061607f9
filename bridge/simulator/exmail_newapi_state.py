"""The new-API simulator's state: corps, app secrets, tokens, login tickets, callbacks.

Plain data and the methods the handlers and the control API call. A corp is created on
first use unless the simulator was given fixed credentials (corp_id -> {app: secret}).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ApiCorp", "CallbackTarget", "Delivery", "NewApiSettings", "NewApiState"]

CALLBACK_FAULTS = ("bad_signature", "wrong_corp", "stale_timestamp", "duplicate")


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """Where a corp's callbacks go, and the Token/EncodingAESKey they are sealed with."""

    url: str
    token: str
    aes_key: str


@dataclass(slots=True)
class ApiCorp:
    """One corp of the new API: its secrets (None = any), mailboxes and callback target."""

    corp_id: str
    secrets: dict[str, str] | None = None
    callback: CallbackTarget | None = None
    unread: dict[str, int] = field(default_factory=dict)
    users: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One try of one callback: `status` is the HTTP status, or 0 with `error` set."""

    corp_id: str
    kind: str
    attempt: int
    status: int
    error: str = ""


@dataclass(slots=True)
class NewApiSettings:
    """How the new-API simulator behaves."""

    token_expires_in_s: int = 7200
    login_ttl_s: int = 300
    callback_timeout_s: float = 5.0  # WeCom drops the connection after 5 s ...
    callback_tries: int = 3  # ... and sends again, 3 tries in all
    callback_retry_s: float = 1.0
    newcount_dates: str = "optional"  # "required": mail/newcount refuses a request without dates


@dataclass(frozen=True, slots=True)
class Token:
    """An issued token: whose, under which secret, until when (unix seconds)."""

    corp_id: str
    secret: str
    expires_at: float


class NewApiState:
    """Every simulated new-API corp; `credentials` closes the door to unknown ones."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        settings: NewApiSettings | None = None,
    ) -> None:
        self.credentials = {k: dict(v) for k, v in (credentials or {}).items()} or None
        self.settings = settings or NewApiSettings()
        self.reset()

    def reset(self) -> None:
        """Forget corps, tokens, tickets, deliveries and faults."""
        self.corps: dict[str, ApiCorp] = {}
        self.tokens: dict[str, Token] = {}
        self.token_requests: Counter[str] = Counter()
        self.tickets: dict[str, tuple[str, str, float]] = {}  # ticket -> corp, user, until
        self.logins: list[tuple[str, str]] = []
        self.login_url_requests: list[tuple[str, str, str]] = []  # corp, user, secret used
        self.errcodes: dict[str, deque[int]] = {}  # endpoint -> errcodes to answer next
        self.callback_faults: Counter[str] = Counter()
        self.deliveries: list[Delivery] = []

    # -- corps and tokens ---------------------------------------------------------------

    def corp(self, corp_id: str) -> ApiCorp | None:
        """The corp (created on first use when credentials are open), or None."""
        found = self.corps.get(corp_id)
        if found is None and corp_id and (self.credentials is None or corp_id in self.credentials):
            secrets_ = (self.credentials or {}).get(corp_id)
            found = self.corps[corp_id] = ApiCorp(corp_id=corp_id, secrets=secrets_)
        return found

    def issue_token(self, corp_id: str, secret: str) -> tuple[str, int] | None:
        """A token for a right (corp, secret), or None."""
        corp = self.corp(corp_id)
        if corp is None or not secret:
            return None
        if corp.secrets is not None and secret not in corp.secrets.values():
            return None
        value = secrets.token_urlsafe(24)
        ttl_s = self.settings.token_expires_in_s
        self.tokens[value] = Token(corp_id=corp_id, secret=secret, expires_at=time.time() + ttl_s)
        return value, ttl_s

    def token(self, value: str) -> Token | int:
        """The live token, or the errcode for it: 40014 unknown, 42001 expired."""
        found = self.tokens.get(value)
        if found is None:
            return 40014
        return found if found.expires_at > time.time() else 42001

    def revoke_tokens(self, corp_id: str) -> int:
        """Forget every token of the corp; how many."""
        doomed = [k for k, t in self.tokens.items() if t.corp_id == corp_id]
        for key in doomed:
            del self.tokens[key]
        return len(doomed)

    def next_errcode(self, endpoint: str) -> int:
        """An errcode a fault asks this call of `endpoint` to answer, else 0."""
        queue = self.errcodes.get(endpoint)
        return queue.popleft() if queue else 0

    # -- SSO ----------------------------------------------------------------------------

    def new_ticket(self, token: Token, userid: str) -> str:
        """A single-use login ticket for `userid`."""
        ticket = secrets.token_urlsafe(24)
        until = time.time() + self.settings.login_ttl_s
        self.tickets[ticket] = (token.corp_id, userid, until)
        app = _app_of(self.corps.get(token.corp_id), token.secret)
        self.login_url_requests.append((token.corp_id, userid, app))
        return ticket

    def use_ticket(self, ticket: str) -> str | None:
        """The user a ticket logs in, once; None when unknown, used or expired."""
        found = self.tickets.pop(ticket, None)
        if found is None or found[2] < time.time():
            return None
        self.logins.append((found[0], found[1]))
        return found[1]

    # -- mail ---------------------------------------------------------------------------

    def arrive(self, corp_id: str, mailbox: str) -> tuple[ApiCorp, int]:
        """One new mail for `mailbox`: its unread count goes up by one."""
        corp = self.corp(corp_id)
        if corp is None:
            raise KeyError(corp_id)
        corp.unread[mailbox] = corp.unread.get(mailbox, 0) + 1
        return corp, corp.unread[mailbox]

    def take_fault(self, name: str) -> bool:
        """Consume one pending callback fault `name`."""
        if self.callback_faults[name] <= 0:
            return False
        self.callback_faults[name] -= 1
        return True


def _app_of(corp: ApiCorp | None, secret: str) -> str:
    """The app a secret belongs to, or a short hash of it when the corp is open."""
    for app, value in ((corp.secrets or {}) if corp else {}).items():
        if value == secret:
            return app
    return "secret:" + hashlib.sha256(secret.encode()).hexdigest()[:8]
