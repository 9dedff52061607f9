"""The soak's world: Redis, Mosquitto, the Exmail simulator, the receivers and the bridge,
each one a real process or server that a fault can break and mend.

Redis runs with `appendfsync always`, so a SIGKILL loses nothing acknowledged; Mosquitto
keeps sessions on disk, so the MQTT subscriber's queued messages survive its restarts.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import REPO, Child, python, start
from bridge.store.base import Store
from bridge.store.redis import RedisStore
from bridge.store.sqlite import SqliteStore
from tests.e2e.mqtt_watch import MqttWatch
from tests.e2e.process import BridgeProcess, to_toml
from tests.e2e.receiver import WebhookReceiver
from tests.plugins.services import MosquittoServer, RedisServer, free_port, wait_port

__all__ = ["TENANTS", "World"]

TENANTS = {"acme": "admin@acme.com", "beta": "admin@beta.cn", "gamma": "admin@gamma.io"}
HOOK, BUS = "oa", "bus"
SINKS = (HOOK, BUS)
HOOK_TIMEOUT_S = 1.0
# Long enough to outlive any one fault of the soak, short enough to drain within a minute.
RETRY_S = [0, 0.5, 1, 1, 2, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]


@dataclass
class World:
    """Everything the soak runs and breaks; `async with World(...)` starts and stops it."""

    store: str  # "sqlite" or "redis"
    workdir: Path
    run_s: float
    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    sim_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    redis: RedisServer | None = None
    mosquitto: MosquittoServer | None = None
    sim: Child | None = None
    bridge: BridgeProcess | None = None
    receiver: WebhookReceiver | None = None
    watch: MqttWatch | None = None
    http: aiohttp.ClientSession | None = None
    incarnation: int = 0

    async def __aenter__(self) -> World:
        await asyncio.to_thread(self._start_servers)
        self.receiver = WebhookReceiver(secret=self.webhook_secret)
        await self.receiver.start()
        assert self.mosquitto is not None
        self.watch = MqttWatch(port=self.mosquitto.port, topic="soak/+/+/mail")
        await self.watch.start()
        self.http = aiohttp.ClientSession()
        config = self.workdir / "bridge.toml"
        config.write_text(self._config_toml(), encoding="utf-8")
        self.bridge = BridgeProcess(
            config=config,
            http_url=f"http://127.0.0.1:{self.http_port}",
            log_path=self.workdir / "bridge.log",
            cwd=REPO,
        )
        await self.start_bridge()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bridge is not None:
            self.bridge.kill()
        for part in (self.watch, self.receiver):
            if part is not None:
                await part.stop()
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(self._stop_servers)

    # -- servers -----------------------------------------------------------------------------

    def _start_servers(self) -> None:
        if self.store == "redis":
            self.redis = RedisServer(port=free_port(), workdir=self._dir("redis"))
            self.redis.start()
        broker_dir = Path(tempfile.mkdtemp(prefix="soak-mosquitto-"))
        broker_dir.chmod(0o777)  # run as root, mosquitto writes its state as its own user
        self.mosquitto = MosquittoServer(port=free_port(), workdir=broker_dir)
        self.mosquitto.start()
        argv = python("bench.simserver", "--port", str(self.sim_port), "--hold-s", "2")
        self.sim = start("sim", [*argv, "--max-s", str(self.run_s + 600)], self.workdir)
        wait_port(self.sim_port)

    def _stop_servers(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        if self.mosquitto is not None:
            self.mosquitto.stop()
            shutil.rmtree(self.mosquitto.workdir, ignore_errors=True)
        if self.redis is not None:
            self.redis.stop()

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _store_url(self) -> str:
        if self.redis is not None:
            return self.redis.url
        return f"sqlite:///{self.workdir / 'data' / 'bridge.db'}"

    def open_store(self) -> Store:
        """A handle on the bridge's store (to read dead letters)."""
        if self.redis is not None:
            return RedisStore(url=self.redis.url, prefix="soak:", dedupe_window_s=86400)
        return SqliteStore(path=self.workdir / "data" / "bridge.db", dedupe_window_s=86400)

    def _config_toml(self) -> str:
        sim = f"http://127.0.0.1:{self.sim_port}"
        assert self.mosquitto is not None
        assert self.receiver is not None
        doc: dict[str, Any] = {
            "bridge": {
                "store": self._store_url(),
                "redis_prefix": "soak:",
                "http_listen": f"127.0.0.1:{self.http_port}",
                "public_url": f"http://127.0.0.1:{self.http_port}",
                "instance_id": "soak",
                "log_level": "warning",
                "log_format": "json",
                "grace_s": 3.0,
                "startup_window_s": 0.0,
                "lease_ttl_s": 3.0,
                "upstream_rate_per_s": 500.0,
            },
            "exmail": {
                "token_url": f"{sim}/cgi-bin/token",
                "api_base": sim,
                "listen_hold_s": 2.0,
                "timeout_s": 3.0,
                "connect_timeout_s": 2.0,
                "backoff_base_s": 0.05,
                "backoff_cap_s": 1.0,
                "park_s": 2.0,
            },
            "tenants": [
                {"name": name, "client_id": cid, "client_secret": f"soak-key-{name}"}
                for name, cid in TENANTS.items()
            ],
            "sinks": [
                {
                    "name": HOOK,
                    "type": "webhook",
                    "url": self.receiver.url("/hook"),
                    "secret": self.webhook_secret,
                    "timeout_s": HOOK_TIMEOUT_S,
                    "retry_s": RETRY_S,
                    "ordered": True,
                },
                {
                    "name": BUS,
                    "type": "mqtt",
                    "url": self.mosquitto.url,
                    "topic": "soak/{tenant}/{mailbox}/mail",
                    "unread_topic": "soak/{tenant}/{mailbox}/unread",
                    "timeout_s": 2.0,
                    "retry_s": RETRY_S,
                },
            ],
            "routes": [{"events": ["exmail.mail.received"], "sinks": list(SINKS)}],
        }
        return to_toml(doc)

    # -- the bridge --------------------------------------------------------------------------

    async def start_bridge(self, ready_within_s: float = 30.0) -> None:
        """Start the bridge process and wait for /healthz (readiness may lag under faults)."""
        assert self.bridge is not None
        assert self.http is not None
        self.bridge.start()
        self.incarnation += 1
        async with asyncio.timeout(ready_within_s):
            while True:  # polling: a child process has no event to wait on
                if await self._answers("/healthz"):
                    return
                await asyncio.sleep(0.1)

    async def _answers(self, path: str) -> bool:
        assert self.http is not None
        try:
            async with self.http.get(f"http://127.0.0.1:{self.http_port}{path}") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def ready(self) -> bool:
        """Whether /readyz answers 200."""
        return await self._answers("/readyz")

    async def metrics_text(self) -> str:
        """The bridge's /metrics text."""
        assert self.http is not None
        async with self.http.get(f"http://127.0.0.1:{self.http_port}/metrics") as resp:
            return await resp.text()

    def kill_bridge(self) -> None:
        """SIGKILL the bridge (no goodbye)."""
        assert self.bridge is not None
        self.bridge.signal(signal.SIGKILL)
        self.bridge.kill()

    # -- the simulator's control API ---------------------------------------------------------

    async def sim_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the simulator's /_sim/ API; its JSON answer."""
        assert self.http is not None
        url = f"http://127.0.0.1:{self.sim_port}{path}"
        async with self.http.request(method, url, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()
