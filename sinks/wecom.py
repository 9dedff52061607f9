"""The `wecom` sink: a WeCom app message (`textcard`) to the member who owns the mailbox.

- Only `exmail.mail.received` produces a card. `exmail.mail.unread` and
  `exmail.directory.changed` events routed here are acknowledged without a message: a
  count change is not news to a person, and the mail itself was already announced.
- Mailbox -> member: the static `users` map, then `user/get_userid_by_email` (cached,
  misses too). No member -> a permanent error ("no WeCom member for <mailbox>").
- WeCom drops a member's messages beyond 30 a minute without an error, so the sink keeps
  each member under `per_member_per_min`: when a batch (or the recent window) would go
  over, all of that member's mails in the batch become ONE digest card; when the minute's
  budget is used up, the events are retried after the window frees (`retry_after_s`).
  The bridge counts the budget in the store (`StoreBudget`), shared by every replica.
- A batch has a deadline; a card sent before it counts as sent, only unsent ones fail.
- Errors: `invaliduser` naming the member or 81013 -> permanent (dead letter); 45009,
  45033, -1, HTTP and connection errors -> retryable; 40001/40056/48002/60020 (the app's
  configuration) -> permanent and loud, with WeCom's errmsg hint in an error log line.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Sequence

import aiohttp

from bridge.config import WecomSinkConfig
from bridge.delivery.held_digest import DIGEST, digest_mails
from bridge.delivery.preferences_gate import PreferenceGate
from bridge.errors import (
    CredentialsError,
    SinkError,
    StoreError,
    TokenInvalidError,
    UpstreamError,
    UpstreamUnavailable,
)
from bridge.events import MAIL_RECEIVED, Event
from bridge.logs import get_logger
from bridge.tokenstash import TokenStash
from sinks.wecom_api import WecomApi
from sinks.wecom_budget import Budget, MemberBudget
from sinks.wecom_card import MailLine, digest_card, mail_card, settings_link
from sinks.wecom_members import MemberDirectory
from sinks.wecom_notice import CONTENT_MAX_B, is_news, notice

__all__ = ["WecomSink"]

log = get_logger(__name__)
_Items = list[tuple[int, Event]]  # (index in the batch, event)
_Results = dict[int, SinkError | None]  # index in the batch -> None (sent) or the failure
Message = tuple[str, dict[str, str]]  # (msgtype, its body)
_SETTINGS_URL_MAX_B = 200  # a longer /me link would crowd the mail out of the card


class WecomSink:
    """Sends each new mail as a WeCom textcard to its mailbox's owner."""

    def __init__(
        self,
        *,
        config: WecomSinkConfig,
        link_for: Callable[[Event], str | None],
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        budget: Budget | None = None,
        gate: PreferenceGate | None = None,
        settings_url: str | None = None,
        tokens: TokenStash | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.api = WecomApi(config=config, session=session, clock=clock, stash=tokens)
        self.members = MemberDirectory(
            api=self.api, users=config.users, lookup_email=config.lookup_email, clock=clock
        )
        self._budget = budget or MemberBudget(per_min=config.per_member_per_min, clock=clock)
        self._link_for = link_for
        # Members' preferences (the /me page): None = every mail is delivered at once.
        self.gate = gate
        fits = settings_url is not None and len(settings_url.encode()) <= _SETTINGS_URL_MAX_B
        self._settings_url = settings_url if settings_url and fits else ""
        self._footer = settings_link(self._settings_url) if self._settings_url else ""

    async def start(self) -> None:
        """Open the HTTP session."""
        await self.api.start()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self.api.aclose()

    async def userid_for(self, mailbox: str) -> str | None:
        """The WeCom member who owns `mailbox` (static map, then the cached lookup)."""
        return await self.members.userid_for(mailbox)

    async def oauth_userid(self, code: str) -> str:
        """The member a WeCom OAuth code was issued to (`auth/getuserinfo`)."""
        return await self.api.userid_by_code(code)

    async def send(self, event: Event) -> None:
        """Deliver one event, or raise SinkError."""
        [result] = await self.send_batch([event])
        if result is not None:
            raise result

    async def send_batch(self, events: Sequence[Event]) -> list[SinkError | None]:
        """One result per event; a member's burst becomes one digest card.

        The batch has its own deadline (2 x `timeout_s`): when it passes, the cards already
        sent count as sent and only the ones not yet sent fail (retryable), so a retry never
        repeats a card that went out.
        """
        deadline = asyncio.get_running_loop().time() + 2 * self.config.timeout_s
        mails = [(i, e) for i, e in enumerate(events) if self._announces(e)]
        groups, results = await self._group_by_member(mails)
        async with asyncio.TaskGroup() as tasks:
            sends = [
                tasks.create_task(self._deliver(userid, items, deadline), name=f"wecom[{userid}]")
                for userid, items in groups.items()
            ]
        for send in sends:
            results.update(send.result())
        return [results.get(i) for i in range(len(events))]

    def _announces(self, event: Event) -> bool:
        if event.type in (MAIL_RECEIVED, DIGEST):  # a digest: a member's held mails, released
            return True
        return is_news(event) and self._link_for(event) is None

    async def _group_by_member(self, mails: _Items) -> tuple[dict[str, _Items], _Results]:
        by_mailbox: dict[str, _Items] = {}
        for item in mails:
            by_mailbox.setdefault(item[1].mailbox.lower(), []).append(item)
        owners = await asyncio.gather(
            *(self.members.userid_for(mailbox) for mailbox in by_mailbox), return_exceptions=True
        )
        groups: dict[str, _Items] = {}
        failed: _Results = {}
        for (mailbox, items), owner in zip(by_mailbox.items(), owners, strict=True):
            if isinstance(owner, BaseException):
                if not isinstance(owner, UpstreamError):
                    raise owner
                failed.update(_all(items, self._sink_error(owner)))
            elif owner is None:
                reason = f"no WeCom member for {mailbox}"
                failed.update(_all(items, SinkError(self.name, reason, retryable=False)))
            else:
                groups.setdefault(owner, []).extend(items)
        for items in groups.values():
            items.sort(key=lambda item: item[0])
        return groups, failed

    async def _deliver(self, userid: str, items: _Items, deadline: float) -> _Results:
        try:
            items = await self._screen(userid, items)
        except StoreError as exc:
            return _all(items, SinkError(self.name, f"preferences: {exc}", retryable=True))
        if not items:
            return {}  # held or muted: acknowledged, the gate kept or recorded them
        got = await self._budget.take(userid, len(items))
        if got.taken == len(items):
            return await self._send_each(userid, items, deadline)
        if got.taken:
            return await self._send_digest(userid, items, deadline)
        reason = f"WeCom member {userid} reached {self._budget.per_min} messages a minute"
        wait_s = max(got.wait_s, 1.0)
        return _all(items, SinkError(self.name, reason, retryable=True, retry_after_s=wait_s))

    async def _send_each(self, userid: str, items: _Items, deadline: float) -> _Results:
        sent: _Results = {}
        for done, (index, event) in enumerate(items):
            failure = await self._send_by(deadline, userid, self._message([event]))
            if failure is not None:
                return sent | _all(items[done:], failure)  # later mails would fail the same way
            sent[index] = None
            await self._delivered(userid, [event])
        return sent

    async def _send_digest(self, userid: str, items: _Items, deadline: float) -> _Results:
        log.info("wecom_digest", sink=self.name, userid=userid, mails=len(items))
        events = [event for _, event in items]
        failure = await self._send_by(deadline, userid, self._message(events))
        if failure is None:
            await self._delivered(userid, events)
        return _all(items, failure)

    def _with_settings(self, text: dict[str, str]) -> dict[str, str]:
        """A plain-text notice with the "通知设置" link under it, when it fits."""
        line = f'\n<a href="{html.escape(self._settings_url)}">通知设置</a>'
        content = text["content"] + line
        if not self._settings_url or len(content.encode()) > CONTENT_MAX_B:
            return text
        return {"content": content}

    async def _screen(self, userid: str, items: _Items) -> _Items:
        """The items to send now: the member's preferences hold or mute the others."""
        if self.gate is None:
            return items
        keep = {e.id for e in await self.gate.screen(userid, [event for _, event in items])}
        return [item for item in items if item[1].id in keep]

    async def _delivered(self, userid: str, events: list[Event]) -> None:
        if self.gate is not None:
            await self.gate.delivered(userid, events)

    def _message(self, events: Sequence[Event]) -> Message:
        """One card for `events` (newest last; a digest event counts as its held mails),
        or a plain text where there is no link."""
        mails = [mail for event in events for mail in digest_mails(event)]
        url = self._link_for(mails[-1])
        if url is None:
            return "text", self._with_settings(notice(mails))
        btntxt, footer = self.config.button_text, self._footer
        if len(events) == 1 and events[0].type != DIGEST:
            line = MailLine.from_data(mails[0].data)
            return "textcard", mail_card(line, url=url, btntxt=btntxt, footer=footer).as_json()
        lines = [MailLine.from_data(mail.data) for mail in mails]
        return "textcard", digest_card(lines, url=url, btntxt=btntxt, footer=footer).as_json()

    async def _send_by(self, deadline: float, userid: str, message: Message) -> SinkError | None:
        """Send one message before `deadline`; the failure, or None when it went out."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._send(userid, *message)
        except SinkError as exc:
            return exc
        except TimeoutError:
            return SinkError(self.name, "batch deadline passed before this card", retryable=True)
        return None

    async def _send(self, userid: str, msgtype: str, body: dict[str, str]) -> None:
        payload = {
            "touser": userid,
            "msgtype": msgtype,
            "agentid": self.config.agent_id,
            msgtype: body,
        }
        try:
            doc = await self.api.send_message(payload)
        except UpstreamError as exc:
            raise self._sink_error(exc) from exc
        invalid = {u.lower() for u in str(doc.get("invaliduser") or "").split("|") if u}
        if userid.lower() in invalid:
            reason = f"WeCom member {userid} cannot receive this app's messages (invaliduser)"
            raise SinkError(self.name, reason, retryable=False)

    def _sink_error(self, exc: UpstreamError) -> SinkError:
        """Translate an upstream failure into what the dispatcher does next."""
        if isinstance(exc, CredentialsError):
            # The dispatcher counts loud failures (metrics.sink_permanent_failure) per event.
            log.error(
                "wecom_config_error",
                sink=self.name,
                endpoint=exc.endpoint,
                errcode=exc.code,
                hint=str(exc),
            )
            reason = f"WeCom app configuration error: {exc}"
            return SinkError(self.name, reason, retryable=False, loud=True)
        if isinstance(exc, UpstreamUnavailable):
            return SinkError(self.name, str(exc), retryable=True, retry_after_s=exc.retry_after_s)
        # A token rejected right after a refresh: a WeCom hiccup, worth another try later.
        retryable = isinstance(exc, TokenInvalidError)
        return SinkError(self.name, f"WeCom refused: {exc}", retryable=retryable)


def _all(items: _Items, result: SinkError | None) -> _Results:
    return dict.fromkeys((index for index, _ in items), result)
