"""Building Tencent-shaped callbacks for tests: signed, encrypted, over real HTTP."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from bridge.config import TenantConfig
from bridge.exmail_api.crypto import CallbackCrypto

CORP_ID = "ww878809d01b17fb5e"
TOKEN = "cb-token-for-tests"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
MAIL_ID = "Hr/VDOqk59elyFLdE9n3JU3mnwRsuo5JVzC1tNmquI8="


def api_tenant(name: str = "globex", **extra: Any) -> TenantConfig:
    """An `api` tenant in callback mode."""
    fields: dict[str, Any] = {
        "name": name,
        "protocol": "api",
        "corp_id": CORP_ID,
        "corp_secret": SecretStr("mail-secret"),
        "callback_token": SecretStr(TOKEN),
        "callback_aes_key": SecretStr(AES_KEY),
        **extra,
    }
    return TenantConfig.model_validate(fields)


def mail_xml(
    mail_id: str = MAIL_ID,
    to: str = "boss@globex.com",
    *,
    msg_type: str = "Mail",
    corp: str = CORP_ID,
    time_s: int = 1610007415,
    new_count: int = 11,
) -> bytes:
    """A decrypted `Mail` message like the live sample."""
    return (
        f"<xml><CorpID><![CDATA[{corp}]]></CorpID><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"<MailID><![CDATA[{mail_id}]]></MailID><ToUserID><![CDATA[{to}]]></ToUserID>"
        '<FromUser><![CDATA["Zhou Rui"<zhourui@zoneland.net>]]></FromUser>'
        f"<Title><![CDATA[邮件到达了]]></Title><Time>{time_s}</Time>"
        f"<NewCount>{new_count}</NewCount></xml>"
    ).encode()


def unread_xml(
    to: str = "boss@globex.com", count: int = 10, *, msg_type: str = "UnRead", time_s: int = 1
) -> bytes:
    """A decrypted `UnRead` message like the live sample."""
    kind = f"<MsgType><![CDATA[{msg_type}]]></MsgType>" if msg_type else ""
    return (
        f"<xml><CorpID><![CDATA[{CORP_ID}]]></CorpID>{kind}"
        f"<UserID><![CDATA[{to}]]></UserID><Time>{time_s}</Time>"
        f"<UnReadCount>{count}</UnReadCount></xml>"
    ).encode()


@dataclass
class Callback:
    """One callback request: query parameters and body."""

    query: dict[str, str]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/xml"})


def sealed(
    message: bytes,
    *,
    receive_id: str = CORP_ID,
    token: str = TOKEN,
    timestamp: int | None = None,
    nonce: str | None = None,
    siblings: str = "",
) -> Callback:
    """`message` encrypted and signed as Tencent sends it (envelope without ToUserName)."""
    crypto = CallbackCrypto(token=token, aes_key=AES_KEY, receive_id=receive_id)
    encrypt = crypto.encrypt(message)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(secrets.randbelow(10**9))
    query = {"msg_signature": crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>{siblings}</xml>".encode()
    return Callback(query=query, body=body)


def url_check(echo: bytes = b"1616140317555161061", **kw: Any) -> dict[str, str]:
    """The query of a URL check (GET) whose echostr decrypts to `echo`."""
    crypto = CallbackCrypto(token=TOKEN, aes_key=AES_KEY, receive_id=CORP_ID)
    echostr = crypto.encrypt(echo)
    ts = str(int(time.time()))
    nonce = "263014780"
    return {
        "msg_signature": crypto.sign(ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
        **kw,
    }
