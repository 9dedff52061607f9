"""Click-through: `GET /open/<token>` turns a card's link into a login to that mail.

The token (bridge/click_token.py) names the tenant, mailbox and mail, and the sink that
sent the link. When that sink is a WeCom sink with `oauth` on (the default), the browser
first goes through WeCom OAuth *of that sink's corp*, and only the member who owns the
mailbox gets further. Links that skip OAuth (a WeCom sink with `oauth = false`) are valid
for `click_ttl_without_oauth_s` after they were issued (1 day by default). Then the
tenant's login provider (bridge/clickthrough_logins.py: a legacy auth key, or the new API's
`get_login_url`) answers a fresh single-use URL and the browser is redirected there. A
tenant whose protocol has no SSO (`wecom-mail`) gets a 403 page saying so. A
forged, expired or foreign token gets a 403 page saying why, never a login. The auth key
and the SSO URL are never logged. docs/clickthrough.md says what a leaked link can do.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal, Protocol, runtime_checkable

from aiohttp import web

from bridge.click_token import Claim, ClickSigner, InvalidClickToken, load_click_key
from bridge.clickthrough_logins import AuthKeys, LegacyLogin, LoginProvider
from bridge.clickthrough_pages import Reason, forbidden, oauth_redirect, redirect, unavailable
from bridge.config import TenantConfig, WecomSinkConfig
from bridge.errors import UpstreamError, UpstreamUnavailable
from bridge.logs import get_logger

__all__ = [
    "AuthKeys",
    "Claim",
    "ClickSigner",
    "ClickThrough",
    "InvalidClickToken",
    "MemberCheck",
    "load_click_key",
    "make_open_handler",
    "member_checks",
]

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAY_S = 86400.0


@runtime_checkable
class MemberCheck(Protocol):
    """WeCom identity checks: what `sinks.wecom.WecomSink` provides."""

    @property
    def name(self) -> str:
        """The sink's name (what a click token carries)."""

    @property
    def config(self) -> WecomSinkConfig:
        """The WeCom sink's configuration (`oauth`, `oauth_url`, `corp_id`, `agent_id`)."""

    async def oauth_userid(self, code: str) -> str:
        """The member an OAuth code was issued to."""

    async def userid_for(self, mailbox: str) -> str | None:
        """The member who owns `mailbox`, if any."""


def member_checks(sinks: Iterable[object]) -> dict[str, MemberCheck]:
    """The sinks that can check a clicker's identity (WeCom sinks), by name."""
    return {s.name: s for s in sinks if isinstance(s, MemberCheck)}


class ClickThrough:
    """`/open/<token>` for browsers; `checks` are the WeCom sinks by name, built before it."""

    def __init__(
        self,
        *,
        signer: ClickSigner,
        tenants: Iterable[TenantConfig],
        authkeys: AuthKeys,
        checks: Mapping[str, MemberCheck] | None = None,
        without_oauth_ttl_s: float = DAY_S,
        clock: Callable[[], float] = time.time,
        logins: Mapping[str, LoginProvider] | None = None,
    ) -> None:
        self.signer = signer
        self._tenants = {tenant.name: tenant for tenant in tenants}
        # by tenant protocol; a protocol without a provider has no click-through
        self._logins: dict[str, LoginProvider] = {"legacy": LegacyLogin(authkeys), **(logins or {})}
        self._checks = dict(checks or {})
        self._without_oauth_ttl_s = without_oauth_ttl_s
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        """`GET /open/{token}`, for the public listener."""
        return [web.get("/open/{token}", self.handler)]

    def check_for(self, claim: Claim) -> MemberCheck | None:
        """The WeCom sink whose OAuth guards this link, if any."""
        if claim.sink:
            check = self._checks.get(claim.sink)
        else:  # a link from before links named their sink: the first with OAuth, as then
            check = next((c for c in self._checks.values() if c.config.oauth), None)
        return check if check is not None and check.config.oauth else None

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """`GET /open/{token}`: verify, (WeCom OAuth), then redirect to the Exmail login."""
        token = request.match_info["token"]
        try:
            claim = self.signer.verify(token)
        except InvalidClickToken as exc:
            log.info("click_refused", reason=exc.reason)
            return forbidden(exc.reason)
        tenant = self._tenants.get(claim.tenant)
        if tenant is None:
            log.info("click_refused", reason="tenant", tenant=claim.tenant)
            return forbidden("tenant")
        check = self.check_for(claim)
        if check is None:
            refused = self._unguarded_refusal(claim)
            if refused is not None:
                return refused
        else:
            code = request.query.get("code", "")
            if not code:
                return oauth_redirect(check.config, self.signer.url_for(token))
            denial = await _member_denial(check, code, claim)
            if denial is not None:
                return forbidden(denial) if denial != "unavailable" else unavailable()
        provider = self._logins.get(tenant.protocol)
        if provider is None or not tenant.click_through:
            log.info("click_refused", reason="no_sso", tenant=claim.tenant)
            return forbidden("no_sso")
        return await _login(provider, tenant, claim)

    def _unguarded_refusal(self, claim: Claim) -> web.StreamResponse | None:
        """A link no OAuth guards is good for `without_oauth_ttl_s` after it was issued."""
        if self._clock() < claim.issued_at + self._without_oauth_ttl_s:
            return None
        log.info("click_refused", reason="expired", tenant=claim.tenant, oauth=False)
        return forbidden("expired")


def make_open_handler(
    *,
    signer: ClickSigner,
    tenants: Iterable[TenantConfig],
    authkeys: AuthKeys,
    wecom: MemberCheck | None = None,
    without_oauth_ttl_s: float = DAY_S,
) -> Handler:
    """The `GET /open/{token}` handler; mount it with `app.router.add_get`."""
    clicks = ClickThrough(
        signer=signer,
        tenants=tenants,
        authkeys=authkeys,
        checks=member_checks([wecom] if wecom is not None else []),
        without_oauth_ttl_s=without_oauth_ttl_s,
    )
    return clicks.handler


async def _member_denial(
    wecom: MemberCheck, code: str, claim: Claim
) -> Reason | Literal["unavailable"] | None:
    try:
        userid = await wecom.oauth_userid(code)
        owner = await wecom.userid_for(claim.mailbox)
    except UpstreamUnavailable:
        return "unavailable"
    except UpstreamError as exc:
        log.info("click_refused", reason="identity", tenant=claim.tenant, errcode=exc.code)
        return "identity"
    if owner is None or owner.lower() != userid.lower():
        log.warning("click_refused", reason="not_owner", tenant=claim.tenant, mailbox=claim.mailbox)
        return "not_owner"
    return None


async def _login(provider: LoginProvider, tenant: TenantConfig, claim: Claim) -> web.StreamResponse:
    try:
        url = await provider.login_url(tenant, claim.mailbox, claim.mail_id)
    except UpstreamError as exc:
        log.warning(
            "click_login_failed", tenant=tenant.name, mailbox=claim.mailbox, errcode=exc.code
        )
        return unavailable()
    log.info("click_login", tenant=tenant.name, mailbox=claim.mailbox)
    return redirect(url)
