"""The simulator calls the bridge back like Tencent: sealed XML, 5 s timeout, 3 tries.

A callback is `POST <url>?msg_signature&timestamp&nonce` with `<xml><Encrypt>…</Encrypt>
</xml>` (no ToUserName, as Exmail sends it). Any answer other than 200, a timeout or a
refused connection is retried after `callback_retry_s`, up to `callback_tries` tries.
Faults (one-shot, see NewApiState.callback_faults): `bad_signature`, `wrong_corp`,
`stale_timestamp`, `duplicate` (the same request sent twice).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp

from bridge.exmail_api.crypto import CallbackCrypto
from bridge.simulator.exmail_newapi_state import ApiCorp, CallbackTarget, Delivery, NewApiState

__all__ = ["Sealed", "deliver", "mail_message", "seal", "unread_message"]

Sealed = tuple[dict[str, str], bytes]


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def mail_message(
    corp_id: str, *, mail_id: str, to: str, sender: str, subject: str, count: int
) -> bytes:
    """A decrypted `Mail` message, shaped like the live sample."""
    return (
        f"<xml><CorpID>{_cdata(corp_id)}</CorpID><MsgType>{_cdata('Mail')}</MsgType>"
        f"<MailID>{_cdata(mail_id)}</MailID><ToUserID>{_cdata(to)}</ToUserID>"
        f"<FromUser>{_cdata(sender)}</FromUser><Title>{_cdata(subject)}</Title>"
        f"<Time>{int(time.time())}</Time><NewCount>{count}</NewCount></xml>"
    ).encode()


def unread_message(corp_id: str, *, mailbox: str, count: int) -> bytes:
    """A decrypted `UnRead` message."""
    return (
        f"<xml><CorpID>{_cdata(corp_id)}</CorpID><MsgType>{_cdata('UnRead')}</MsgType>"
        f"<UserID>{_cdata(mailbox)}</UserID><Time>{int(time.time())}</Time>"
        f"<UnReadCount>{count}</UnReadCount></xml>"
    ).encode()


def seal(state: NewApiState, corp: ApiCorp, target: CallbackTarget, message: bytes) -> Sealed:
    """Query and body of one callback, with whichever faults are pending."""
    wrong_corp = state.take_fault("wrong_corp")
    receive_id = "wwSIMULATEDOTHER" if wrong_corp else corp.corp_id
    crypto = CallbackCrypto(token=target.token, aes_key=target.aes_key, receive_id=receive_id)
    encrypt = crypto.encrypt(message)
    stale = state.take_fault("stale_timestamp")
    timestamp = str(int(time.time()) - (3600 if stale else 0))
    nonce = str(secrets.randbelow(10**10))
    signature = crypto.sign(timestamp, nonce, encrypt)
    if state.take_fault("bad_signature"):
        signature = "0" * 40
    query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
    return query, f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt></xml>".encode()


async def deliver(state: NewApiState, corp: ApiCorp, kind: str, message: bytes) -> list[Delivery]:
    """Send one callback (twice under the `duplicate` fault); the tries, in order."""
    target = corp.callback
    if target is None:
        return []
    sealed = seal(state, corp, target, message)
    copies = 2 if state.take_fault("duplicate") else 1
    tries: list[Delivery] = []
    for _ in range(copies):
        tries += await _with_retries(state, corp.corp_id, kind, target.url, sealed)
    return tries


async def _with_retries(
    state: NewApiState, corp_id: str, kind: str, url: str, sealed: Sealed
) -> list[Delivery]:
    tries: list[Delivery] = []
    settings = state.settings
    for attempt in range(1, settings.callback_tries + 1):
        status, error = await _post(url, sealed, settings.callback_timeout_s)
        tries.append(Delivery(corp_id, kind, attempt, status, error))
        state.deliveries.append(tries[-1])
        if status == 200:
            break
        if attempt < settings.callback_tries:
            await asyncio.sleep(settings.callback_retry_s)
    return tries


async def _post(url: str, sealed: Sealed, timeout_s: float) -> tuple[int, str]:
    query, body = sealed
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, params=query, data=body) as resp,
        ):
            await resp.read()
            return resp.status, ""
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return 0, type(exc).__name__
