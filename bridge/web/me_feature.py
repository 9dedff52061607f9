"""The "my notifications" feature as the app wires it: the /me page (a public face),
the preference gate and settings link of the WeCom sinks of its corp, and one hold
releaser per such sink. Without `[me]` it is inert: no routes, no gate, no tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from bridge.config import Config, WecomSinkConfig
from bridge.delivery.preferences_gate import PreferenceGate
from bridge.delivery.preferences_release import HoldReleaser
from bridge.store.base import Store
from bridge.web.me import MePage
from bridge.web.public import PublicFace

__all__ = ["MeFeature"]


class MeFeature:
    """Built once from the config; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        page: MePage | None,
        corp_id: str = "",
        every_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.page = page
        self._corp_id = corp_id
        self._every_s = every_s
        self._clock = clock
        self.releasers: list[HoldReleaser] = []

    @classmethod
    async def create(cls, *, config: Config, store: Store) -> MeFeature:
        """From `[me]`; inert when the section is absent."""
        if config.me is None:
            return cls(store=store, page=None)
        page = await MePage.create(config=config, store=store)
        corp_id = config.me_sink().corp_id
        return cls(store=store, page=page, corp_id=corp_id, every_s=config.me.release_every_s)

    @property
    def faces(self) -> list[PublicFace]:
        """The page, for the public listener (none when inert)."""
        return [self.page] if self.page is not None else []

    def sink_extras(self, sink_config: object) -> dict[str, Any]:
        """Keyword arguments for building a sink: a WeCom sink of the page's corp gets the
        preference gate and the "通知设置" link; every other sink nothing."""
        if self.page is None or not isinstance(sink_config, WecomSinkConfig):
            return {}
        if sink_config.corp_id != self._corp_id:
            return {}
        gate = PreferenceGate(
            store=self._store, sink=sink_config.name, corp_id=self._corp_id, clock=self._clock
        )
        self.releasers.append(
            HoldReleaser(
                store=self._store, sink=sink_config.name, every_s=self._every_s, clock=self._clock
            )
        )
        return {"gate": gate, "settings_url": self.page.url}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The page's WeCom session and the releasers, for as long as the block runs."""
        if self.page is None:
            yield
            return
        await self.page.start()
        tasks = [
            asyncio.create_task(r.run(), name=f"release[{i}]") for i, r in enumerate(self.releasers)
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.page.aclose()
