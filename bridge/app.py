"""`exmail-bridge run`: the store, the listener pool, the dispatchers and the HTTP server.

SIGTERM or SIGINT: stop listening, finish in-flight commits and deliveries, close
everything within `[bridge] grace_s`, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge import logs, metrics
from bridge.click_token import link_ttl_s, make_signer
from bridge.clickthrough import ClickThrough, member_checks
from bridge.clickthrough_logins import only_with_sso
from bridge.config import Config
from bridge.delivery.subscriptions_app import subscriptions
from bridge.dispatch import Dispatcher
from bridge.errors import StoreError
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.exmail_api.callback import CallbackReceiver
from bridge.exmail_api.client import ApiClient
from bridge.exmail_api.sso import ApiLogin
from bridge.gcpolicy import tuned
from bridge.pool import Pool
from bridge.ratelimit import RateLimiter
from bridge.readiness import ListenReadiness
from bridge.sources import SourceDeps, build_source
from bridge.sources.registry import check_sources
from bridge.states import StateBoard
from bridge.store import open_store
from bridge.store.base import Store
from bridge.supervise import Supervisor, stop_if_cancelled
from bridge.tokenstash import TokenStash
from bridge.tokenwarm import TokenWarmer
from bridge.web.me_feature import MeFeature
from bridge.web.ops import Health, Readiness
from bridge.web.serve import plan_listeners, serving
from sinks import build_sink
from sinks.shared import sink_extras

__all__ = ["Runtime", "run", "serve"]

log = logs.get_logger(__name__)
COUNTS_EVERY_S = 5.0


@dataclass
class Runtime:
    """The running parts, for the HTTP checks and for tests."""

    config: Config
    store: Store
    pool: Pool
    dispatchers: list[Dispatcher]
    health: Health
    listens: ListenReadiness
    jobs: dict[str, Supervisor] = field(default_factory=dict)  # the bridge's own tasks

    async def problems(self) -> Readiness:
        """Why the bridge is not ready (empty when it is), with the tenants' states."""
        await self.store.ping()
        found, tenants = self.listens.check()
        found += [p for p in (self.store.full(),) if p]
        found += [p for p in (d.problem() for d in self.dispatchers) if p]
        found += [p for p in (j.problem() for j in self.jobs.values()) if p]
        return Readiness(problems=found, detail={"tenants": tenants})

    def supervised(self, name: str, job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `job` (which runs until cancelled) as a task restarted whenever it dies."""
        supervisor = self.jobs[name] = Supervisor(name)
        return asyncio.create_task(supervisor.run(job, lambda: False), name=name)


async def _publish_counts(store: Store, names: list[str]) -> None:
    while True:
        stop_if_cancelled()
        for name in names:
            with contextlib.suppress(StoreError):
                metrics.store_counts(name, await store.backlog(name), await store.dead_count(name))
        await asyncio.sleep(COUNTS_EVERY_S)


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(
    config: Config, stop: asyncio.Event | None = None, listening: asyncio.Event | None = None
) -> None:
    """Run the bridge until `stop` is set (or SIGTERM/SIGINT); set `listening` once bound."""
    check_sources(config.tenants)
    stop = stop or asyncio.Event()
    _install_signals(stop)
    async with (
        open_store(config.bridge, running=True) as store,
        contextlib.AsyncExitStack() as stack,
    ):
        session = make_session(config.exmail, max_connections=len(config.tenants) + 64)
        stack.push_async_callback(session.close)
        rate = RateLimiter(rate_per_s=config.bridge.upstream_rate_per_s)
        stash = TokenStash(store=store)  # upstream tokens outlive a restart, sealed
        client = ExmailClient(session=session, settings=config.exmail, rate=rate, stash=stash)
        api = ApiClient(
            session=session,
            settings=config.exmail,
            base_url=config.exmail.api_url,
            rate=rate,
            stash=stash,
        )
        wecom_mail = ApiClient(
            session=session,
            settings=config.exmail,
            base_url=config.exmail.wecom_api_url,
            provider="wecom",
            rate=rate,
            stash=stash,
        )
        warmer = TokenWarmer(
            stash=stash, holders={"legacy": client, "api": api, "wecom-mail": wecom_mail}
        )
        # Dependency order: the signer, then the sinks (given links naming them), then the
        # click-through handler (given the WeCom sinks that check who clicks).
        signer = await make_signer(config, store)
        me = await MeFeature.create(config=config, store=store)
        board = StateBoard()
        subs = await stack.enter_async_context(subscriptions(config, store))
        router = subs.router
        dispatchers = []
        for sink_config in config.sinks:
            extra = {**sink_extras(sink_config, store), **me.sink_extras(sink_config)}
            link_for = signer.links_for(
                sink_config.name, ttl_s=link_ttl_s(config.bridge, sink_config)
            )
            sink = build_sink(
                sink_config,
                config=config,
                link_for=only_with_sso(link_for, config.tenants),
                **extra,
            )
            await sink.start()
            stack.push_async_callback(sink.aclose)
            dispatchers.append(
                Dispatcher(
                    sink=sink,
                    store=store,
                    retry_s=sink_config.retry_s,
                    concurrency=sink_config.concurrency,
                    timeout_s=sink_config.timeout_s,
                    ordered=sink_config.ordered,
                )
            )
        clicks = ClickThrough(
            signer=signer,
            tenants=config.tenants,
            authkeys=client,
            checks=member_checks(d.sink for d in dispatchers),
            without_oauth_ttl_s=config.bridge.click_ttl_without_oauth_s,
            logins={"api": ApiLogin(api)},
        )

        deps = SourceDeps(
            config=config,
            store=store,
            router=router,
            board=board,
            rate=rate,
            legacy=client,
            api=api,
            wecom_mail=wecom_mail,
        )

        pool = Pool(
            tenants=config.tenants,
            make_listener=lambda tenant: build_source(tenant, deps),
            store=store,
            board=board,
            instance_id=config.bridge.instance_id,
            startup_window_s=config.bridge.startup_window_s,
            lease_ttl_s=config.bridge.lease_ttl_s,
            rate_per_s=config.bridge.upstream_rate_per_s,
            warm=warmer.warm,
        )
        health = Health()
        runtime = Runtime(
            config=config,
            store=store,
            pool=pool,
            dispatchers=dispatchers,
            health=health,
            listens=ListenReadiness(pool=pool, board=board),
        )
        callbacks = CallbackReceiver(tenants=config.tenants, committer_for=deps.committer)
        listeners = plan_listeners(
            config.bridge,
            health=health,
            ready=runtime.problems,
            faces=[clicks, callbacks, subs.face, *me.faces],
        )
        await stack.enter_async_context(me.running())
        await stack.enter_async_context(serving(listeners))
        if listening is not None:
            listening.set()
        await _run_until(stop, runtime)


async def _run_until(stop: asyncio.Event, rt: Runtime) -> None:
    names = [d.name for d in rt.dispatchers]
    tasks = [
        rt.supervised("pool", rt.pool.run),
        rt.supervised("health", rt.health.run),
        rt.supervised("counts", lambda: _publish_counts(rt.store, names)),
    ]
    deliveries = [asyncio.create_task(d.run(), name=f"dispatch[{d.name}]") for d in rt.dispatchers]
    log.info(
        "bridge_started",
        tenants=len(rt.config.tenants),
        sinks=[d.name for d in rt.dispatchers],
        http=rt.config.bridge.http_listen,
        public=rt.config.bridge.public_listen or rt.config.bridge.http_listen,
        store=rt.store.backend,
    )
    await stop.wait()
    log.info("bridge_stopping", grace_s=rt.config.bridge.grace_s)
    try:
        async with asyncio.timeout(rt.config.bridge.grace_s):
            await _shutdown(tasks, deliveries, rt)
    except TimeoutError:
        log.warning("shutdown_grace_exceeded", grace_s=rt.config.bridge.grace_s)
        for task in [*tasks, *deliveries]:
            task.cancel()
    log.info("bridge_stopped")


async def _shutdown(
    tasks: list[asyncio.Task[None]], deliveries: list[asyncio.Task[None]], rt: Runtime
) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rt.pool.stop()
    for dispatcher in rt.dispatchers:
        dispatcher.stop()
    await asyncio.gather(*deliveries, return_exceptions=True)


async def _serve_tuned(config: Config) -> None:
    async with tuned() as policy:  # each live object scanned once by the collector
        metrics.watch_gc(policy.figures)
        await serve(config)


def run(config: Config) -> int:
    """Run the bridge in a fresh event loop (uvloop when installed); exit code 0."""
    logs.configure(config.bridge.log_level, config.bridge.log_format)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_tuned(config))
    else:
        uvloop.run(_serve_tuned(config))
    return 0
