"""Card text: cut by UTF-8 bytes, never inside a character or an HTML entity."""

from __future__ import annotations

import pytest

from sinks.wecom_card import MailLine, cut_bytes, digest_card, mail_card

_MIXED = "Re: 预算 & <审批> émoji 🎉 完成" * 5


@pytest.mark.parametrize("limit_b", range(3, 80))
def test_cut_bytes_keeps_whole_characters(limit_b: int) -> None:
    """Every cut fits the byte limit and is a true prefix of the text plus an ellipsis."""
    cut = cut_bytes(_MIXED, limit_b)
    assert len(cut.encode()) <= limit_b
    assert _MIXED.startswith(cut.removesuffix("…"))


def test_cut_bytes_leaves_short_text_alone() -> None:
    """Text within the limit is returned unchanged."""
    assert cut_bytes("短标题", 9) == "短标题"


def test_description_never_cuts_an_entity() -> None:
    """Escaped sender and summary stay valid: no half `&amp;` at the cut."""
    line = MailLine(sender="A&B <a@b.c>", subject="s", summary="&" * 600)
    card = mail_card(line, url="http://x/open/t", btntxt="打开邮件")
    assert len(card.description.encode()) <= 512
    body = card.description.split('<div class="normal">')[1].removesuffix("…</div>")
    assert body == "&amp;" * (len(body) // 5)


def test_empty_subject_gets_a_placeholder() -> None:
    """A mail without a subject still has a title (WeCom rejects an empty one)."""
    line = MailLine.from_data({"from": {"name": "", "address": "a@b.c"}, "subject": ""})
    assert mail_card(line, url="http://x", btntxt="详情").title == "(无主题 / no subject)"


def test_control_characters_and_bidi_overrides_become_spaces() -> None:
    """Control, zero-width and bidi characters in a sender's text each become one space."""
    line = MailLine.from_data(
        {
            "from": {"name": "Ann\u202eevil", "address": "a@b.c"},
            "subject": "Pay\r\nnow\x00!",
            "summary": "\x1b[31mred\u2028line",
        }
    )
    assert line == MailLine("Ann evil <a@b.c>", "Pay now !", "[31mred line")
    blank = MailLine.from_data({"from": {"name": "\u200b\ufeff"}, "subject": "\n\t\x7f"})
    assert (blank.sender, blank.subject) == ("?", "(无主题 / no subject)")


def test_digest_of_two_lists_both() -> None:
    """A short digest lists every mail and needs no "more" line."""
    lines = [MailLine("Ann <a@x>", "one", ""), MailLine("Ben <b@x>", "two", "")]
    card = digest_card(lines, url="http://x", btntxt="查看")
    assert card.title == "2 封新邮件 / 2 new mails"
    assert (
        card.description == '<div class="normal">Ben: two</div><div class="normal">Ann: one</div>'
    )


def test_overlong_url_is_refused() -> None:
    """A click-through URL over 2048 bytes is a programming error, not a silent cut."""
    with pytest.raises(ValueError, match="2048"):
        mail_card(MailLine("a", "b", "c"), url="http://x/" + "a" * 2048, btntxt="打开")
