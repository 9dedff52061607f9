"""The incremental stream decoder and the tolerant shape readers."""

from __future__ import annotations

import orjson
import pytest

from bridge.exmail.decode import Garbage, StreamDecoder, loads_lenient
from bridge.exmail.pushes import Heartbeat, MailPush, UnknownPush, UnreadPush, VersionPush
from bridge.exmail.shapes import ShapeError, as_count, as_version, auth_key_of, push_of

STREAM = (
    b'{"Ver":"1364460338051",}\n'
    b'{"UserName":"bob@gzdev.com","NewCount":"550"}'
    b'{"Subject":"a } and \\" inside","MailId":"m1","UserName":"b"}\r\n'
    b'{"Ret":0}'
)
EXPECTED = [
    {"Ver": "1364460338051"},
    {"UserName": "bob@gzdev.com", "NewCount": "550"},
    {"Subject": 'a } and " inside', "MailId": "m1", "UserName": "b"},
    {"Ret": 0},
]


def feed_in_pieces(data: bytes, size: int) -> list[object]:
    decoder = StreamDecoder()
    out: list[object] = []
    for i in range(0, len(data), size):
        out += decoder.feed(data[i : i + size])
    return out + decoder.close()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_split_anywhere(size: int) -> None:
    """Objects come out whole however the bytes are split into chunks."""
    assert feed_in_pieces(STREAM, size) == EXPECTED


def test_garbage_between_objects() -> None:
    """Non-JSON runs become Garbage items and decoding goes on after them."""
    out = feed_in_pieces(b'oops\n{"Ret":0}<html>{"Ret":0}{"a":tru}\n{"Ret":0}', 5)
    assert out == [Garbage(4), {"Ret": 0}, Garbage(6), {"Ret": 0}, Garbage(9), {"Ret": 0}]


def test_unfinished_object_at_close() -> None:
    """A value cut off by the end of the stream is Garbage, not an exception."""
    decoder = StreamDecoder()
    assert decoder.feed(b'{"Ver":"1"') == []
    assert decoder.close() == [Garbage(10)]


def test_empty_stream() -> None:
    """An empty body decodes to nothing."""
    assert feed_in_pieces(b"", 1) == []
    assert feed_in_pieces(b" \r\n ", 1) == []


def test_many_objects_in_one_chunk() -> None:
    """A large chunk of many objects decodes to all of them."""
    body = b'{"UserName":"a","NewCount":1}\n' * 20_000
    assert len(feed_in_pieces(body, 1 << 20)) == 20_000


def test_trailing_commas_only_outside_strings() -> None:
    """Trailing commas are dropped before } and ], never inside strings."""
    assert loads_lenient(b'{"a":[1,2,],"b":",}",}') == {"a": [1, 2], "b": ",}"}
    with pytest.raises(orjson.JSONDecodeError):
        loads_lenient(b'{"a":,}')


@pytest.mark.parametrize(
    ("obj", "push"),
    [
        ({"Ret": 0}, Heartbeat()),
        ({"Ver": 1364460338051}, VersionPush("1364460338051")),
        ({"Ver": "0013"}, VersionPush("13")),
        ({"UserName": "b", "NewCount": "3"}, UnreadPush("b", 3)),
        ({"UserName": "b", "MailId": "m", "NewCount": 2.0}, MailPush("b", "m", "", "", "", "", 2)),
        ({"UserName": "b", "MailId": "m"}, MailPush("b", "m", "", "", "", "", None)),
        ({"Ver": "12a"}, UnknownPush(("Ver",))),
        ({"UserName": "b", "NewCount": "many"}, UnknownPush(("NewCount", "UserName"))),
        ({"Ret": 1}, UnknownPush(("Ret",))),
        ({"UserName": "", "MailId": "m"}, UnknownPush(("MailId", "UserName"))),
        ({"UserName": "b", "MailId": " "}, UnknownPush(("MailId", "UserName"))),
        ({"UserName": " ", "NewCount": 1}, UnknownPush(("NewCount", "UserName"))),
        ([1, 2], UnknownPush(())),
    ],
)
def test_push_shapes(obj: object, push: object) -> None:
    """Each object shape maps onto its typed push; anything else (no mailbox) is UnknownPush."""
    assert push_of(obj) == push


def test_number_drift_helpers() -> None:
    """Versions become digit strings and counts ints, from strings or numbers."""
    assert as_version(" 42 ") == "42"
    assert as_count("-1") == -1
    for bad in (True, "x", 1.5, None):
        with pytest.raises(ShapeError):
            as_count(bad)
    with pytest.raises(ShapeError):
        as_version(-3)


def test_auth_key_spellings() -> None:
    """The login key is read under auth_key, authkey or AuthKey."""
    for name in ("auth_key", "authkey", "AuthKey"):
        assert auth_key_of({name: "K"}) == "K"
    with pytest.raises(ShapeError):
        auth_key_of({"key": "K"})
