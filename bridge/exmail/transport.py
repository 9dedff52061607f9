"""Bounded HTTP exchanges with Exmail: one POST, a size-capped body, errors judged once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from bridge.errors import UpstreamProtocolError
from bridge.exmail.decode import loads_lenient
from bridge.exmail.seam import (
    error_for_body,
    error_for_status,
    is_error_body,
    protocol_error,
    translated,
)

__all__ = ["Exchange", "judge"]

_CHUNK_BYTES = 64 * 1024
_NOT_JSON = object()
_FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


class Exchange:
    """POSTs form bodies with bounded time and size; aiohttp errors come out translated."""

    def __init__(
        self, *, session: aiohttp.ClientSession, connect_s: float, max_body_bytes: int
    ) -> None:
        self._session = session
        self._connect_s = connect_s
        self.max_body_bytes = max_body_bytes
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}  # by read_s: two in use

    async def post_json(
        self,
        endpoint: str,
        url: str | URL,
        form: Mapping[str, str],
        *,
        headers: Mapping[str, str],
        read_s: float,
        max_bytes: int | None = None,
    ) -> Any:
        """POST `form`, read at most `max_bytes` (default `max_body_bytes`), judge the JSON."""
        cap = max_bytes or self.max_body_bytes
        async with translated(endpoint):
            resp = await self.send(endpoint, url, form, headers, read_s, cap=cap)
            async with resp:
                async with asyncio.timeout(read_s + self._connect_s):
                    body = await self.read_capped(endpoint, resp, cap)
                return judge(endpoint, resp.status, resp.headers.get("Retry-After"), body)

    async def send(
        self,
        endpoint: str,
        url: str | URL,
        form: Mapping[str, str],
        headers: Mapping[str, str],
        read_s: float,
        *,
        cap: int | None = None,
        cap_declared: bool = True,
    ) -> aiohttp.ClientResponse:
        """The response to a POST, its headers read; call inside `translated(endpoint)`
        and release it with `async with resp`. Reading its body is bounded by the
        session's `sock_read` (`read_s`): every read, also the held listen's.

        A declared length over `cap` is refused at once, unless `cap_declared` is false
        (a held listen may carry many pushes; its cap applies to each one).
        """
        # The form is encoded here, not by aiohttp's FormData (a multipart writer and a
        # payload lookup per request), and the timeout is built once per read_s: every
        # reconnect of a 10,000-tenant storm comes this way.
        body = urlencode(form).encode()
        async with asyncio.timeout(self._connect_s + read_s):
            resp = await self._session.post(
                url, data=body, headers={**headers, **_FORM_TYPE}, timeout=self._timeout(read_s)
            )
        if cap_declared:
            try:
                self.check_length(endpoint, resp, cap or self.max_body_bytes)
            except UpstreamProtocolError:
                resp.release()
                raise
        return resp

    def _timeout(self, read_s: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(read_s)
        if timeout is None:
            timeout = self._timeouts[read_s] = aiohttp.ClientTimeout(
                total=None, connect=self._connect_s, sock_connect=self._connect_s, sock_read=read_s
            )
        return timeout

    def check_length(self, endpoint: str, resp: aiohttp.ClientResponse, cap: int) -> None:
        """Refuse at once a body whose declared length is over the cap."""
        if resp.content_length is not None and resp.content_length > cap:
            raise protocol_error(endpoint, "oversized")

    async def read_capped(
        self, endpoint: str, resp: aiohttp.ClientResponse, cap: int | None = None
    ) -> bytes:
        """The whole body, counting bytes as they arrive; over the cap is an error."""
        limit = cap or self.max_body_bytes
        parts: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise protocol_error(endpoint, "oversized")
            parts.append(chunk)
        return b"".join(parts)


def judge(endpoint: str, status: int, retry_after: str | None, body: bytes) -> Any:
    """The JSON value of an answer, or the bridge error it stands for."""
    obj = _loads(body)
    if status == 429:  # its Retry-After matters more than whatever the body says
        raise error_for_status(endpoint, status, retry_after)
    if is_error_body(obj):
        raise error_for_body(endpoint, obj)
    if status != 200:
        raise error_for_status(endpoint, status, retry_after)
    if obj is _NOT_JSON or obj is None:
        raise protocol_error(endpoint, "json")
    return obj


def _loads(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return loads_lenient(body)
    except ValueError:
        return _NOT_JSON
