"""Fixtures of the new-API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.store.base import Store
from tests.exmail_api.receiver import Receiver, serving


@pytest.fixture
async def rx(store: Store) -> AsyncIterator[Receiver]:
    """A receiver for the `globex` api tenant over the parametrised store."""
    async with serving(store) as running:
        yield running
