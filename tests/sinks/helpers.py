"""Test helpers for sinks: an MQTT subscriber and a TCP proxy that can misbehave for real."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiomqtt

from bridge.events import Event, mail_received

__all__ = ["Subscriber", "TcpProxy", "mail_event", "subscriber"]

# A v5 CONNACK refusing the connection with reason 0x84, "Unsupported Protocol Version".
_REFUSE_V5 = bytes([0x20, 0x03, 0x00, 0x84, 0x00])


def mail_event(mailbox: str = "bob@acme.com", mail_id: str = "m1", unread: int | None = 5) -> Event:
    """An `exmail.mail.received` event for tenant `acme`."""
    return mail_received(
        tenant="acme",
        mailbox=mailbox,
        mail_id=mail_id,
        sender='"Test"<test@gzdev.com>',
        to=mailbox,
        subject="TestMail",
        summary="TestMailContent",
        unread_count=unread,
    )


class Subscriber:
    """An MQTT 5 client subscribed to some topics; `next()` returns the next message."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client

    async def next(self, timeout_s: float = 5.0) -> aiomqtt.Message:
        """The next message, or TimeoutError."""
        async with asyncio.timeout(timeout_s):
            return await anext(self.client.messages)

    async def until(
        self, predicate: Callable[[aiomqtt.Message], bool], timeout_s: float = 5.0
    ) -> aiomqtt.Message:
        """The first message matching `predicate`, skipping others."""
        async with asyncio.timeout(timeout_s):
            while True:
                message = await anext(self.client.messages)
                if predicate(message):
                    return message


@asynccontextmanager
async def subscriber(port: int, *topics: str) -> AsyncIterator[Subscriber]:
    """Connect an MQTT 5 subscriber to 127.0.0.1:`port`, subscribed to `topics` at QoS 1."""
    client = aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5)
    async with client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield Subscriber(client)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to a target port; can drop, freeze or refuse MQTT 5."""

    def __init__(self, target_port: int, *, refuse_v5: bool = False) -> None:
        self.target_port = target_port
        self.refuse_v5 = refuse_v5
        self.port = 0
        self.frozen = False
        self.v5_refusals = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop(self) -> None:
        """Abort every connection at once, as a dead network would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def aclose(self) -> None:
        """Stop listening and abort every connection."""
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        header, body = await _read_packet(reader)
        # CONNECT's body starts with the protocol name (b"\x00\x04MQTT") then the level.
        if self.refuse_v5 and body[6:7] == b"\x05":
            self.v5_refusals += 1
            writer.write(_REFUSE_V5)
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.append(up_writer)
        up_writer.write(header + body)
        self._pipe(reader, up_writer, lambda: False)
        self._pipe(up_reader, writer, lambda: self.frozen)

    def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: Callable[[], bool]
    ) -> None:
        task = asyncio.create_task(_copy(src, dst, frozen), name="tcpproxy.pipe")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _copy(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: Callable[[], bool]
) -> None:
    with contextlib.suppress(OSError):
        while chunk := await src.read(65536):
            if not frozen():
                dst.write(chunk)
                await dst.drain()
    dst.transport.abort()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One whole MQTT packet: (fixed header with its length varint, body)."""
    head = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return head + raw, await reader.readexactly(length)
