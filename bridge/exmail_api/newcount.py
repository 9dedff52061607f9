"""A mailbox's unread count from the new API's `mail/newcount`.

The official docs contradict each other (research/exmail-new-api.md §2.3): working clients
send `GET ?userid=` alone; the parameter table marks `begin_date`/`end_date` required;
another copy shows a POST with a JSON body. We try them in that order and keep, per
tenant, the first one the server accepted; a variant is abandoned only when the server
rejects the request itself (a rejected mailbox is rejected in every variant, so it costs
one extra call and no switch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bridge.config import TenantConfig
from bridge.errors import UpstreamProtocolError, UpstreamRejected
from bridge.exmail_api.directory import ApiCaller
from bridge.logs import get_logger

__all__ = ["ApiNewcount", "parse_count"]

log = get_logger(__name__)
ENDPOINT = "mail/newcount"
# The dated variants count mail in a window; a wide one makes that the unread count.
DATE_WINDOW_DAYS = 3650
Variant = Literal["plain", "dated", "post"]
VARIANTS: tuple[Variant, ...] = ("plain", "dated", "post")


def parse_count(doc: Mapping[str, Any], *, provider: str, endpoint: str) -> int:
    """The `count` of an answer: a non-negative integer (a numeric string is accepted)."""
    raw = doc.get("count")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise UpstreamProtocolError(
            "no usable count", provider=provider, endpoint=endpoint, code="shape"
        )
    return raw


def _window(today: date) -> dict[str, str]:
    begin = today - timedelta(days=DATE_WINDOW_DAYS)
    return {"begin_date": begin.isoformat(), "end_date": (today + timedelta(days=1)).isoformat()}


class ApiNewcount:
    """`CountReader` for one `api` tenant."""

    def __init__(
        self,
        *,
        client: ApiCaller,
        tenant: TenantConfig,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._client = client
        self._tenant = tenant
        self._today = today
        self._variant: Variant = "plain"

    async def unread_count(self, mailbox: str) -> int:
        """The mailbox's unread count; UpstreamRejected when no variant is accepted."""
        first = VARIANTS.index(self._variant)
        *others, last = VARIANTS[first:] + VARIANTS[:first]
        for variant in others:
            try:
                return await self._count(variant, mailbox)
            except UpstreamRejected:
                continue
        return await self._count(last, mailbox)  # its rejection is the caller's

    async def _count(self, variant: Variant, mailbox: str) -> int:
        doc = await self._ask(variant, mailbox)
        self._remember(variant)
        return parse_count(doc, provider="exmail", endpoint=ENDPOINT)

    def _remember(self, variant: Variant) -> None:
        if variant != self._variant:
            log.info("newcount_variant", tenant=self._tenant.name, variant=variant)
            self._variant = variant

    async def _ask(self, variant: Variant, mailbox: str) -> dict[str, Any]:
        if variant == "plain":
            params = {"userid": mailbox}
            return await self._client.call(self._tenant, "GET", ENDPOINT, params=params)
        dated = {"userid": mailbox, **_window(self._today())}
        if variant == "dated":
            return await self._client.call(self._tenant, "GET", ENDPOINT, params=dated)
        body = {**dated, "type": 0}
        return await self._client.call(self._tenant, "POST", ENDPOINT, body=body)
