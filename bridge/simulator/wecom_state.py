"""The WeCom simulator's state: members, tokens, OAuth codes, what each member received.

Tests in the same process drive it through these methods; the `/_sim/` control API of
`bridge.simulator.wecom` calls the same methods over HTTP.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["STATE_KEY", "Fault", "Member", "Sent", "WecomState"]

RATE_PER_MIN = 30  # WeCom: per app per member, 30 messages a minute ...
RATE_PER_HOUR = 1000  # ... and 1000 an hour; beyond that messages are dropped silently


@dataclass(slots=True)
class Member:
    """A WeCom member: `visible` = inside the app's visible range (can receive messages)."""

    userid: str
    email: str = ""
    visible: bool = True


@dataclass(frozen=True, slots=True)
class Sent:
    """One message as a member saw it (or would have, had it not been dropped)."""

    msgid: str
    msgtype: str
    body: dict[str, Any]
    at: float

    def as_json(self) -> dict[str, Any]:
        """JSON for the control API."""
        return {"msgid": self.msgid, "msgtype": self.msgtype, "body": self.body, "at": self.at}


@dataclass(slots=True)
class Fault:
    """An injected errcode: for the next `times` calls, or at random with `rate`."""

    code: int
    endpoint: str = ""  # "" = any endpoint, else e.g. "message/send"
    times: int = 1
    rate: float = 0.0


@dataclass
class WecomState:
    """Everything the simulator knows; `clock` is injectable so tests can move time."""

    corp_id: str = "wwsimcorp"
    corp_secret: str = "sim-corp-secret"  # noqa: S105  (the simulator's well-known fake)
    agent_id: int = 1000002
    token_ttl_s: int = 7200
    clock: Callable[[], float] = time.monotonic
    members: dict[str, Member] = field(default_factory=dict)
    current_user: str | None = None
    seed: int = 0
    # `exmail-bridge simulate`: any corp id, secret and agent id is accepted, and every
    # userid or email names a visible member (an email's userid is its local part), so a
    # config written for the real WeCom runs against it unchanged.
    accept_any: bool = False
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (clock)
    codes: dict[str, str] = field(default_factory=dict)  # oauth code -> userid
    faults: list[Fault] = field(default_factory=list)
    received: dict[str, list[Sent]] = field(default_factory=dict)
    dropped: dict[str, list[Sent]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    answer_delay_s: float = 0.0  # message/send answers this late (after delivering)
    _windows: dict[str, deque[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    # members -------------------------------------------------------------------------
    def add_member(self, userid: str, email: str = "", *, visible: bool = True) -> Member:
        """Add (or replace) a member."""
        member = Member(userid=userid, email=email.lower(), visible=visible)
        self.members[userid] = member
        return member

    def remove_member(self, userid: str) -> None:
        """Remove a member (messages to it then list it in `invaliduser`)."""
        self.members.pop(userid, None)

    def userid_by_email(self, email: str) -> str | None:
        """The member whose email this is."""
        wanted = email.lower()
        found = next((m.userid for m in self.members.values() if m.email == wanted), None)
        if found is None and self.accept_any and "@" in wanted:
            found = self.add_member(wanted.split("@")[0], wanted).userid
        return found

    def member(self, userid: str) -> Member | None:
        """The member `userid` (created, when the state accepts anyone)."""
        found = self.members.get(userid)
        if found is None and self.accept_any:
            found = self.add_member(userid)
        return found

    def credentials_ok(self, corp_id: str, secret: str) -> bool:
        """Whether gettoken may issue a token for this corp id and secret."""
        if self.accept_any:
            return bool(corp_id and secret)
        return corp_id == self.corp_id and secret == self.corp_secret

    # reading what happened -----------------------------------------------------------
    def messages(self, userid: str) -> list[Sent]:
        """Messages delivered to `userid`, in order."""
        return list(self.received.get(userid, ()))

    def dropped_messages(self, userid: str) -> list[Sent]:
        """Messages accepted with errcode 0 but silently dropped (rate limit)."""
        return list(self.dropped.get(userid, ()))

    def count(self, endpoint: str) -> int:
        """How many calls `endpoint` (e.g. "gettoken", "message/send") received."""
        return self.calls.get(endpoint, 0)

    # faults --------------------------------------------------------------------------
    def inject(self, code: int, *, times: int = 1, rate: float = 0.0, endpoint: str = "") -> None:
        """Answer `code` to the next `times` calls (or a `rate` share of calls).

        40014/42001 also revoke every current token: it stays invalid from now on.
        """
        self.faults.append(Fault(code=code, endpoint=endpoint, times=times, rate=rate))

    def take_fault(self, endpoint: str) -> int | None:
        """The errcode to answer for this call, if a fault applies."""
        for fault in self.faults:
            if fault.endpoint and fault.endpoint != endpoint:
                continue
            if fault.rate > 0:
                if self._random.random() < fault.rate:
                    return self._fire(fault.code)
                continue
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            return self._fire(fault.code)
        return None

    def _fire(self, code: int) -> int:
        if code in (40014, 42001):
            self.revoke_tokens()
        return code

    # tokens and codes ----------------------------------------------------------------
    def issue_token(self) -> str:
        """A fresh access token (earlier ones stay valid until they expire, as in WeCom)."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + self.token_ttl_s
        return token

    def revoke_tokens(self) -> None:
        """Make every issued token invalid."""
        self.tokens.clear()

    def token_error(self, token: str) -> int:
        """0 when `token` is valid, else 41001 (missing), 42001 (expired) or 40014."""
        if not token:
            return 41001
        expiry = self.tokens.get(token)
        if expiry is None:
            return 40014
        return 0 if expiry > self.clock() else 42001

    def issue_code(self, userid: str) -> str:
        """An OAuth code for `userid` (single use)."""
        code = secrets.token_urlsafe(12)
        self.codes[code] = userid
        return code

    # the per-member limit ------------------------------------------------------------
    def deliver(self, userid: str, sent: Sent) -> bool:
        """Record `sent` for `userid`; False when the minute/hour limit dropped it."""
        window = self._windows.setdefault(userid, deque())
        now = self.clock()
        while window and window[0] <= now - 3600:
            window.popleft()
        last_minute = sum(1 for t in window if t > now - 60)
        if last_minute >= RATE_PER_MIN or len(window) >= RATE_PER_HOUR:
            self.dropped.setdefault(userid, []).append(sent)
            return False
        window.append(now)
        self.received.setdefault(userid, []).append(sent)
        return True

    def reset(self) -> None:
        """Forget members, messages, tokens, codes, faults and counters."""
        for table in (self.members, self.tokens, self.codes, self.received, self.dropped):
            table.clear()
        self.faults.clear()
        self.calls.clear()
        self._windows.clear()
        self.current_user = None


STATE_KEY = web.AppKey("wecom_state", WecomState)
