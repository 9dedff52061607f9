"""Signing in to /me through WeCom: the in-app OAuth redirect or the desktop QR login.

`start` picks the flow by user agent (WeCom's in-app browser says `wxwork`), remembers a
random `state` in the store (single use, `[me] state_ttl_s`) and in a cookie of this
browser, and redirects. `finish` accepts the callback only when the query's state equals
the cookie's and the store still had it (taking it, so a replay fails), then asks WeCom
whose the code is. A forged, replayed or expired state, a code WeCom refuses, and anyone
who is not a member of the corp get SignInRefused.
"""

from __future__ import annotations

import hmac
import math
import secrets
from typing import Literal
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import escape

from bridge.config import WecomSinkConfig
from bridge.errors import SignInRefused
from bridge.store.base import Store
from bridge.web.me_page import html
from bridge.web.me_wecom import member_for_code
from sinks.wecom_api import WecomApi

__all__ = ["STATE_COOKIE", "SignIn", "Via", "in_wecom", "set_cookie"]

STATE_COOKIE = "me_state"
Via = Literal["oauth", "qr"]
_LABELS: dict[Via, str] = {"oauth": "在企业微信中打开 / Open in WeCom", "qr": "扫码登录 / QR code"}


def in_wecom(user_agent: str) -> bool:
    """Whether the request comes from WeCom's in-app browser."""
    return "wxwork" in user_agent.lower()


def set_cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    secure: bool,
    max_age_s: float,
    path: str,
) -> None:
    """HttpOnly, SameSite=Lax (the callback is a top-level GET from WeCom), Secure on https,
    expiring after `max_age_s`."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=max(1, math.ceil(max_age_s)),
        path=path,
    )


class SignIn:
    """The two WeCom sign-in flows of the `[me]` sink's app."""

    def __init__(
        self,
        *,
        store: Store,
        api: WecomApi,
        wecom: WecomSinkConfig,
        qr_login_url: str,
        callback_url: str,
        state_ttl_s: float,
        secure: bool,
        cookie_path: str,
    ) -> None:
        self._store = store
        self._api = api
        self._wecom = wecom
        self._qr_login_url = qr_login_url
        self._callback_url = callback_url
        self._state_ttl_s = state_ttl_s
        self._secure = secure
        self._cookie_path = cookie_path

    def url(self, via: Via, state: str) -> str:
        """Where the browser signs in: WeCom's OAuth page or its QR login page."""
        if via == "oauth":
            query = urlencode(
                {
                    "appid": self._wecom.corp_id,
                    "redirect_uri": self._callback_url,
                    "response_type": "code",
                    "scope": "snsapi_base",
                    "state": state,
                    "agentid": str(self._wecom.agent_id),
                }
            )
            return f"{self._wecom.oauth_url}?{query}#wechat_redirect"
        query = urlencode(
            {
                "login_type": "CorpApp",
                "appid": self._wecom.corp_id,
                "agentid": str(self._wecom.agent_id),
                "redirect_uri": self._callback_url,
                "state": state,
            }
        )
        return f"{self._qr_login_url}?{query}"

    async def start(self, request: web.Request, via: Via | None = None) -> web.Response:
        """Redirect to WeCom with a fresh single-use state (the body links both flows)."""
        chosen: Via = via or ("oauth" if in_wecom(request.headers.get("user-agent", "")) else "qr")
        state = secrets.token_urlsafe(24)
        await self._store.put_once(f"me-state:{state}", b"1", self._state_ttl_s)
        other: Via = "qr" if chosen == "oauth" else "oauth"
        target = self.url(chosen, state)
        body = (
            '<!doctype html><meta charset="utf-8"><title>WeCom</title><p>'
            f'<a href="{escape(target)}">{_LABELS[chosen]}</a> · '
            f'<a href="{escape(self.url(other, state))}">{_LABELS[other]}</a></p>'
        )
        response = html(302, body, location=target)
        set_cookie(
            response,
            STATE_COOKIE,
            state,
            secure=self._secure,
            max_age_s=self._state_ttl_s,
            path=self._cookie_path,
        )
        return response

    async def finish(self, request: web.Request) -> str:
        """The member's userid, or SignInRefused."""
        state = request.query.get("state", "")
        remembered = request.cookies.get(STATE_COOKIE, "")
        if not state or not remembered or not hmac.compare_digest(state, remembered):
            raise SignInRefused("state")
        if await self._store.take_once(f"me-state:{state}") is None:
            raise SignInRefused("state")
        code = request.query.get("code", "")
        if not code:
            raise SignInRefused("code")
        return await member_for_code(self._api, code)
