"""The listen long poll: every push kind, framing and quirk the protocol may show."""

from __future__ import annotations

from contextlib import aclosing

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.pushes import Heartbeat, MailPush, UnknownPush, UnreadPush, VersionPush
from tests.exmail.helpers import ACME, collect, sample
from tests.plugins.sim import ExmailSim


async def test_new_mail_push(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A mail sent in the simulator arrives as a typed MailPush with the unread count."""
    mail_id = exmail_sim.state.send_mail(
        ACME, to="bob@acme.com", sender="alice@gzdev.com", subject="Hi", summary="Hello"
    )
    assert await collect(client, tenant) == [
        MailPush(
            mailbox="bob@acme.com",
            mail_id=mail_id,
            sender='"alice"<alice@gzdev.com>',
            receiver="bob@acme.com",
            subject="Hi",
            summary="Hello",
            new_count=1,
        )
    ]


async def test_unread_push(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Setting an unread count arrives as an UnreadPush."""
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 7)
    assert await collect(client, tenant) == [UnreadPush(mailbox="bob@acme.com", new_count=7)]


async def test_version_push(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A directory change arrives as one VersionPush carrying the new version as digits."""
    ver = exmail_sim.state.add_user(ACME, "carol@acme.com")
    assert await collect(client, tenant) == [VersionPush(ver=ver)]


async def test_listen_behind_the_directory_hears_the_version(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A listen with an older Ver is told the current version at once."""
    ver = exmail_sim.state.add_user(ACME, "carol@acme.com")
    await collect(client, tenant)
    assert await collect(client, tenant, "0") == [VersionPush(ver=ver)]
    assert await collect(client, tenant, ver) == [Heartbeat()]


async def test_heartbeat_at_hold_end(client: ExmailClient, tenant: TenantConfig) -> None:
    """A hold that sees nothing ends with {"Ret":0}, read as a Heartbeat."""
    assert await collect(client, tenant) == [Heartbeat()]


async def test_empty_body_at_hold_end(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A hold that ends with an empty body yields nothing and raises nothing."""
    exmail_sim.state.configure(heartbeat="empty")
    assert await collect(client, tenant) == []


async def test_listen_sends_ver(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """The Ver given to listen() is the Ver the server receives."""
    await collect(client, tenant, "0")
    await collect(client, tenant, "1364460338051")
    stats = exmail_sim.state.stats(ACME)
    assert stats["listen_vers"] == ["0", "1364460338051"]
    assert stats["listen_requests"] == 2


@pytest.mark.parametrize(("framing", "per_listen"), [("single", 1), ("ndjson", 3), ("concat", 3)])
async def test_framings(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig, framing: str, per_listen: int
) -> None:
    """One object per response, or several newline-separated or concatenated on one response."""
    exmail_sim.state.configure(framing=framing)
    for n in range(3):
        exmail_sim.state.set_unread(ACME, "bob@acme.com", n + 1)
    first = await collect(client, tenant)
    assert first == [UnreadPush("bob@acme.com", n + 1) for n in range(per_listen)]
    assert exmail_sim.state.stats(ACME)["queued"] == 3 - per_listen


@pytest.mark.parametrize("framing", ["ndjson", "concat"])
async def test_held_response_yields_each_push_as_it_arrives(
    exmail_sim: ExmailSim, session: aiohttp.ClientSession, tenant: TenantConfig, framing: str
) -> None:
    """On a held response a push is yielded while the response is still open."""
    exmail_sim.state.configure(framing=framing, hold_s=10)
    client = ExmailClient(session=session, settings=exmail_sim.exmail_settings(listen_hold_s=10))
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 1)
    async with aclosing(client.listen(tenant, "0")) as pushes:
        assert await anext(pushes) == UnreadPush("bob@acme.com", 1)
        assert exmail_sim.state.stats(ACME)["listens_connected"] == 1
        exmail_sim.state.set_unread(ACME, "bob@acme.com", 2)
        assert await anext(pushes) == UnreadPush("bob@acme.com", 2)


@pytest.mark.parametrize("string_numbers", [True, False])
@pytest.mark.parametrize("framing", ["single", "ndjson", "concat"])
async def test_quirks_trailing_commas_and_type_drift(
    exmail_sim: ExmailSim,
    client: ExmailClient,
    tenant: TenantConfig,
    framing: str,
    string_numbers: bool,
) -> None:
    """Trailing commas and Ver/NewCount as strings or numbers decode to the same pushes."""
    exmail_sim.state.configure(framing=framing)
    exmail_sim.state.set_faults(trailing_commas=True, string_numbers=string_numbers)
    ver = exmail_sim.state.add_user(ACME, "carol@acme.com")
    mail_id = exmail_sim.state.send_mail(ACME, to="bob@acme.com", sender="a@b.c")
    pushes = await collect(client, tenant)
    if framing == "single":
        pushes += await collect(client, tenant, ver)
    assert pushes[0] == VersionPush(ver=ver)
    assert isinstance(pushes[1], MailPush)
    assert (pushes[1].mail_id, pushes[1].new_count) == (mail_id, 1)


async def test_garbage_is_counted_and_skipped(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Non-JSON bytes on the channel are counted as a json decode error; the push still comes."""
    before = sample("exmail_bridge_push_decode_errors_total", kind="json")
    exmail_sim.state.set_faults(invalid_json=True, endpoints=["listen"])
    exmail_sim.state.set_unread(ACME, "bob@acme.com", 3)
    assert await collect(client, tenant) == [UnreadPush("bob@acme.com", 3)]
    assert sample("exmail_bridge_push_decode_errors_total", kind="json") == before + 1


async def test_unknown_shape_is_counted(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """An object of no known shape becomes an UnknownPush and counts a shape decode error."""
    before = sample("exmail_bridge_push_decode_errors_total", kind="shape")
    exmail_sim.state.push_raw(ACME, {"Foo": 1, "Bar": "x"})
    assert await collect(client, tenant) == [UnknownPush(keys=("Bar", "Foo"))]
    assert sample("exmail_bridge_push_decode_errors_total", kind="shape") == before + 1


async def test_unknown_keys_are_ignored(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Extra keys beside a known shape do not change the push."""
    exmail_sim.state.push_raw(ACME, {"UserName": "bob@acme.com", "NewCount": "4", "Extra": [1]})
    assert await collect(client, tenant) == [UnreadPush("bob@acme.com", 4)]


async def test_pushes_wait_for_the_next_listen(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """Pushes queued while nobody listens go out, in order, on the next listens."""
    exmail_sim.state.set_unread(ACME, "a@acme.com", 1)
    exmail_sim.state.set_unread(ACME, "b@acme.com", 2)
    assert await collect(client, tenant) == [UnreadPush("a@acme.com", 1)]
    assert await collect(client, tenant) == [UnreadPush("b@acme.com", 2)]


async def test_repush_carries_the_same_mail_id(
    exmail_sim: ExmailSim, client: ExmailClient, tenant: TenantConfig
) -> None:
    """A re-pushed mail arrives again with its original MailId."""
    mail_id = exmail_sim.state.send_mail(ACME, to="bob@acme.com", sender="a@b.c")
    first = await collect(client, tenant)
    exmail_sim.state.repush(ACME, mail_id)
    assert await collect(client, tenant) == first
