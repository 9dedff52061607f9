"""Preference rules, form parsing and language choice: pure functions."""

from __future__ import annotations

from datetime import time

import pytest

from bridge.delivery.preferences import Preferences
from bridge.delivery.preferences_rules import MailFacts, release_at, verdict
from bridge.errors import InvalidPreferences
from bridge.web.me_forms import MAX_ENTRIES, form_values, parse_preferences
from bridge.web.me_text import choose_lang
from tests.me.delivery import shanghai

NIGHT = Preferences(quiet_start=time(22, 0), quiet_end=time(7, 0))
MAIL = MailFacts(sender="alice@partner.com", subject="Quarterly report")


@pytest.mark.parametrize(
    ("at", "until"),
    [
        ("2026-11-30 23:00", "2026-12-01 07:00"),
        ("2026-12-01 03:00", "2026-12-01 07:00"),
        ("2026-11-30 22:00", "2026-12-01 07:00"),
    ],
)
def test_quiet_hours_across_midnight_hold_until_their_end(at: str, until: str) -> None:
    """22:00-07:00 holds a mail from 22:00 on until 07:00 the next morning."""
    decision = verdict(NIGHT, MAIL, shanghai(at))
    assert decision.action == "hold"
    assert decision.until == shanghai(until)


@pytest.mark.parametrize("at", ["2026-11-30 07:00", "2026-11-30 12:00", "2026-11-30 21:59"])
def test_outside_quiet_hours_mail_goes_at_once(at: str) -> None:
    """Outside the window (its end included) a mail is delivered."""
    assert verdict(NIGHT, MAIL, shanghai(at)).action == "deliver"


def test_quiet_hours_are_in_the_members_time_zone() -> None:
    """12:00-13:00 in Berlin is 19:00-20:00 in Shanghai (winter)."""
    prefs = Preferences(quiet_start=time(12), quiet_end=time(13), timezone="Europe/Berlin")
    assert verdict(prefs, MAIL, shanghai("2026-11-30 19:30")).action == "hold"
    assert verdict(prefs, MAIL, shanghai("2026-11-30 12:30")).action == "deliver"


def test_vip_always_notifies_even_muted_or_in_a_muted_keyword() -> None:
    """A VIP glob beats quiet hours, mute-until, digest mode and muted keywords."""
    prefs = Preferences(
        quiet_start=time(0),
        quiet_end=time(23, 59),
        mute_until=shanghai("2027-01-01 00:00"),
        digest="daily",
        vip_senders=("*@board.acme.com",),
        muted_keywords=("report",),
    )
    vip = MailFacts(sender="Chair@Board.acme.com", subject="Quarterly report")
    assert verdict(prefs, vip, shanghai("2026-11-30 12:00")).action == "deliver"
    assert verdict(prefs, MAIL, shanghai("2026-11-30 12:00")).action == "mute"


def test_muted_senders_and_keywords_mute() -> None:
    """A muted sender glob or a subject keyword (any case) mutes; others pass."""
    prefs = Preferences(muted_senders=("ci@*",), muted_keywords=("[ci]",))
    now = shanghai("2026-11-30 12:00")
    assert verdict(prefs, MailFacts("ci@acme.com", "hello"), now).action == "mute"
    assert verdict(prefs, MailFacts("bob@acme.com", "[CI] red"), now).action == "mute"
    assert verdict(prefs, MAIL, now).action == "deliver"


def test_mute_until_then_quiet_hours_chain() -> None:
    """Muted until 23:00 inside quiet hours: the hold ends when the quiet hours end."""
    prefs = Preferences(
        quiet_start=time(22), quiet_end=time(7), mute_until=shanghai("2026-11-30 23:00")
    )
    assert release_at(prefs, shanghai("2026-11-30 18:00")) == shanghai("2026-12-01 07:00")


@pytest.mark.parametrize(
    ("digest", "at", "until"),
    [
        ("hourly", "2026-11-30 10:30", "2026-11-30 11:00"),
        ("hourly", "2026-11-30 10:00", "2026-11-30 11:00"),
        ("daily", "2026-11-30 08:00", "2026-11-30 09:00"),
        ("daily", "2026-11-30 09:30", "2026-12-01 09:00"),
    ],
)
def test_digest_holds_until_the_next_digest_time(digest: str, at: str, until: str) -> None:
    """Hourly digests go out on the hour, daily ones at 09:00 local."""
    prefs = Preferences(digest=digest)  # type: ignore[arg-type]
    assert release_at(prefs, shanghai(at)) == shanghai(until)


def test_form_round_trip_and_normalising() -> None:
    """A posted form becomes preferences; addresses are lower-cased and deduplicated."""
    now = shanghai("2026-11-30 12:00")
    prefs = parse_preferences(
        {
            "mute_until": "2026-11-30T18:00",
            "quiet_start": "22:00",
            "quiet_end": "07:00",
            "timezone": "",
            "vip_senders": "Boss@Acme.com\nboss@acme.com, *@board.acme.com",
            "muted_senders": "",
            "muted_keywords": "[CI]；周报",
            "digest": "hourly",
        },
        now,
    )
    assert prefs.mute_until == shanghai("2026-11-30 18:00")
    assert prefs.timezone == "Asia/Shanghai"
    assert prefs.vip_senders == ("boss@acme.com", "*@board.acme.com")
    assert prefs.muted_keywords == ("[CI]", "周报")
    assert parse_preferences(form_values(prefs), now) == prefs


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"quiet_start": "22:00"}, "quiet_end"),
        ({"quiet_start": "25:00", "quiet_end": "07:00"}, "quiet_start"),
        ({"digest": "weekly"}, "digest"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"mute_until": "tomorrow"}, "mute_until"),
        ({"vip_senders": "a b@c.d"}, "vip_senders"),
        ({"muted_keywords": "x" * 201}, "muted_keywords"),
        (
            {"muted_senders": "\n".join(f"s{i}@x.y" for i in range(MAX_ENTRIES + 1))},
            "muted_senders",
        ),
    ],
)
def test_bad_fields_are_named(form: dict[str, str], field: str) -> None:
    """Each unusable field raises InvalidPreferences naming it."""
    with pytest.raises(InvalidPreferences) as caught:
        parse_preferences(form, 0.0)
    assert caught.value.field == field


def test_a_pause_in_the_past_is_no_pause() -> None:
    """mute_until before now is stored as no pause."""
    assert parse_preferences({"mute_until": "2020-01-01T00:00"}, shanghai("2026-01-01 00:00")) == (
        Preferences()
    )


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("", "zh"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("en;q=0.5,zh;q=0.9", "zh"),
        ("de-DE,en;q=0.7", "en"),
        ("fr", "zh"),
        ("en;q=bogus", "zh"),
    ],
)
def test_language_follows_accept_language(header: str, lang: str) -> None:
    """Chinese unless the browser prefers English to Chinese."""
    assert choose_lang(header) == lang
