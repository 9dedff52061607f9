"""Every Prometheus object the bridge exports, and the small functions that update them.

Names start `exmail_bridge_`, units are in the name, and no label carries a tenant or a
mailbox: a deployment may have 10,000 tenants. Business code calls the functions below,
never a metric object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.gcpolicy import GcFigures

__all__ = ["REGISTRY", "DeliveryMeters"]

REGISTRY = CollectorRegistry(auto_describe=True)
_P = "exmail_bridge_"

LISTEN_CONNECTIONS = Gauge(
    _P + "listen_connections",
    "Listen long polls by state (connected, connecting, backoff, parked).",
    ["state"],
    registry=REGISTRY,
)
LISTEN_POLLS = Counter(
    _P + "listen_polls_total",
    "Listen requests finished, by outcome (push, heartbeat, empty, error).",
    ["outcome"],
    registry=REGISTRY,
)
LISTEN_RECONNECTS = Counter(
    _P + "listen_reconnects_total",
    "Listen reconnects after a failure, by reason.",
    ["reason"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    _P + "upstream_errors_total",
    "Errors from Exmail or WeCom, by endpoint and code.",
    ["endpoint", "code"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    _P + "token_refreshes_total",
    "Access token fetches, by provider (exmail, wecom) and outcome (ok, error).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
PUSH_DECODE_ERRORS = Counter(
    _P + "push_decode_errors_total",
    "Listen pushes that were not JSON or had an unknown shape, by kind.",
    ["kind"],
    registry=REGISTRY,
)
EVENTS = Counter(
    _P + "events_total",
    "Events committed to the outbox, by type.",
    ["type"],
    registry=REGISTRY,
)
EVENTS_DEDUPLICATED = Counter(
    _P + "events_deduplicated_total",
    "Events skipped because their id was already committed within the dedupe window.",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    _P + "deliveries_total",
    "Delivery attempts, by sink and outcome (delivered, retry, dead).",
    ["sink", "outcome"],
    registry=REGISTRY,
)
DELIVERY_DURATION = Histogram(
    _P + "delivery_duration_seconds",
    "Time a sink took for one delivery attempt.",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
EVENT_LATENCY = Histogram(
    _P + "event_latency_seconds",
    "From the event's commit to its successful delivery, by sink.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    _P + "outbox_backlog",
    "Deliveries waiting in the store, by sink.",
    ["sink"],
    registry=REGISTRY,
)
DEAD_LETTERS = Gauge(
    _P + "dead_letters",
    "Dead letters in the store, by sink.",
    ["sink"],
    registry=REGISTRY,
)
SINK_PERMANENT_FAILURES = Counter(
    _P + "sink_permanent_failures_total",
    "Permanent failures caused by a sink's configuration (bad secret, untrusted IP, 410).",
    ["sink"],
    registry=REGISTRY,
)
TENANTS = Gauge(
    _P + "tenants",
    "Tenants by state (listening, backoff, parked, not_owned).",
    ["state"],
    registry=REGISTRY,
)
UNREAD_POLLS = Counter(
    _P + "unread_polls_total",
    "Unread-count polls (new API, WeCom mail), by protocol and outcome.",
    ["protocol", "outcome"],
    registry=REGISTRY,
)
DIRECTORY_WALKS = Counter(
    _P + "directory_walks_total",
    "Full directory walks (new API), by outcome (unchanged, changed, failed).",
    ["outcome"],
    registry=REGISTRY,
)
CALLBACKS = Counter(
    _P + "callbacks_total",
    "Exmail callbacks answered 200, by outcome (committed, ignored, unknown_type).",
    ["outcome"],
    registry=REGISTRY,
)
CALLBACKS_REFUSED = Counter(
    _P + "callbacks_refused_total",
    "Exmail callbacks refused, by reason (signature, corp, stale, replay, oversized, "
    "malformed, tenant, store).",
    ["reason"],
    registry=REGISTRY,
)
# Series with a small, known set of label values start at 0, so a dashboard or an alert
# sees "none yet" instead of "no data" on a bridge that has no tenant of that protocol.
for _protocol in ("api", "wecom-mail"):
    for _outcome in ("same", "changed", "rise", "rejected", "error"):
        UNREAD_POLLS.labels(_protocol, _outcome)
for _outcome in ("unchanged", "changed", "failed"):
    DIRECTORY_WALKS.labels(_outcome)
for _state in ("connecting", "connected"):  # moved by one per change (bridge/states.py)
    LISTEN_CONNECTIONS.labels(_state)
for _state in ("starting", "listening", "backoff", "parked", "not_owned"):
    TENANTS.labels(_state)
for _outcome in ("committed", "ignored", "unknown_type"):
    CALLBACKS.labels(_outcome)
for _reason in (
    "signature",
    "corp",
    "stale",
    "replay",
    "oversized",
    "malformed",
    "tenant",
    "store",
):
    CALLBACKS_REFUSED.labels(_reason)
BUILD_INFO = Info(_P + "build", "Version of the running bridge.", registry=REGISTRY)
BUILD_INFO.info({"version": __version__})


@cache
def _series(metric: Counter, *labels: str) -> Counter:
    """A labelled series, looked up once: the per-listen counters below run 10,000 times in
    a reconnect storm, and every label value comes from a small known set."""
    return metric.labels(*labels)


def poll_finished(outcome: str) -> None:
    """One listen request ended (`push`, `heartbeat`, `empty` or `error`)."""
    _series(LISTEN_POLLS, outcome).inc()


def reconnect(reason: str) -> None:
    """A listener reconnects after `reason` (timeout, reset, http_5xx, ...)."""
    _series(LISTEN_RECONNECTS, reason).inc()


def unread_poll(protocol: str, outcome: str) -> None:
    """One unread count was polled (`same`, `changed`, `rise`, `rejected` or `error`)."""
    UNREAD_POLLS.labels(protocol, outcome).inc()


def directory_walk(outcome: str) -> None:
    """A directory walk ended (`unchanged`, `changed` or `failed`)."""
    DIRECTORY_WALKS.labels(outcome).inc()


def upstream_error(endpoint: str, code: str) -> None:
    """An upstream call failed with `code` (an errcode, an HTTP status, or a kind)."""
    _series(UPSTREAM_ERRORS, endpoint, code or "none").inc()


def token_refresh(provider: str, ok: bool) -> None:
    """A token fetch finished."""
    _series(TOKEN_REFRESHES, provider, "ok" if ok else "error").inc()


def push_decode_error(kind: str) -> None:
    """A push could not be decoded (`json`) or had an unknown shape (`shape`)."""
    PUSH_DECODE_ERRORS.labels(kind).inc()


def events_committed(event_type: str, count: int = 1) -> None:
    """`count` events of `event_type` entered the outbox."""
    EVENTS.labels(event_type).inc(count)


def events_deduplicated(count: int = 1) -> None:
    """`count` events were dropped as duplicates."""
    EVENTS_DEDUPLICATED.inc(count)


class DeliveryMeters:
    """One sink's delivery metrics; its labelled children are looked up once, not at
    every delivery (a burst delivers thousands a second)."""

    def __init__(self, sink: str) -> None:
        self._sink = sink
        self._delivered = DELIVERIES.labels(sink, "delivered")
        self._duration = DELIVERY_DURATION.labels(sink)
        self._latency = EVENT_LATENCY.labels(sink)

    def delivered(self, duration_s: float, latency_s: float) -> None:
        """A delivery attempt succeeded; the event reached the sink `latency_s` after its
        commit."""
        self._delivered.inc()
        self._duration.observe(duration_s)
        self._latency.observe(max(latency_s, 0.0))

    def failed(self, outcome: str, duration_s: float) -> None:
        """A delivery attempt failed and ended `retry` or `dead`."""
        DELIVERIES.labels(self._sink, outcome).inc()
        self._duration.observe(duration_s)


def sink_permanent_failure(sink: str) -> None:
    """A sink failed because of its own configuration."""
    SINK_PERMANENT_FAILURES.labels(sink).inc()


def store_counts(sink: str, backlog: int, dead: int) -> None:
    """The store's current backlog and dead letters for `sink`."""
    OUTBOX_BACKLOG.labels(sink).set(backlog)
    DEAD_LETTERS.labels(sink).set(dead)


@cache
def _state_child(gauge: Gauge, state: str) -> Gauge:
    """A by-state gauge's series, looked up once (10,000 tenants change state often)."""
    return gauge.labels(state)


def _move(gauge: Gauge, old: str | None, new: str | None) -> None:
    if old is not None:
        _state_child(gauge, old).dec()
    if new is not None:
        _state_child(gauge, new).inc()


def listen_state_moved(old: str | None, new: str | None) -> None:
    """One listen connection left state `old` for `new` (None: none, or gone)."""
    _move(LISTEN_CONNECTIONS, old, new)


def tenant_state_moved(old: str | None, new: str | None) -> None:
    """One tenant left state `old` for `new` (None: none, or gone)."""
    _move(TENANTS, old, new)


def callback_handled(outcome: str) -> None:
    """A callback was answered 200 (`committed`, `ignored`, `unknown_type`)."""
    CALLBACKS.labels(outcome).inc()


def callback_refused(reason: str) -> None:
    """A callback was refused (or deferred with 503 when `reason` is `store`)."""
    CALLBACKS_REFUSED.labels(reason).inc()


DISPATCHER_RESTARTS = Counter(
    _P + "dispatcher_restarts_total",
    "Dispatchers restarted by their supervisor after dying, by sink.",
    ["sink"],
    registry=REGISTRY,
)
DISPATCHER_FAILING = Gauge(
    _P + "dispatcher_failing",
    "1 while a sink's dispatcher keeps dying (several restarts within 5 minutes).",
    ["sink"],
    registry=REGISTRY,
)
SINK_INTERNAL_ERRORS = Counter(
    _P + "sink_internal_errors_total",
    "Unexpected exceptions from a sink, each turned into a failed attempt, by sink.",
    ["sink"],
    registry=REGISTRY,
)


def dispatcher_created(sink: str) -> None:
    """Export `sink`'s dispatcher health series at 0 from the start (not only once it fails)."""
    DISPATCHER_RESTARTS.labels(sink)
    DISPATCHER_FAILING.labels(sink).set(0)
    SINK_INTERNAL_ERRORS.labels(sink)


def dispatcher_restarted(sink: str) -> None:
    """The supervisor restarted `sink`'s dispatcher."""
    DISPATCHER_RESTARTS.labels(sink).inc()


def dispatcher_failing(sink: str, failing: bool) -> None:
    """Whether `sink`'s dispatcher keeps dying."""
    DISPATCHER_FAILING.labels(sink).set(1 if failing else 0)


def sink_internal_error(sink: str) -> None:
    """A sink raised something other than SinkError."""
    SINK_INTERNAL_ERRORS.labels(sink).inc()


class _GcFamilies(Collector):
    """The cyclic garbage collector's figures, read from the running meter at each scrape."""

    def __init__(self) -> None:
        self.read: Callable[[], GcFigures] | None = None

    def collect(self) -> Iterator[Metric]:
        figures = self.read() if self.read else GcFigures((0,) * 3, (0.0,) * 3, (0,) * 3, 0)
        families = (
            ("gc_seconds", "CPU seconds in the cyclic garbage collector", figures.cpu_s),
            ("gc_collections", "Cyclic garbage collections", figures.collections),
            ("gc_collected_objects", "Unreachable objects the collector found", figures.collected),
        )
        for name, doc, values in families:
            family = CounterMetricFamily(_P + name, doc + ", by generation.", labels=["generation"])
            for generation, value in enumerate(values):
                family.add_metric([str(generation)], value)
            yield family
        yield GaugeMetricFamily(
            _P + "gc_frozen_objects",
            "Objects in the permanent generation (gc.freeze), which no collection scans.",
            value=figures.frozen_objects,
        )


_GC = _GcFamilies()
REGISTRY.register(_GC)


def watch_gc(read: Callable[[], GcFigures] | None) -> None:
    """Export what `read` returns (the process' GC meter) at every scrape (None: zeros)."""
    _GC.read = read
