"""The callback's XML, parsed safely: the envelope's `Encrypt`, then the typed message.

Bodies come from the internet: parsed with defusedxml (no DTD, no entities, no external
references). The envelope may lack `ToUserName` and may carry other siblings. A message
is matched by `MsgType` case-insensitively and falls back to which elements it carries
(Tencent's own doc labels its UnRead sample `Mail`); a message of another type is an
`ApiUnknown`, logged and counted by the receiver, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bridge.errors import CallbackRefused

__all__ = ["ApiMail", "ApiUnknown", "ApiUnread", "CallbackPush", "envelope_encrypt", "parse"]


@dataclass(frozen=True, slots=True)
class ApiMail:
    """`MsgType=Mail`: one new mail for `mailbox` (`ToUserID`)."""

    corp_id: str
    mailbox: str
    mail_id: str
    sender: str
    subject: str
    time_s: int | None
    new_count: int | None


@dataclass(frozen=True, slots=True)
class ApiUnread:
    """`MsgType=UnRead`: the unread count of `mailbox` (`UserID`) is now `unread_count`."""

    corp_id: str
    mailbox: str
    time_s: int | None
    unread_count: int


@dataclass(frozen=True, slots=True)
class ApiUnknown:
    """A message of a type we do not know; `keys` are its element names, sorted."""

    msg_type: str
    keys: tuple[str, ...]


CallbackPush = ApiMail | ApiUnread | ApiUnknown


def _root(raw: bytes) -> Element:
    try:
        return fromstring(raw, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise CallbackRefused("malformed") from exc


def _fields(root: Element) -> dict[str, str]:
    """Child elements by lower-cased tag; the first of a repeated tag wins."""
    out: dict[str, str] = {}
    for child in root:
        out.setdefault(str(child.tag).lower(), (child.text or "").strip())
    return out


def envelope_encrypt(body: bytes) -> str:
    """The `<Encrypt>` text of a POST body; CallbackRefused("malformed") without one."""
    encrypt = _fields(_root(body)).get("encrypt", "")
    if not encrypt:
        raise CallbackRefused("malformed")
    return encrypt


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().lstrip("-").isdigit():
        return None
    return int(text)


def _mail(f: dict[str, str]) -> ApiMail | None:
    if not f.get("mailid") or not f.get("touserid"):
        return None
    return ApiMail(
        corp_id=f.get("corpid", ""),
        mailbox=f["touserid"],
        mail_id=f["mailid"],
        sender=f.get("fromuser", ""),
        subject=f.get("title", ""),
        time_s=_int(f.get("time")),
        new_count=_int(f.get("newcount")),
    )


def _unread(f: dict[str, str]) -> ApiUnread | None:
    count = _int(f.get("unreadcount"))
    if not f.get("userid") or count is None or count < 0:
        return None
    return ApiUnread(
        corp_id=f.get("corpid", ""),
        mailbox=f["userid"],
        time_s=_int(f.get("time")),
        unread_count=count,
    )


def parse(message: bytes) -> CallbackPush:
    """The typed message inside a decrypted callback."""
    f = _fields(_root(message))
    msg_type = f.get("msgtype", "")
    known = {"mail": _mail, "unread": _unread}
    if msg_type and msg_type.lower() not in known:
        return ApiUnknown(msg_type=msg_type, keys=tuple(sorted(f)))
    first = known.get(msg_type.lower(), _mail)
    for shape in (first, _mail, _unread):
        found = shape(f)
        if found is not None:
            return found
    return ApiUnknown(msg_type=msg_type, keys=tuple(sorted(f)))
