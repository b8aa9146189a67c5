"""Prometheus metrics: what a process counts, with the official client library.

Each process keeps its own counters in :data:`REGISTRY` (no multiprocess mode): ``tether
serve`` exposes them at ``/metrics`` together with the gauges read from the database at scrape
time (:class:`DatabaseCollector`); a ``tether worker`` process exposes its own counters on its
own port (``TETHER_METRICS_PORT``). Prometheus scrapes every process and sums across them.

Label values are bounded: ``source`` is a data source id from the directory (bounded by the
directory's size), ``route`` a route template (never a path with ids), ``task`` a declared task
name, ``outcome``/``status`` small fixed sets. No label carries a member id, a token or a URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from tether import tracing
from tether.fhir.paging import retry_after_seconds
from tether.logging import get_logger

log = get_logger("tether.metrics")

# The classic text format (0.0.4): every Prometheus version parses it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "MeteredTransport",
    "exposition",
    "request_outcome",
]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_SYNC_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

API_REQUESTS = Counter(
    "tether_http_requests",
    "API requests served, by route template, method and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
API_DURATION = Histogram(
    "tether_http_request_duration_seconds",
    "Time to serve an API request, by route template and method.",
    ["method", "route"],
    buckets=_API_BUCKETS,
    registry=REGISTRY,
)
SOURCE_REQUESTS = Counter(
    "tether_source_requests",
    "Requests to data sources (FHIR, discovery, token endpoints) by source and outcome: "
    "2xx, 3xx, 401, 403, 429, 4xx, 5xx, timeout, network.",
    ["source", "outcome"],
    registry=REGISTRY,
)
SOURCE_DURATION = Histogram(
    "tether_source_request_duration_seconds",
    "Time until a data source answered (or the request failed), by source.",
    ["source"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SYNC_RUNS = Counter(
    "tether_sync_runs",
    "Finished sync runs by source and outcome (RETRIEVED, ERROR, stopped).",
    ["source", "outcome"],
    registry=REGISTRY,
)
SYNC_DURATION = Histogram(
    "tether_sync_duration_seconds",
    "Time from a sync run's claim to its outcome, by source.",
    ["source"],
    buckets=_SYNC_BUCKETS,
    registry=REGISTRY,
)
RESOURCES_WRITTEN = Counter(
    "tether_sync_resources_written",
    "FHIR resources stored by syncs (new or changed), by source.",
    ["source"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "tether_token_refreshes",
    "Access-token refreshes by source and outcome (refreshed, expired, unavailable).",
    ["source", "outcome"],
    registry=REGISTRY,
)
JOBS = Counter(
    "tether_jobs",
    "Jobs run by this process, by task and outcome (ok, retry, failed).",
    ["task", "outcome"],
    registry=REGISTRY,
)
JOB_WAIT = Histogram(
    "tether_job_wait_seconds",
    "Time a job waited in the queue, from enqueue to the start of its run, by task.",
    ["task"],
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "tether_webhook_attempts",
    "Webhook delivery attempts by outcome (delivered, failed, gone, refused).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("delivered", "failed", "gone", "refused"):  # exposed from the start
    WEBHOOK_ATTEMPTS.labels(_outcome)
WEBHOOK_LAG = Histogram(
    "tether_webhook_delivery_lag_seconds",
    "Time from an event's commit to its successful delivery to an endpoint.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0, 36000.0),
    registry=REGISTRY,
)


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The Prometheus text format of everything in ``registry``."""
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()


def registry_with(*collectors: Collector) -> CollectorRegistry:
    """A registry exposing this process's metrics plus ``collectors`` (such as the database
    gauges of one runtime), without registering those in the process-wide one."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return registry


def request_outcome(status: int | None, *, timed_out: bool = False) -> str:
    """The bounded outcome label of one request to a source: its status's, or, when it got
    no answer, ``timeout`` or ``network``."""
    if status is None:
        return "timeout" if timed_out else "network"
    if status in (401, 403, 429):
        return str(status)
    return f"{status // 100}xx"


class Measured:
    """One request being measured (:meth:`SourceMeter.measure`): tell it how it ended."""

    __slots__ = ("_meter", "_span", "_started")

    def __init__(self, meter: SourceMeter, span: Any, started: float) -> None:
        self._meter, self._span, self._started = meter, span, started

    def answered(self, status: int, retry_after: str | None = None) -> None:
        """The source answered ``status`` (with its ``Retry-After`` header, if any)."""
        outcome = request_outcome(status)
        wait = retry_after_seconds(retry_after) if outcome == "429" else None
        self._meter.observe(self._started, outcome, retry_after=wait)
        tracing.set_attributes(self._span, {"http.response.status_code": status})

    def failed(self, *, timed_out: bool) -> None:
        """No answer: the request timed out, or its connection failed."""
        self._meter.observe(self._started, request_outcome(None, timed_out=timed_out))


class SourceMeter:
    """What every client of a data source does around a request: a client span, and the
    source's counts (:data:`SOURCE_REQUESTS`, :data:`SOURCE_DURATION`, :data:`SOURCE_TALLY`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._duration = SOURCE_DURATION.labels(source)

    @contextmanager
    def measure(self, method: str, host: str | None, port: int | None) -> Iterator[Measured]:
        """Around one request; the caller reports how it ended on what this gives. The
        span names the source's host only: its paths carry patient ids and its queries
        codes and state."""
        with tracing.span(
            f"{method} {self.source}",
            kind=tracing.SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": host,
                "server.port": port,
                "tether.source": self.source,
            },
        ) as span:
            yield Measured(self, span, time.perf_counter())

    def observe(self, started: float, outcome: str, *, retry_after: float | None = None) -> None:
        self._duration.observe(time.perf_counter() - started)
        SOURCE_REQUESTS.labels(self.source, outcome).inc()
        SOURCE_TALLY.request(self.source, outcome, retry_after=retry_after)


class MeteredTransport(httpx.BaseTransport):
    """Counts and times every request sent through ``inner`` under the label ``source``
    (token refreshes, reads by id from blocking code: the sync's pages have their own client,
    :mod:`tether.sync.source_http`)."""

    def __init__(self, inner: httpx.BaseTransport, *, source: str) -> None:
        self.inner = inner
        self.meter = SourceMeter(source)

    @property
    def source(self) -> str:
        return self.meter.source

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        with self.meter.measure(request.method, url.host, url.port) as measured:
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                measured.failed(timed_out=isinstance(exc, httpx.TimeoutException))
                raise
            measured.answered(response.status_code, response.headers.get("retry-after"))
            return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class SourceMinute:
    """What one process saw of one data source in one minute."""

    requests: int = 0
    failures: int = 0  # 5xx, timeouts, network errors: the source's fault
    throttled: int = 0  # 429
    refused: int = 0  # 401, 403: usually one grant's problem, not the source's
    token_failures: int = 0  # refreshes the token endpoint could not answer


@dataclass
class SourceMarks:
    """The latest moments one process saw of one data source (epoch seconds)."""

    last_success: float | None = None
    last_failure: float | None = None
    throttled_until: float | None = None
    # connection pk → (when its latest sync ended, whether it failed because the source was down)
    syncs: dict[int, tuple[float, bool]] = field(default_factory=dict)


FAILURE_OUTCOMES = frozenset({"5xx", "timeout", "network"})


class SourceTally:
    """Per data source and minute, what this process saw; drained into the database by
    :func:`tether.connections.source_health.flush` (after each sync, and by a sweep), so
    that every process's view adds up to the health of the source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minutes: dict[tuple[str, int], SourceMinute] = {}
        self._marks: dict[str, SourceMarks] = {}

    def _minute(self, source: str, now: float) -> SourceMinute:
        key = (source, int(now // 60) * 60)
        minute = self._minutes.get(key)
        if minute is None:
            minute = self._minutes[key] = SourceMinute()
        return minute

    def _mark(self, source: str) -> SourceMarks:
        mark = self._marks.get(source)
        if mark is None:
            mark = self._marks[source] = SourceMarks()
        return mark

    def request(self, source: str, outcome: str, *, retry_after: float | None = None) -> None:
        now = time.time()
        with self._lock:
            minute = self._minute(source, now)
            mark = self._mark(source)
            minute.requests += 1
            if outcome in FAILURE_OUTCOMES:
                minute.failures += 1
                mark.last_failure = now
            elif outcome == "429":
                minute.throttled += 1
                until = now + (retry_after or 0)
                mark.throttled_until = max(mark.throttled_until or 0, until)
            elif outcome in ("401", "403"):
                minute.refused += 1
            elif outcome == "2xx":
                mark.last_success = now

    def token_failure(self, source: str) -> None:
        with self._lock:
            self._minute(source, time.time()).token_failures += 1

    def sync_ended(self, source: str, connection_pk: int, *, source_down: bool) -> None:
        """A sync of ``connection_pk`` failed because the source was down, or it did not."""
        with self._lock:
            self._mark(source).syncs[connection_pk] = (time.time(), source_down)

    def drain(self) -> tuple[dict[tuple[str, int], SourceMinute], dict[str, SourceMarks]]:
        """Everything counted since the last drain (and forget it)."""
        with self._lock:
            minutes, marks = self._minutes, self._marks
            self._minutes, self._marks = {}, {}
        return minutes, marks


SOURCE_TALLY = SourceTally()


@dataclass(frozen=True, slots=True)
class Gauge:
    """One gauge sample read at scrape time."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]


class SnapshotCollector(Collector):
    """Exposes gauges that ``read`` computes (from the database, the queue).

    Stale-while-revalidate: a scrape returns the last snapshot and, when it is older than
    ``ttl`` seconds, starts one background read for the next scrape; only the very first
    scrape waits for a read. So a scrape never pays for the database, several scrapers cost
    one read per ``ttl``, and the values are at most ``ttl`` plus one read old.
    """

    def __init__(self, read: Callable[[], Iterable[Gauge]], *, ttl: float = 10.0) -> None:
        self._read = read
        self._ttl = ttl
        self._cached: list[Gauge] | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = False

    def describe(self) -> list[Any]:
        return []  # read lazily: registering must not touch the database

    def _refresh(self) -> None:
        try:
            fresh = list(self._read())
        except Exception:
            log.exception("metrics.snapshot_failed")
            fresh = None
        with self._lock:
            if fresh is not None:
                self._cached = fresh
                self._read_at = time.monotonic()
            self._refreshing = False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            stale = time.monotonic() - self._read_at >= self._ttl
            first = self._cached is None
            start = stale and not self._refreshing and not first
            if start:
                self._refreshing = True
        if first:
            self._cached = list(self._read())  # nothing to show yet: read now (errors surface)
            self._read_at = time.monotonic()
        elif start:
            threading.Thread(target=self._refresh, name="metrics-snapshot", daemon=True).start()
        for gauge in self._cached or []:
            family = GaugeMetricFamily(gauge.name, gauge.help, labels=list(gauge.labels))
            for values, value in gauge.samples:
                family.add_metric(list(values), value)
            yield family
