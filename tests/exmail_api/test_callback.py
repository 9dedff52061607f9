"""The callback receiver over real HTTP: URL check, messages, refusals, replays, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import pytest
from structlog.testing import capture_logs

from bridge import events
from bridge.config import TenantConfig
from bridge.errors import StoreError
from bridge.exmail_api.callback import MAX_BODY_BYTES, MAX_NAME_CHARS
from bridge.metrics import REGISTRY
from bridge.store.base import Store
from tests.exmail_api.helpers import (
    AES_KEY,
    MAIL_ID,
    TOKEN,
    Callback,
    api_tenant,
    mail_xml,
    sealed,
    unread_xml,
    url_check,
)
from tests.exmail_api.receiver import Receiver, serving


def refused(reason: str) -> float:
    """How many callbacks were refused for `reason` so far."""
    value = REGISTRY.get_sample_value("exmail_bridge_callbacks_refused_total", {"reason": reason})
    return value or 0.0


def handled(outcome: str) -> float:
    """How many callbacks were answered 200 with `outcome` so far."""
    value = REGISTRY.get_sample_value("exmail_bridge_callbacks_total", {"outcome": outcome})
    return value or 0.0


async def test_url_check_answers_the_decrypted_echo(rx: Receiver) -> None:
    """GET with a valid signature answers echostr's plain text, nothing else."""
    async with rx.http.get(f"{rx.url}/exmail/callback/globex", params=url_check()) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.read() == b"1616140317555161061"


async def test_url_check_with_a_forged_signature_is_401(rx: Receiver) -> None:
    """GET with a wrong signature is refused with 401 and no echo."""
    query = url_check(msg_signature="0" * 40)
    async with rx.http.get(f"{rx.url}/exmail/callback/globex", params=query) as resp:
        assert resp.status == 401
        assert b"1616140317555161061" not in await resp.read()


async def test_mail_is_committed_then_answered(rx: Receiver) -> None:
    """A Mail callback becomes exmail.mail.received with the sample's fields, then 200."""
    resp = await rx.post(sealed(mail_xml()))
    assert (resp.status, resp.body) == (200, b"")
    [event] = await rx.committed()
    assert event.type == events.MAIL_RECEIVED
    assert event.id == events.event_id("globex", "mail", MAIL_ID)
    assert event.mailbox == "boss@globex.com"
    assert event.time == "2021-01-07T08:16:55.000Z"
    assert event.data["from"] == {"name": "Zhou Rui", "address": "zhourui@zoneland.net"}
    assert (event.data["subject"], event.data["unread_count"]) == ("邮件到达了", 11)


async def test_unread_is_committed(rx: Receiver) -> None:
    """An UnRead callback becomes exmail.mail.unread with the absolute count."""
    assert (await rx.post(sealed(unread_xml(count=10)))).status == 200
    [event] = await rx.committed()
    assert event.type == events.MAIL_UNREAD
    assert (event.mailbox, event.data["unread_count"]) == ("boss@globex.com", 10)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (mail_xml(msg_type="MAIL"), events.MAIL_RECEIVED),
        (unread_xml(msg_type="unread"), events.MAIL_UNREAD),
        (unread_xml(msg_type=""), events.MAIL_UNREAD),
        (unread_xml(msg_type="Mail"), events.MAIL_UNREAD),
    ],
    ids=["upper-case", "lower-case", "no-msgtype", "doc-mislabelled"],
)
async def test_types_match_by_name_or_by_elements(rx: Receiver, message: bytes, kind: str) -> None:
    """MsgType matches in any case; without it (or mislabelled) the elements decide."""
    assert (await rx.post(sealed(message))).status == 200
    assert [e.type for e in await rx.committed()] == [kind]


async def test_envelope_siblings_are_tolerated(rx: Receiver) -> None:
    """An envelope with ToUserName, AgentID or other siblings is accepted too."""
    siblings = "<ToUserName><![CDATA[x]]></ToUserName><AgentID>218</AgentID><Extra/>"
    assert (await rx.post(sealed(mail_xml(), siblings=siblings))).status == 200
    assert len(await rx.committed()) == 1


async def test_unknown_type_is_counted_not_committed(rx: Receiver) -> None:
    """A message of an unknown MsgType is answered 200, logged and counted, not committed."""
    before = handled("unknown_type")
    message = b"<xml><MsgType>MailRecall</MsgType><MailID>1</MailID></xml>"
    with capture_logs() as logs:
        assert (await rx.post(sealed(message))).status == 200
    assert await rx.committed() == []
    assert handled("unknown_type") == before + 1
    assert any(
        e["event"] == "callback_unknown_type" and e["msg_type"] == "MailRecall" for e in logs
    )


async def test_same_mail_twice_is_one_event(rx: Receiver) -> None:
    """The same mail delivered twice (fresh nonce each time) is committed once."""
    before = REGISTRY.get_sample_value("exmail_bridge_events_deduplicated_total") or 0.0
    for _ in range(2):
        assert (await rx.post(sealed(mail_xml()))).status == 200
    assert len(await rx.committed()) == 1
    assert REGISTRY.get_sample_value("exmail_bridge_events_deduplicated_total") == before + 1


async def test_same_unread_twice_is_one_event(rx: Receiver) -> None:
    """The same UnRead delivered twice (same Time) is committed once."""
    for _ in range(2):
        assert (await rx.post(sealed(unread_xml(count=4, time_s=1700000000)))).status == 200
    assert len(await rx.committed()) == 1


def _stale() -> Callback:
    return sealed(mail_xml(), timestamp=1409659589)


def _future() -> Callback:
    import time

    return sealed(mail_xml(), timestamp=int(time.time()) + 301)


def _forged() -> Callback:
    return sealed(mail_xml(), token="not-the-token")


def _missing_signature() -> Callback:
    cb = sealed(mail_xml())
    del cb.query["msg_signature"]
    return cb


def _wrong_corp() -> Callback:
    return sealed(mail_xml(), receive_id="wwSOMEONEELSE")


def _wrong_corp_inside() -> Callback:
    return sealed(mail_xml(corp="wwSOMEONEELSE"))


def _oversized() -> Callback:
    cb = sealed(mail_xml())
    cb.body = cb.body[:-6] + b" " * MAX_BODY_BYTES + b"</xml>"
    return cb


def _entity_bomb() -> Callback:
    cb = sealed(mail_xml())
    cb.body = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    return cb


def _no_encrypt() -> Callback:
    cb = sealed(mail_xml())
    cb.body = b"<xml><ToUserName>x</ToUserName></xml>"
    return cb


REFUSALS = [
    (_forged, 401, "signature"),
    (_missing_signature, 401, "signature"),
    (_wrong_corp, 403, "corp"),
    (_wrong_corp_inside, 403, "corp"),
    (_stale, 403, "stale"),
    (_future, 403, "stale"),
    (_oversized, 403, "oversized"),
    (_entity_bomb, 403, "malformed"),
    (_no_encrypt, 403, "malformed"),
]


@pytest.mark.parametrize(
    ("make", "status", "reason"), REFUSALS, ids=[f.__name__ for f, *_ in REFUSALS]
)
async def test_each_refusal_commits_nothing(
    rx: Receiver, make: object, status: int, reason: str
) -> None:
    """Each bad callback gets its status, its reason in a log field and metric, no event."""
    before = refused(reason)
    with capture_logs() as logs:
        resp = await rx.post(make())  # type: ignore[operator]
    assert resp.status == status
    assert await rx.committed() == []
    assert refused(reason) == before + 1
    assert {"event": "callback_refused", "reason": reason}.items() <= logs[-1].items()


async def test_an_oversized_chunked_body_is_refused(rx: Receiver) -> None:
    """A body without Content-Length is cut off and refused once it passes 64 KiB."""
    cb = sealed(mail_xml())

    async def chunks() -> AsyncIterator[bytes]:
        yield cb.body[:-6]
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b" " * 4096
        yield b"</xml>"

    before = refused("oversized")
    url = f"{rx.url}/exmail/callback/globex"
    async with rx.http.post(url, params=cb.query, data=chunks()) as resp:
        assert resp.status == 403
    assert refused("oversized") == before + 1
    assert await rx.committed() == []


async def test_a_replay_is_refused_and_commits_nothing_more(rx: Receiver) -> None:
    """The same (signature, nonce) again is refused as `replay`; the first one counted."""
    cb = sealed(mail_xml())
    assert (await rx.post(cb)).status == 200
    before = refused("replay")
    resp = await rx.post(cb)
    assert resp.status == 403
    assert refused("replay") == before + 1
    assert len(await rx.committed()) == 1


async def test_concurrent_callbacks_are_each_committed(rx: Receiver) -> None:
    """Fifty different mails at once (grouped commits) are fifty events, each answered 200."""
    answers = await asyncio.gather(*(rx.post(sealed(mail_xml(f"m{i}"))) for i in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert len({e.id for e in await rx.committed()}) == 50


async def test_concurrent_copies_of_one_callback_commit_once(rx: Receiver) -> None:
    """Ten copies of one request at once: one 200, nine refused as replays, one event."""
    cb = sealed(mail_xml())
    answers = await asyncio.gather(*(rx.post(cb) for _ in range(10)))
    assert sorted(a.status for a in answers) == [200] + [403] * 9
    assert len(await rx.committed()) == 1


async def test_a_replay_is_refused_by_another_replica(store: Store) -> None:
    """Replicas share the replay marks through the store."""
    cb = sealed(unread_xml(count=2))
    async with serving(store) as first, serving(store) as second:
        assert (await first.post(cb)).status == 200
        assert (await second.post(cb)).status == 403


async def test_store_down_answers_503_and_the_retry_lands(rx: Receiver) -> None:
    """With the store failing, 503 (Tencent retries); the same request later commits."""
    cb = sealed(mail_xml())
    failing = StoreError("down", backend=rx.store.backend, op="commit")
    with patch.object(rx.store, "commit", side_effect=failing):
        assert (await rx.post(cb)).status == 503
    assert await rx.committed() == []
    assert (await rx.post(cb)).status == 200
    assert len(await rx.committed()) == 1


async def test_unknown_and_non_callback_tenants_are_404(store: Store) -> None:
    """A tenant name that is not an api tenant in callback mode gets 404."""
    legacy = TenantConfig.model_validate(
        {"name": "acme", "client_id": "a@acme.com", "client_secret": "k"}
    )
    async with serving(store, api_tenant(), legacy) as rx:
        for name in ("nobody", "acme"):
            assert (await rx.post(sealed(mail_xml()), tenant=name)).status == 404


async def test_an_unknown_tenant_is_logged_cut_short(rx: Receiver) -> None:
    """A made-up tenant in the public path reaches the log only cut to a name's length."""
    with capture_logs() as logs:
        assert (await rx.post(sealed(mail_xml()), tenant="A" * 2000)).status == 404
    (refused,) = [e for e in logs if e["event"] == "callback_refused"]
    assert refused["tenant"] == "A" * MAX_NAME_CHARS


async def test_mailbox_filter_applies(store: Store) -> None:
    """A mailbox outside the tenant's `mailboxes` is answered 200 but not committed."""
    async with serving(store, api_tenant(mailboxes=["*@sales.globex.com"])) as rx:
        assert (await rx.post(sealed(mail_xml()))).status == 200
        assert await rx.committed() == []


async def test_secrets_never_reach_logs_or_answers(rx: Receiver) -> None:
    """The token, the AES key and the ciphertext appear in no log line and no answer."""
    cb = sealed(mail_xml())
    with capture_logs() as logs:
        texts = [(await rx.post(c)).body for c in (cb, cb, _forged(), _wrong_corp())]
    dump = repr(logs) + b"".join(texts).decode()
    encrypt = cb.body.decode().split("CDATA[")[1].split("]]")[0]
    for secret in (TOKEN, AES_KEY, encrypt, cb.query["msg_signature"]):
        assert secret not in dump


async def test_a_replay_in_a_busy_group_leaves_the_others_committed(rx: Receiver) -> None:
    """A replay arriving with fresh callbacks is refused; the fresh ones are committed."""
    first = sealed(mail_xml(mail_id="m-first"))
    assert (await rx.post(first)).status == 200
    fresh = [sealed(mail_xml(mail_id=f"m-{n}")) for n in range(5)]
    answers = await asyncio.gather(*(rx.post(cb) for cb in [*fresh[:2], first, *fresh[2:]]))
    assert [a.status for a in answers] == [200, 200, 403, 200, 200, 200]
    assert len(await rx.committed()) == 6


async def test_a_slow_commit_answers_503_in_time_and_still_lands(rx: Receiver) -> None:
    """A slow commit answers 503 in time, still lands, and Tencent's retry adds no event."""
    real = rx.store.commit

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)
        return await real(*args, **kwargs)

    cb = sealed(mail_xml())
    with (
        patch("bridge.exmail_api.callback.ANSWER_WITHIN_S", 0.1),
        patch.object(rx.store, "commit", side_effect=slow),
    ):
        assert (await rx.post(cb)).status == 503
        while not await rx.store.backlog("oa"):
            await asyncio.sleep(0.05)
    assert (await rx.post(cb)).status in (200, 403)  # the retry: a duplicate, or a replay
    assert len(await rx.committed()) == 1


async def test_watched_mailboxes_move_their_baselines(store: Store) -> None:
    """A watched mailbox's callback count becomes its baseline, committed with the event."""
    tenant = api_tenant(watch=["boss@globex.com"])
    async with serving(store, tenant) as rx:
        assert (await rx.post(sealed(mail_xml(new_count=7)))).status == 200
        assert (await rx.post(sealed(unread_xml("other@globex.com", 3)))).status == 200
    assert await store.get_baselines("globex") == {"boss@globex.com": 7}
