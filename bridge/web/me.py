"""`/me`: an employee's own notification page, served on the public listener.

    GET  /me               the page, or a redirect to WeCom sign-in
    GET  /me/login?via=    start sign-in with `oauth` (in WeCom) or `qr` (desktop)
    GET  /me/callback      WeCom's redirect back with `code` and `state`
    POST /me/preferences   save the form (CSRF token required)
    POST /me/logout        forget the session (CSRF token required)

Whose data a request touches comes from the signed session cookie alone: no route takes
a member id, so nobody can read or change another member's page by naming them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from bridge.config import Config, MeSection, WecomSinkConfig
from bridge.delivery.preferences import Preferences, member_key
from bridge.errors import InvalidPreferences, SignInRefused
from bridge.logs import get_logger
from bridge.store.base import Store
from bridge.web.me_forms import parse_preferences
from bridge.web.me_page import ErrorText, MeView, error_page, html, me_page
from bridge.web.me_session import Session, SessionSigner
from bridge.web.me_signin import STATE_COOKIE, SignIn, Via, set_cookie
from bridge.web.me_text import choose_lang
from bridge.web.me_wecom import member_emails
from sinks.wecom_api import WecomApi

__all__ = ["SESSION_COOKIE", "MePage", "load_session_key"]

log = get_logger(__name__)
SESSION_COOKIE = "me_session"
SESSION_KEY_NAME = "me_session_secret"
MAX_FORM_B = 32 * 1024


async def load_session_key(settings: MeSection, store: Store) -> bytes:
    """`[me] session_secret`, else a random key generated once and kept in the store."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    return await store.get_secret(SESSION_KEY_NAME, secrets.token_bytes(32))


class MePage:
    """The page as a `PublicFace`: its routes, its sign-in and its session cookies."""

    def __init__(
        self,
        *,
        store: Store,
        wecom: WecomSinkConfig,
        settings: MeSection,
        public_url: str,
        session_key: bytes,
        api: WecomApi | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._wecom = wecom
        self._api = api or WecomApi(config=wecom)
        self._own_api = api is None
        self.url = f"{public_url.rstrip('/')}/me"
        self._base = urlsplit(public_url).path.rstrip("/")
        self._secure = urlsplit(public_url).scheme == "https"
        self._sessions = SessionSigner(
            key=session_key, corp_id=wecom.corp_id, ttl_s=settings.session_ttl_s, clock=clock
        )
        self._signin = SignIn(
            store=store,
            api=self._api,
            wecom=wecom,
            qr_login_url=settings.qr_login_url,
            callback_url=f"{self.url}/callback",
            state_ttl_s=settings.state_ttl_s,
            secure=self._secure,
            cookie_path=f"{self._base}/me",
        )
        self._clock = clock

    @classmethod
    async def create(cls, *, config: Config, store: Store) -> MePage:
        """From `[me]`, its wecom sink and `[bridge] public_url`; needs `config.me`."""
        if config.me is None:
            raise ValueError("config has no [me] section")
        return cls(
            store=store,
            wecom=config.me_sink(),
            settings=config.me,
            public_url=config.bridge.public_url,
            session_key=await load_session_key(config.me, store),
        )

    async def start(self) -> None:
        """Open the WeCom API session (unless one was passed in)."""
        await self._api.start()

    async def aclose(self) -> None:
        """Close the WeCom API session if this page opened it."""
        if self._own_api:
            await self._api.aclose()

    def routes(self) -> list[web.RouteDef]:
        """The page's routes, for the public listener."""
        return [
            web.get("/me", self.page),
            web.get("/me/login", self.login),
            web.get("/me/callback", self.callback),
            web.post("/me/preferences", self.save),
            web.post("/me/logout", self.logout),
        ]

    # reading the session -------------------------------------------------------------
    def _session(self, request: web.Request) -> Session | None:
        return self._sessions.read(request.cookies.get(SESSION_COOKIE, ""))

    def _member(self, session: Session) -> str:
        return member_key(self._wecom.corp_id, session.userid)

    def _cookie(
        self, response: web.StreamResponse, name: str, value: str, max_age_s: float
    ) -> None:
        set_cookie(
            response, name, value, secure=self._secure, max_age_s=max_age_s, path=f"{self._base}/me"
        )

    def _see_other(self, path: str) -> web.Response:
        return html(303, "", location=f"{self._base}{path}")

    # handlers --------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.StreamResponse:
        """`GET /me`: the member's page, or sign-in first."""
        session = self._session(request)
        if session is None:
            return await self._signin.start(request)
        view = await self._view(request, session, saved=request.query.get("saved") == "1")
        return html(200, me_page(view))

    async def login(self, request: web.Request) -> web.StreamResponse:
        """`GET /me/login?via=oauth|qr`: start the chosen sign-in flow."""
        via = request.query.get("via", "")
        chosen: Via | None = "oauth" if via == "oauth" else "qr" if via == "qr" else None
        return await self._signin.start(request, chosen)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """`GET /me/callback?code&state`: check, then set the session cookie."""
        try:
            userid = await self._signin.finish(request)
        except SignInRefused as exc:
            status = 503 if exc.reason == "unavailable" else 403
            response = error_page(status, ErrorText.of(exc.reason), self._signin_links())
            response.del_cookie(STATE_COOKIE, path=f"{self._base}/me")
            return response
        _, value = self._sessions.issue(userid)
        log.info("me_signed_in", userid=userid)
        response = self._see_other("/me")
        self._cookie(response, SESSION_COOKIE, value, self._sessions.ttl_s)
        response.del_cookie(STATE_COOKIE, path=f"{self._base}/me")
        return response

    async def save(self, request: web.Request) -> web.StreamResponse:
        """`POST /me/preferences`: validate and store the form, for the session's member."""
        session = self._session(request)
        if session is None:
            return self._see_other("/me")  # signed out or expired: /me signs in again
        form = await self._form(request)
        if form is None or not self._sessions.csrf_ok(session, form.get("csrf", "")):
            log.info("me_csrf_refused", userid=session.userid)
            return error_page(403, ErrorText.of("csrf"), [(f"{self._base}/me", "/me")])
        try:
            prefs = parse_preferences(form, self._clock())
        except InvalidPreferences as exc:
            view = await self._view(request, session, error=str(exc), form=form)
            return html(400, me_page(view))
        await self._store.set_preferences(self._member(session), prefs)
        log.info("me_preferences_saved", userid=session.userid)
        return self._see_other("/me?saved=1")

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """`POST /me/logout`: drop the session cookie."""
        session = self._session(request)
        form = await self._form(request)
        if session is not None and (
            form is None or not self._sessions.csrf_ok(session, form.get("csrf", ""))
        ):
            return error_page(403, ErrorText.of("csrf"), [(f"{self._base}/me", "/me")])
        response = error_page(200, ErrorText.of("signed_out"), self._signin_links())
        response.del_cookie(SESSION_COOKIE, path=f"{self._base}/me")
        return response

    # helpers ---------------------------------------------------------------------------
    async def _form(self, request: web.Request) -> dict[str, str] | None:
        """The posted fields as text; None when the body is not a small form of text."""
        if request.content_length is not None and request.content_length > MAX_FORM_B:
            return None
        try:
            posted = await request.post()
        except ValueError:
            return None
        fields: dict[str, str] = {}
        for name, value in posted.items():
            if not isinstance(value, str):
                return None  # a file upload is not our form
            fields[name] = value
        return fields

    def _signin_links(self) -> list[tuple[str, str]]:
        return [
            (f"{self._base}/me/login?via=oauth", "在企业微信中打开 / Open in WeCom"),
            (f"{self._base}/me/login?via=qr", "扫码登录 / QR code"),
        ]

    async def _view(
        self,
        request: web.Request,
        session: Session,
        *,
        saved: bool = False,
        error: str = "",
        form: dict[str, str] | None = None,
    ) -> MeView:
        member = self._member(session)
        prefs = await self._store.get_preferences(member) or Preferences()
        notices = await self._store.notices(member, limit=20)
        return MeView(
            userid=session.userid,
            lang=choose_lang(request.headers.get("accept-language", "")),
            csrf=self._sessions.csrf(session),
            base=self._base,
            mailboxes=await self._mailboxes(session.userid, [n.mailbox for n in notices]),
            notices=notices,
            prefs=prefs,
            saved=saved,
            error=error,
            form=form,
        )

    async def _mailboxes(self, userid: str, seen: list[str]) -> list[str]:
        """Static map entries for this member, their WeCom mail addresses, and the
        mailboxes their recent notices came from."""
        wanted = userid.lower()
        static = [m.lower() for m, u in self._wecom.users.items() if u.lower() == wanted]
        found = [*static, *await member_emails(self._api, userid), *(m.lower() for m in seen)]
        return list(dict.fromkeys(m for m in found if m))
