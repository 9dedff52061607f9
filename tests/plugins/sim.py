"""The Exmail simulator as a real aiohttp server on a free port, per test.

    async def test_x(exmail_sim: ExmailSim) -> None:
        exmail_sim.state.send_mail("admin@acme.com", to="bob@acme.com", sender="a@b.c")
        client = ExmailClient(session=..., settings=exmail_sim.exmail_settings())

`exmail_sim` serves with a short hold (0.5 s) and accepts any credential;
`exmail_sim_factory(credentials=..., settings=...)` starts others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bridge.config import ExmailSection, TenantConfig
from bridge.simulator.exmail import STATE, make_exmail_app, site_port, start_site
from bridge.simulator.exmail_faults import SimSettings
from bridge.simulator.exmail_state import ExmailSimState

__all__ = ["ExmailSim", "ExmailSimFactory"]

TEST_HOLD_S = 0.5


@dataclass
class ExmailSim:
    """A running simulator: `url`, its `state`, and config helpers pointing at it."""

    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def state(self) -> ExmailSimState:
        """The simulator's state, to drive it from Python."""
        return self.app[STATE]

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return site_port(self.runner)

    def exmail_settings(self, **overrides: Any) -> ExmailSection:
        """An `[exmail]` section aimed at this simulator, with test-sized timeouts."""
        values: dict[str, Any] = {
            "token_url": f"{self.url}/cgi-bin/token",
            "api_base": self.url,
            "listen_hold_s": self.state.settings.hold_s,
            "timeout_s": 1.0,
            "connect_timeout_s": 1.0,
            "backoff_base_s": 0.01,
            "backoff_cap_s": 0.05,
            "min_poll_interval_s": 0.1,  # below the test hold, so a held poll is not hollow
        }
        values.update(overrides)
        return ExmailSection.model_validate(values)

    @staticmethod
    def tenant_config(
        name: str = "acme",
        client_id: str = "admin@acme.com",
        secret: str = "s3cret",  # noqa: S107  (a fake)
    ) -> TenantConfig:
        """A `[[tenants]]` entry."""
        return TenantConfig(name=name, client_id=client_id, client_secret=SecretStr(secret))


ExmailSimFactory = Callable[..., Awaitable[ExmailSim]]


async def start_exmail_sim(
    *,
    credentials: Mapping[str, str] | None = None,
    settings: SimSettings | None = None,
) -> ExmailSim:
    """Start a simulator on a free port (stop it with `await sim.runner.cleanup()`)."""
    app = make_exmail_app(
        credentials=credentials, settings=settings or SimSettings(hold_s=TEST_HOLD_S)
    )
    runner = await start_site(app, host="127.0.0.1", port=0)
    return ExmailSim(url=f"http://127.0.0.1:{site_port(runner)}", app=app, runner=runner)


@pytest.fixture
async def exmail_sim_factory() -> AsyncIterator[ExmailSimFactory]:
    """Start simulators with given credentials/settings; all are stopped after the test."""
    started: list[ExmailSim] = []

    async def factory(**kwargs: Any) -> ExmailSim:
        sim = await start_exmail_sim(**kwargs)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.runner.cleanup()


@pytest.fixture
async def exmail_sim(exmail_sim_factory: ExmailSimFactory) -> ExmailSim:
    """A simulator that accepts any credential and holds listens for 0.5 s."""
    return await exmail_sim_factory()
