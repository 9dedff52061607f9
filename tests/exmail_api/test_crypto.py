"""WXBizMsgCrypt on `cryptography`: Tencent's official vectors and wechatpy both ways."""

from __future__ import annotations

import base64
import struct

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatException

from bridge.errors import CallbackRefused
from bridge.exmail_api.crypto import CallbackCrypto, signature

# Tencent's samples (the WeCom callback sample's Sample.py; the first set also appears in
# wechatpy's and the `wechat-crypto` crate's docs). Data, not code.
V1 = {
    "token": "QDG6eK",
    "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "receive_id": "wx5823bf96d3bd56c7",
}
V1_GET = (
    "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "1409659589",
    "263014780",
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
    b"1616140317555161061",
)
V2 = {
    "token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
    "aes_key": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
    "receive_id": "ww1436e0e65a779aee",
}
V2_GET = (
    "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "1476416373",
    "47744683",
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    b"1288432023552776189",
)
V2_POST = (
    "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    "1476422779",
    "1597212914",
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTk"
    "AgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJP"
    "QbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7Mhm"
    "EbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/"
    "oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+",
)
UNREAD = (
    "<xml><CorpID><![CDATA[ww878809d01b17fb5e]]></CorpID><MsgType><![CDATA[UnRead]]></MsgType>"
    "<UserID><![CDATA[xielingqiao@o2oa.net]]></UserID><Time>1610007514</Time>"
    "<UnReadCount>10</UnReadCount></xml>"
)


@pytest.mark.parametrize(("vector", "request_"), [(V1, V1_GET), (V2, V2_GET)], ids=["v1", "v2"])
def test_official_url_check_vectors(
    vector: dict[str, str], request_: tuple[str, str, str, str, bytes]
) -> None:
    """Tencent's URL-check vectors verify and decrypt to the published echo strings."""
    sig, timestamp, nonce, echostr, plain = request_
    crypto = CallbackCrypto(**vector)
    crypto.verify(sig, timestamp, nonce, echostr)
    assert crypto.decrypt(echostr) == plain


def test_official_message_vector() -> None:
    """Tencent's POST vector verifies and decrypts to the published 你好 message."""
    sig, timestamp, nonce, encrypt = V2_POST
    crypto = CallbackCrypto(**V2)
    crypto.verify(sig, timestamp, nonce, encrypt)
    message = crypto.decrypt(encrypt).decode()
    assert "<Content>你好</Content>" in message
    assert message.startswith("<xml><ToUserName>ww1436e0e65a779aee</ToUserName>")


def test_ours_to_wechatpy() -> None:
    """An Exmail-shaped envelope we encrypt and sign is accepted by wechatpy."""
    ours = CallbackCrypto(**V2)
    encrypt = ours.encrypt(UNREAD.encode())
    envelope = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    theirs = WeChatCrypto(V2["token"], V2["aes_key"], V2["receive_id"])
    sig = ours.sign("1610007514", "42", encrypt)
    assert theirs.decrypt_message(envelope, sig, "1610007514", "42") == UNREAD


def test_wechatpy_to_ours() -> None:
    """A message wechatpy encrypts and signs verifies and decrypts here."""
    theirs = WeChatCrypto(V1["token"], V1["aes_key"], V1["receive_id"])
    envelope = theirs.encrypt_message(UNREAD, "777", "1610007514")
    encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    sig = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    ours = CallbackCrypto(**V1)
    ours.verify(sig, "1610007514", "777", encrypt)
    assert ours.decrypt(encrypt).decode() == UNREAD


def test_wechatpy_rejects_our_forgery_as_we_do() -> None:
    """A tampered signature is refused by both implementations."""
    ours = CallbackCrypto(**V2)
    encrypt = ours.encrypt(b"<xml/>")
    bad = signature("wrong-token", "1", "2", encrypt)
    with pytest.raises(CallbackRefused) as info:
        ours.verify(bad, "1", "2", encrypt)
    assert info.value.reason == "signature"
    theirs = WeChatCrypto(V2["token"], V2["aes_key"], V2["receive_id"])
    with pytest.raises(WeChatException):
        theirs.decrypt_message(f"<xml><Encrypt>{encrypt}</Encrypt></xml>", bad, "1", "2")


@pytest.mark.parametrize(
    "sig", ["", "0" * 40, "é" * 40, "5C45FF5E21C57E6AD56BAC8758B79B1D9AC89FD3"]
)
def test_bad_or_missing_signature_is_refused(sig: str) -> None:
    """Missing, wrong, non-ASCII or differently cased signatures are refused, not crashed."""
    _, timestamp, nonce, echostr, _ = V1_GET
    with pytest.raises(CallbackRefused) as info:
        CallbackCrypto(**V1).verify(sig, timestamp, nonce, echostr)
    assert info.value.reason == "signature"


def test_another_corps_message_is_refused() -> None:
    """A message encrypted for another CorpID under the same key is refused as `corp`."""
    other = CallbackCrypto(**{**V1, "receive_id": "wwOTHERCORP"})
    with pytest.raises(CallbackRefused) as info:
        CallbackCrypto(**V1).decrypt(other.encrypt(b"<xml/>"))
    assert info.value.reason == "corp"


def _raw_cipher(crypto: CallbackCrypto, plain: bytes) -> str:
    """Encrypt `plain` as is (no framing, no padding) with the crypto's key."""
    return base64.b64encode(crypto._cipher_op(plain, decrypt=False)).decode()


@pytest.mark.parametrize(
    "case",
    ["not base64!", "", "QUJD", "bad-padding", "length-too-large", "too-short"],
)
def test_garbage_is_malformed_not_a_crash(case: str) -> None:
    """Undecodable text, bad padding and a hostile length field are `malformed`."""
    crypto = CallbackCrypto(**V1)
    text = {
        "bad-padding": _raw_cipher(crypto, b"\x00" * 32),
        "length-too-large": _raw_cipher(
            crypto, b"r" * 16 + struct.pack(">I", 2**31) + b"x" * 11 + b"\x01"
        ),
        "too-short": _raw_cipher(crypto, b"r" * 15 + b"\x11" * 17),
    }.get(case, case)
    with pytest.raises(CallbackRefused) as info:
        crypto.decrypt(text)
    assert info.value.reason == "malformed"


def test_repr_hides_token_and_key() -> None:
    """Neither the token nor the AES key appears in the object's repr."""
    text = repr(CallbackCrypto(**V1))
    assert V1["token"] not in text
    assert V1["aes_key"] not in text
