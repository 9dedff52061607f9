"""The store's contract for the "my notifications" page: preferences, recent notices,
held mails and single-use sign-in states. Both backends implement it (as mixins) and
pass the same contract tests (`tests/store/test_contract_me.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridge.delivery.preferences import Held, Notice, Preferences
from bridge.events import Event

__all__ = ["NOTICES_KEPT", "PreferenceStore"]

NOTICES_KEPT = 50  # per member; the page shows 20


class PreferenceStore(Protocol):
    """Per-member data of the WeCom sink's people, shared by every replica."""

    async def get_preferences(self, member: str) -> Preferences | None:
        """The member's preferences, None when they never saved any."""

    async def set_preferences(self, member: str, prefs: Preferences) -> None:
        """Replace the member's preferences."""

    async def record_notice(self, member: str, notice: Notice) -> None:
        """Add the notice, or replace the one with its event id; keep the newest
        `NOTICES_KEPT` per member."""

    async def notices(self, member: str, limit: int = 20) -> list[Notice]:
        """The member's newest notices, newest first."""

    async def hold(self, sink: str, member: str, event: Event, held_at: float) -> None:
        """Keep `event` back for `member` until released (holding it twice is one hold)."""

    async def held(self, sink: str, member: str) -> list[Held]:
        """The member's held events for `sink`, oldest first."""

    async def held_members(self, sink: str) -> list[str]:
        """Members with held events for `sink`."""

    async def unhold(self, sink: str, member: str, event_ids: Sequence[str]) -> int:
        """Forget these held events (after their digest was committed); return how many."""

    async def put_once(self, name: str, value: bytes, ttl_s: float) -> None:
        """Store a single-use value that expires after `ttl_s` seconds."""

    async def take_once(self, name: str) -> bytes | None:
        """The value under `name`, removed in the same step; None when absent or expired."""
