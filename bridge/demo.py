"""`exmail-bridge demo`: simulators, receivers and the bridge in one process.

Starts the Exmail and WeCom simulators where `config.toml` points, a webhook receiver that
verifies every signature, an MQTT subscriber when a broker answers, and the bridge on the
config's store; injects a handful of mails and prints every delivery as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
import aiomqtt
import orjson
from aiohttp import web

from bridge import logs
from bridge.app import serve
from bridge.config import Config, MqttSinkConfig, WebhookSinkConfig, WecomSinkConfig, load_config
from bridge.config_env import ENV_CONFIG
from bridge.demo_api import API_MAILS, api_tenant, register_corp, send_api_mails
from bridge.demo_me import sign_in_demo
from bridge.simulator.exmail import STATE, make_exmail_app, start_site
from bridge.simulator.exmail_faults import SimSettings
from bridge.simulator.exmail_state import ExmailSimState
from bridge.simulator.wecom import make_wecom_app
from bridge.simulator.wecom_state import WecomState
from sinks.signing import verify

__all__ = ["demo"]

MAILS = [
    (
        "bob@acme.com",
        '"张伟"<zhang.wei@partner.cn>',
        "季度报表已上传",
        "请在周五前审阅附件中的报表。",
    ),
    ("bob@acme.com", '"Alice Chen"<alice@acme.com>', "Lunch at 12:30?", "The usual place."),
    ("alice@acme.com", "ops@acme.com", "【告警】生产线 3 号机温度过高", "当前 86°C，阈值 80°C。"),
    ("boss@acme.com", '"HR"<hr@acme.com>', "Offer letter: 王芳", "Please sign by Monday."),
    ("bob@acme.com", '"李娜"<li.na@supplier.com.cn>', "发货通知 #A-1024", "预计明天到达。"),
]
EMBEDDED = "demo_config.toml"  # a copy of the repository's config.toml, kept equal by a test
EMBEDDED_STORE = "sqlite:///./data/bridge.db"
SENT_AT: dict[str, float] = {}  # subject -> when it was injected (monotonic)
CARD_LINKS: list[str] = []  # the "open this mail" links of the WeCom cards seen


def _say(sink: str, mailbox: str, subject: str) -> None:
    started = SENT_AT.get(subject)
    took = f"{(time.monotonic() - started) * 1000:6.1f} ms" if started else "      -  "
    print(f"  {sink:<8} {took}  {mailbox:<16} {subject}", flush=True)


def _port(url: str) -> int:
    return urlsplit(url).port or 80


@contextlib.asynccontextmanager
async def _site(app: web.Application, port: int) -> AsyncIterator[None]:
    runner = await start_site(app, host="127.0.0.1", port=port)
    try:
        yield
    finally:
        await runner.cleanup()


def _receiver(sink: WebhookSinkConfig) -> web.Application:
    secrets = [s.get_secret_value() for s in sink.secret]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(secrets, request.headers, body):
            print("  webhook  BAD SIGNATURE", flush=True)
            return web.Response(status=400)
        doc = orjson.loads(body)
        _say("webhook", doc.get("subject", ""), doc["data"].get("subject", doc["type"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(urlsplit(sink.url).path or "/", hook)
    return app


async def _mqtt_watch(sink: MqttSinkConfig, ready: asyncio.Event) -> None:
    parts = urlsplit(sink.url)
    try:
        async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
            await client.subscribe(sink.topic.format(tenant="+", mailbox="+"), qos=1)
            print(f"  (MQTT subscriber on {parts.netloc})", flush=True)
            ready.set()
            async for message in client.messages:
                doc = orjson.loads(bytes(message.payload))
                mailbox = unquote(str(message.topic).split("/")[-2])
                _say("mqtt", mailbox, doc["data"].get("subject", ""))
    except aiomqtt.MqttError:
        print(f"  (no MQTT broker on {parts.netloc}: MQTT deliveries stay in the outbox)")
        ready.set()


async def _wecom_watch(state: WecomState) -> None:
    seen = 0
    while True:
        sent = [(m.at, user, m) for user, msgs in state.received.items() for m in msgs]
        for _, user, message in sorted(sent, key=lambda item: item[0])[seen:]:
            title = str(message.body.get("title", ""))
            subject = next((s for s in SENT_AT if s in title), title)
            _say("wecom", user, subject)
            card = html.unescape(re.sub(r"<[^>]+>", " ", str(message.body.get("description"))))
            print(f"           card: {title} — {' '.join(card.split())[:70]}", flush=True)
            CARD_LINKS.append(str(message.body.get("url", "")))
        seen = len(sent)
        await asyncio.sleep(0.05)


def _shown(path: str) -> str:
    """A path as printed: a click link's token is a credential, so only its start."""
    head, sep, token = path.partition("/open/")
    return f"{head}{sep}{token[:8]}…" if sep else path


async def _click_first_card() -> None:
    """Open the first card's link as its owner would: WeCom sign-in, then Exmail's login."""
    if not CARD_LINKS:
        return
    hops: list[str] = []
    async with aiohttp.ClientSession() as session, session.get(CARD_LINKS[0]) as page:
        hops = [_shown(urlsplit(str(r.url)).path) for r in page.history]
        text = re.sub(r"<[^>]+>", " ", await page.text())
    via = " → ".join(hops) or "-"
    print(f"\nclicking the first card's button: {via} → Exmail SSO login", flush=True)
    print(f"  Exmail login page ({page.status}): {' '.join(text.split())[:80]}")


def _announce(mailbox: str, subject: str) -> None:
    print(f"→ mail to {mailbox}: {subject}", flush=True)


async def _inject(config: Config, sim_state: ExmailSimState) -> None:
    legacy = next(t for t in config.tenants if t.protocol == "legacy")
    for mailbox in {m[0] for m in MAILS} | set(legacy.watch):
        sim_state.add_user(legacy.client_id, mailbox)
    for mailbox, sender, subject, summary in MAILS:
        SENT_AT[subject] = time.monotonic()
        _announce(mailbox, subject)
        sim_state.send_mail(
            legacy.client_id, to=mailbox, sender=sender, subject=subject, summary=summary
        )
        await asyncio.sleep(0.7)
    api = api_tenant(config)
    if api is not None:
        how = "callbacks" if api.callback_token is not None else "polling"
        print(f"\n{api.name}: a tenant of the new API ({how}), next to the legacy one", flush=True)
        await send_api_mails(config.exmail.api_url, api, SENT_AT, _announce)


async def _wait_ready(url: str, bridge: asyncio.Task[None], listening: asyncio.Event) -> None:
    """Until /readyz answers 200; the bridge's own error if it stopped (a port in use)."""
    # Another process may answer on the port this bridge could not bind: ask only once the
    # bridge holds its ports, or raise its error.
    bound = asyncio.create_task(listening.wait(), name="demo-bound")
    await asyncio.wait({bridge, bound}, return_when=asyncio.FIRST_COMPLETED)
    bound.cancel()
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            if bridge.done():
                await bridge
                return
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)


def _wecom_state(config: Config) -> WecomState | None:
    wecom = next((s for s in config.sinks if isinstance(s, WecomSinkConfig)), None)
    if wecom is None:
        return None
    state = WecomState(
        corp_id=wecom.corp_id,
        corp_secret=wecom.corp_secret.get_secret_value(),
        agent_id=wecom.agent_id,
    )
    for mailbox in [m[0] for m in MAILS] + [m[0] for m in API_MAILS]:
        state.add_member(mailbox.split("@")[0], email=mailbox)
    state.current_user = MAILS[0][0].split("@")[0]  # who is signed in to WeCom: the card's owner
    return state


async def _demo(config: Config, duration_s: float) -> None:
    stop = asyncio.Event()
    # --duration counts from the start: set-up and injection are part of it.
    deadline = asyncio.get_running_loop().time() + duration_s if duration_s else None
    exmail_app = make_exmail_app(settings=SimSettings(hold_s=30))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(_site(exmail_app, _port(config.exmail.api_base)))
        tasks, watching = await _receivers(stack, config)
        api = api_tenant(config)
        if api is not None:
            await register_corp(config.exmail.api_url, api, config.bridge.public_url)
        listening = asyncio.Event()
        bridge = asyncio.create_task(serve(config, stop, listening), name="bridge")
        try:
            async with asyncio.timeout_at(deadline):
                await _show(
                    config, exmail_app[STATE], (bridge, listening), watching, stop, deadline
                )
        except TimeoutError:
            pass
        stop.set()
        await bridge
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print("demo stopped", flush=True)


async def _receivers(
    stack: contextlib.AsyncExitStack, config: Config
) -> tuple[list[asyncio.Task[None]], asyncio.Event]:
    """Start what receives each sink's deliveries; the watchers' tasks and a ready flag."""
    wecom_state = _wecom_state(config)
    tasks: list[asyncio.Task[None]] = []
    watching = asyncio.Event()
    watching.set()
    for sink in config.sinks:
        if isinstance(sink, WebhookSinkConfig):
            await stack.enter_async_context(_site(_receiver(sink), _port(sink.url)))
        elif isinstance(sink, MqttSinkConfig):
            watching.clear()
            tasks.append(asyncio.create_task(_mqtt_watch(sink, watching), name="demo-mqtt"))
        elif wecom_state is not None:
            app = make_wecom_app(wecom_state)
            await stack.enter_async_context(_site(app, _port(sink.api_base)))
            tasks.append(asyncio.create_task(_wecom_watch(wecom_state), name="demo-wecom"))
    return tasks, watching


async def _show(
    config: Config,
    sim: ExmailSimState,
    bridge: tuple[asyncio.Task[None], asyncio.Event],
    watching: asyncio.Event,
    stop: asyncio.Event,
    deadline: float | None,
) -> None:
    ops = f"http://{config.bridge.http_listen}"  # /readyz and /metrics are never public
    await _wait_ready(ops, *bridge)
    await asyncio.wait_for(watching.wait(), 15)
    print(f"bridge ready; metrics at {ops}/metrics\n", flush=True)
    await _inject(config, sim)
    await asyncio.sleep(0.5)
    try:
        await _click_first_card()
        if config.me is not None:
            await sign_in_demo(f"{config.bridge.public_url}/me")
    except (aiohttp.ClientError, TimeoutError) as exc:  # e.g. public_url not this bridge
        print(f"  could not follow {config.bridge.public_url}: {exc!r}"[:200], flush=True)
    until = "Ctrl-C to stop" if deadline is None else "stopping when --duration is up"
    print(f"\nall mails injected; {until}", flush=True)
    await stop.wait()


def embedded_config(folder: Path) -> Path:
    """The embedded demo config written into `folder`, its SQLite store inside `folder`
    too (absolute, so no ./data of the working folder is ever opened)."""
    text = resources.files("bridge").joinpath(EMBEDDED).read_text(encoding="utf-8")
    store = f"sqlite:///{(folder / 'data' / 'bridge.db').resolve()}"
    target = folder / "config.toml"
    target.write_text(text.replace(f'"{EMBEDDED_STORE}"', f'"{store}"'), encoding="utf-8")
    return target


def demo(config_path: str | None, duration_s: float = 0.0) -> int:
    """Run the demo until Ctrl-C (or for `duration_s` seconds when > 0); on the embedded
    demo config, with its store in a temporary folder, when no config file is given or
    found."""
    with contextlib.ExitStack() as stack:
        if not config_path and not os.environ.get(ENV_CONFIG) and not Path("config.toml").exists():
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="exmail-demo-"))
            config_path = str(embedded_config(Path(folder)))
            print("no config.toml here: running on the embedded demo config", flush=True)
        config = load_config(config_path, to_run=True)
        logs.configure("warning", "console")
        asyncio.run(_demo(config, duration_s))
    return 0
