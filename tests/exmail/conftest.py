"""An ExmailClient aimed at the per-test simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.config import TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from tests.plugins.sim import ExmailSim


@pytest.fixture
async def session(exmail_sim: ExmailSim) -> AsyncIterator[aiohttp.ClientSession]:
    """A pooled session configured for the simulator."""
    async with make_session(exmail_sim.exmail_settings(), max_connections=4) as http:
        yield http


@pytest.fixture
def client(exmail_sim: ExmailSim, session: aiohttp.ClientSession) -> ExmailClient:
    """A client of the simulator with test-sized timeouts."""
    return ExmailClient(session=session, settings=exmail_sim.exmail_settings())


@pytest.fixture
def tenant(exmail_sim: ExmailSim) -> TenantConfig:
    """The `acme` tenant (client_id admin@acme.com)."""
    return exmail_sim.tenant_config()
