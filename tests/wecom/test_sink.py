"""The wecom sink against the WeCom simulator on a real local HTTP server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from structlog.testing import capture_logs

from bridge import metrics
from bridge.errors import SinkError
from bridge.events import unread_changed
from tests.plugins.wecom import WecomSim
from tests.wecom.helpers import mail, running_sink


async def test_card_says_who_what_and_links_to_the_mail(wecom_sim: WecomSim) -> None:
    """A new mail becomes one textcard with subject, sender, summary and the click link."""
    wecom_sim.state.add_member("bob")
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        await sink.send(mail(mail_id="m42"))
    [sent] = wecom_sim.state.messages("bob")
    card = sent.body
    assert sent.msgtype == "textcard"
    assert card["title"] == "Quarterly report"
    assert "Alice &lt;alice@partner.com&gt;" in card["description"]
    assert "Please find attached." in card["description"]
    assert card["url"] == "http://bridge.test/open/m42"
    assert card["btntxt"] == "打开邮件"


async def test_long_chinese_mail_fits_wecom_limits(wecom_sim: WecomSim) -> None:
    """A long Chinese subject and summary are cut by bytes, never inside a character."""
    wecom_sim.state.add_member("bob")
    subject = "关于二〇二六年第四季度预算调整的紧急通知" * 10
    summary = "请各部门负责人于本周五前提交修订后的预算表，逾期不候。" * 30
    sender = '"非常非常长的发件人名字' * 8 + '" <sender@example.com>'
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        await sink.send(mail(subject=subject, summary=summary, sender=sender))
    [sent] = wecom_sim.state.messages("bob")
    title, description = sent.body["title"], sent.body["description"]
    assert len(title.encode()) <= 128
    assert len(description.encode()) <= 512
    assert title.endswith("…")
    assert subject.startswith(title.removesuffix("…"))
    assert len(title.encode()) > 128 - 6  # cut close to the limit, not far before it
    assert "请各部门负责人" in description


async def test_static_map_needs_no_lookup(wecom_sim: WecomSim) -> None:
    """A mailbox in the static `users` map is sent to without an email lookup."""
    wecom_sim.state.add_member("bob", "other@acme.com")
    async with running_sink(wecom_sim, users={"Bob@Acme.com": "bob"}) as sink:
        await sink.send(mail("bob@acme.com"))
    assert len(wecom_sim.state.messages("bob")) == 1
    assert wecom_sim.state.count("user/get_userid_by_email") == 0


async def test_email_lookup_caches_hits_and_misses(wecom_sim: WecomSim) -> None:
    """Lookups by email are cached: a second mail, known or unknown, makes no request."""
    wecom_sim.state.add_member("carol", "carol@acme.com")
    async with running_sink(wecom_sim) as sink:
        await sink.send(mail("carol@acme.com", "m1"))
        await sink.send(mail("carol@acme.com", "m2"))
        for mail_id in ("m3", "m4"):
            with pytest.raises(SinkError) as caught:
                await sink.send(mail("ghost@acme.com", mail_id))
            assert not caught.value.retryable
            assert caught.value.reason == "no WeCom member for ghost@acme.com"
    assert len(wecom_sim.state.messages("carol")) == 2
    assert wecom_sim.state.count("user/get_userid_by_email") == 2


async def test_no_lookup_when_disabled(wecom_sim: WecomSim) -> None:
    """With lookup_email = false an unmapped mailbox fails at once, without a request."""
    wecom_sim.state.add_member("carol", "carol@acme.com")
    async with running_sink(wecom_sim, lookup_email=False) as sink:
        with pytest.raises(SinkError, match="no WeCom member"):
            await sink.send(mail("carol@acme.com"))
    assert wecom_sim.state.count("user/get_userid_by_email") == 0


async def test_token_is_fetched_once_for_concurrent_sends(wecom_sim: WecomSim) -> None:
    """Ten sends from a cold start share one gettoken call."""
    for i in range(10):
        wecom_sim.state.add_member(f"u{i}")
    users = {f"u{i}@acme.com": f"u{i}" for i in range(10)}
    async with running_sink(wecom_sim, users=users) as sink:
        await asyncio.gather(*(sink.send(mail(f"u{i}@acme.com", f"m{i}")) for i in range(10)))
    assert wecom_sim.state.count("gettoken") == 1
    assert wecom_sim.state.count("message/send") == 10


@pytest.mark.parametrize("errcode", [40014, 42001])
async def test_revoked_token_is_refreshed_once(
    wecom_sim: WecomSim, errcode: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A token revoked mid-run costs exactly one refresh, and the message goes through."""
    wecom_sim.state.add_member("bob")
    caplog.set_level(logging.DEBUG)
    refreshes_before = _token_refreshes()
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        with capture_logs() as logs:
            await sink.send(mail(mail_id="m1"))
            old_tokens = list(wecom_sim.state.tokens)
            wecom_sim.state.inject(errcode, endpoint="message/send")
            await sink.send(mail(mail_id="m2"))
            await sink.send(mail(mail_id="m3"))
    assert wecom_sim.state.count("gettoken") == 2
    assert _token_refreshes() == refreshes_before + 2
    _assert_no_secrets(wecom_sim, [*map(str, logs), caplog.text], extra=old_tokens)
    assert [m.body["url"][-2:] for m in wecom_sim.state.messages("bob")] == ["m1", "m2", "m3"]


@pytest.mark.parametrize(("errcode", "wait_s"), [(45009, 60.0), (45033, 5.0), (-1, 2.0)])
async def test_busy_wecom_is_retryable(wecom_sim: WecomSim, errcode: int, wait_s: float) -> None:
    """45009, 45033 and -1 are retryable with a back-off hint."""
    wecom_sim.state.add_member("bob")
    wecom_sim.state.inject(errcode, endpoint="message/send")
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(mail())
    assert caught.value.retryable
    assert caught.value.retry_after_s == wait_s
    assert not caught.value.loud


@pytest.mark.parametrize("errcode", [60020, 40056, 48002])
async def test_app_configuration_errors_are_loud(wecom_sim: WecomSim, errcode: int) -> None:
    """Untrusted IP, bad agentid, forbidden: permanent, loud, counted, logged with the hint."""
    # The dispatcher counts loud failures in metrics; the sink counts the upstream errcode.
    wecom_sim.state.add_member("bob")
    wecom_sim.state.inject(errcode, endpoint="message/send")
    before = _upstream_errors(errcode)
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        with capture_logs() as logs, pytest.raises(SinkError) as caught:
            await sink.send(mail())
    assert not caught.value.retryable
    assert caught.value.loud
    assert _upstream_errors(errcode) == before + 1
    [entry] = [e for e in logs if e["event"] == "wecom_config_error"]
    assert entry["log_level"] == "error"
    assert entry["errcode"] == str(errcode)
    assert "hint" in entry["hint"]
    _assert_no_secrets(wecom_sim, [*map(str, logs), str(caught.value)])


async def test_bad_corp_secret_is_loud(wecom_sim: WecomSim) -> None:
    """A wrong corp_secret (40001 from gettoken) is permanent and loud; the secret is not shown."""
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}, corp_secret="nope") as sink:
        with capture_logs() as logs, pytest.raises(SinkError) as caught:
            await sink.send(mail())
    assert caught.value.loud
    assert not caught.value.retryable
    assert "40001" in caught.value.reason
    assert all("nope" not in str(entry) for entry in logs)


@pytest.mark.parametrize("visible", [True, False])
async def test_member_who_cannot_receive_is_permanent(wecom_sim: WecomSim, visible: bool) -> None:
    """81013 (the only recipient is unknown or outside the app's range) is permanent."""
    if not visible:
        wecom_sim.state.add_member("bob", visible=False)
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(mail())
    assert not caught.value.retryable
    assert not caught.value.loud
    assert "81013" in caught.value.reason


async def test_unreachable_wecom_is_retryable(wecom_sim: WecomSim) -> None:
    """A connection error is retryable and its message carries no URL."""
    from tests.plugins.services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}, api_base=url) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(mail())
    assert caught.value.retryable
    assert "127.0.0.1" not in str(caught.value)


async def test_unread_and_directory_events_are_acknowledged_silently(wecom_sim: WecomSim) -> None:
    """Only new mails make cards; unread-count events succeed without a message."""
    wecom_sim.state.add_member("bob")
    event = unread_changed(
        tenant="acme", mailbox="bob@acme.com", unread_count=3, previous=1, reason="reconcile"
    )
    async with running_sink(wecom_sim, users={"bob@acme.com": "bob"}) as sink:
        assert await sink.send_batch([event]) == [None]
    assert wecom_sim.state.messages("bob") == []
    assert wecom_sim.state.count("message/send") == 0


def _token_refreshes() -> float:
    labels = {"provider": "wecom", "outcome": "ok"}
    return metrics.REGISTRY.get_sample_value("exmail_bridge_token_refreshes_total", labels) or 0.0


def _upstream_errors(errcode: int) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "exmail_bridge_upstream_errors_total",
        {"endpoint": "wecom/message/send", "code": str(errcode)},
    )
    return value or 0.0


def _assert_no_secrets(sim: WecomSim, texts: list[str], extra: list[str] | None = None) -> None:
    secrets_seen = [sim.state.corp_secret, *sim.state.tokens, *(extra or [])]
    assert all(secrets_seen)
    for text in texts:
        for secret in secrets_seen:
            assert secret not in text
