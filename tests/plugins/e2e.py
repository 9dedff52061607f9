"""End-to-end fixtures: the real bridge process against the Exmail simulator, a webhook
receiver that verifies every signature, and a real MQTT broker.

    @BOTH_STORES
    async def test_x(e2e: Harness) -> None:
        bridge = await e2e.start_bridge(e2e.write_config(sinks=[e2e.webhook_sink()]))
        event_id = e2e.mail("bob@acme.com", "你好")
        await e2e.until(lambda: event_id in e2e.receiver.delivered_ids(), "the delivery")

Every bridge started through `Harness.start_bridge` is SIGKILLed at teardown, and the
teardown fails the test if any webhook request did not verify.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge import events
from bridge.simulator.exmail_faults import SimSettings
from tests.e2e.mqtt_watch import MqttWatch
from tests.e2e.process import BridgeProcess, Scrape, to_toml
from tests.e2e.receiver import WebhookReceiver
from tests.plugins.services import MosquittoServer, free_port
from tests.plugins.sim import ExmailSim, ExmailSimFactory
from tests.plugins.store import StoreMaker

__all__ = [
    "BOTH_STORES",
    "CLIENT_ID",
    "GRACE_S",
    "PATIENT_RETRY_S",
    "QUICK_RETRY_S",
    "TENANT",
    "Harness",
]

TENANT = "acme"
CLIENT_ID = "admin@acme.com"
SIM_HOLD_S = 1.0
GRACE_S = 2.0
QUICK_RETRY_S = [0, 0.3, 0.3, 0.3]  # four attempts, then a dead letter
PATIENT_RETRY_S = [0] + [0.5] * 120  # about a minute of retries: outlives any outage here
BOTH_STORES = pytest.mark.parametrize("e2e_store", ["sqlite", "redis"], indirect=True)

Check = Callable[[], bool | Awaitable[bool]]


@dataclass
class Harness:
    """One test's world: simulator, receiver, store location, and the bridges started."""

    tmp: Path
    sim: ExmailSim
    store: StoreMaker
    receiver: WebhookReceiver
    http: aiohttp.ClientSession
    client_secret: str
    webhook_secret: str
    http_port: int = field(default_factory=free_port)
    bridges: list[BridgeProcess] = field(default_factory=list)
    mails: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (to, subject)

    @property
    def public_url(self) -> str:
        """The bridge's HTTP base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def bridge(self) -> BridgeProcess:
        """The bridge started last."""
        return self.bridges[-1]

    # -- configuration ---------------------------------------------------------------------

    def webhook_sink(self, name: str = "oa", **overrides: Any) -> dict[str, Any]:
        """A webhook sink posting to `/hooks/<name>` on the receiver."""
        return {
            "name": name,
            "type": "webhook",
            "url": self.receiver.url(f"/hooks/{name}"),
            "secret": self.webhook_secret,
            "retry_s": QUICK_RETRY_S,
            "timeout_s": 2,
            **overrides,
        }

    @staticmethod
    def mqtt_sink(broker: MosquittoServer, name: str = "bus", **overrides: Any) -> dict[str, Any]:
        """An MQTT 5 sink on `broker`."""
        return {
            "name": name,
            "type": "mqtt",
            "url": broker.url,
            "protocol": "5",
            "retry_s": PATIENT_RETRY_S,
            "timeout_s": 2,
            **overrides,
        }

    def _store_settings(self) -> dict[str, Any]:
        if self.store.redis_server is None:
            return {"store": f"sqlite:///{self.store.path}"}
        return {"store": self.store.redis_server.url, "redis_prefix": self.store.prefix}

    def write_config(
        self,
        *,
        sinks: Sequence[dict[str, Any]],
        routes: Sequence[dict[str, Any]] = (),
        bridge: dict[str, Any] | None = None,
        exmail: dict[str, Any] | None = None,
        tenants: Sequence[dict[str, Any]] = (),
    ) -> Path:
        """Write a config file for the bridge into the test's tmp dir; its path.

        `tenants` are added after the legacy tenant `acme`."""
        doc: dict[str, Any] = {
            "bridge": {
                **self._store_settings(),
                "http_listen": f"127.0.0.1:{self.http_port}",
                "public_url": self.public_url,
                "instance_id": "e2e",
                "log_format": "json",
                "grace_s": GRACE_S,
                "startup_window_s": 0,
                **(bridge or {}),
            },
            "exmail": {
                "token_url": f"{self.sim.url}/cgi-bin/token",
                "api_base": self.sim.url,
                "listen_hold_s": SIM_HOLD_S,
                "timeout_s": 2,
                "connect_timeout_s": 1,
                "backoff_base_s": 0.05,
                "backoff_cap_s": 0.3,
                **(exmail or {}),
            },
            "tenants": [
                {"name": TENANT, "client_id": CLIENT_ID, "client_secret": self.client_secret},
                *tenants,
            ],
            "sinks": list(sinks),
        }
        if routes:
            doc["routes"] = list(routes)
        path = self.tmp / "bridge.toml"
        path.write_text(to_toml(doc), encoding="utf-8")
        return path

    # -- the bridge --------------------------------------------------------------------------

    async def start_bridge(self, config: Path) -> BridgeProcess:
        """Start `exmail-bridge run -c config` and wait until /readyz says 200."""
        bridge = BridgeProcess(
            config=config,
            http_url=self.public_url,
            log_path=self.tmp / f"bridge-{len(self.bridges) + 1}.log",
            cwd=self.tmp,
        )
        self.bridges.append(bridge)
        bridge.start()
        await bridge.wait_ready(self.http)
        return bridge

    def logs(self) -> str:
        """Everything every bridge of this test wrote."""
        return "".join(b.log_text() for b in self.bridges)

    async def scrape(self) -> Scrape:
        """The running bridge's /metrics."""
        return await self.bridge.scrape(self.http)

    async def metric(self, name: str, **labels: str) -> float:
        """One metric's value on the running bridge (summed over other labels)."""
        return (await self.scrape()).value(name, **labels)

    def metric_reaches(self, name: str, target: float, **labels: str) -> Check:
        """A check: the metric is at least `target`."""

        async def check() -> bool:
            return await self.metric(name, **labels) >= target

        return check

    # -- mail and waiting --------------------------------------------------------------------

    def mail(
        self,
        to: str,
        subject: str = "",
        *,
        sender: str = '"Test"<test@gzdev.com>',
        summary: str = "",
    ) -> str:
        """Inject a mail at the simulator; the id its event must carry."""
        mail_id = self.sim.state.send_mail(
            CLIENT_ID, to=to, sender=sender, subject=subject, summary=summary
        )
        event_id = events.event_id(TENANT, "mail", mail_id)
        self.mails[event_id] = (to, subject)
        return event_id

    async def until(self, check: Check, what: str, timeout_s: float = 30.0) -> None:
        """Poll `check` until true; fail naming `what`, with the bridge's log tail."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                tail = self.bridge.log_text()[-4000:] if self.bridges else ""
                raise AssertionError(f"timed out waiting for {what}; bridge log tail:\n{tail}")
            await asyncio.sleep(0.05)


@pytest.fixture
def e2e_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreMaker:
    """Where the bridge keeps its data: SQLite by default, Redis when parametrized so."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return StoreMaker(backend="sqlite", path=tmp_path / "data" / "bridge.db")
    maker: StoreMaker = request.getfixturevalue("redis_store_maker")
    return maker


def _webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture
async def e2e(
    tmp_path: Path, e2e_store: StoreMaker, exmail_sim_factory: ExmailSimFactory
) -> AsyncIterator[Harness]:
    """The simulator (fixed credential, 1 s hold), a running receiver, and a bridge slot."""
    client_secret = f"e2e-exmail-key-{secrets.token_hex(8)}"
    sim = await exmail_sim_factory(
        credentials={CLIENT_ID: client_secret}, settings=SimSettings(hold_s=SIM_HOLD_S)
    )
    webhook_secret = _webhook_secret()
    receiver = WebhookReceiver(secret=webhook_secret)
    await receiver.start()
    async with aiohttp.ClientSession() as http:
        harness = Harness(
            tmp=tmp_path,
            sim=sim,
            store=e2e_store,
            receiver=receiver,
            http=http,
            client_secret=client_secret,
            webhook_secret=webhook_secret,
        )
        try:
            yield harness
        finally:
            for bridge in harness.bridges:
                bridge.kill()
            await receiver.stop()
    assert receiver.unverified == 0, "a webhook request failed signature verification"


@pytest.fixture
def own_mosquitto() -> Iterator[MosquittoServer]:
    """A private broker whose persistence works even when the tests run as root.

    Started as root, mosquitto drops to its own user and then cannot write its database
    into a root-only directory, so sessions and queued messages do not survive a restart.
    """
    workdir = Path(tempfile.mkdtemp(prefix="e2e-mosquitto-"))
    workdir.chmod(0o777)  # a throwaway dir the broker's own user must write
    server = MosquittoServer(port=free_port(), workdir=workdir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def mqtt_watch(mosquitto_server: MosquittoServer) -> AsyncIterator[MqttWatch]:
    """An MQTT 5 subscriber to `exmail/+/+/mail` with a session that outlives restarts."""
    watch = MqttWatch(port=mosquitto_server.port)
    await watch.start()
    yield watch
    await watch.stop()
