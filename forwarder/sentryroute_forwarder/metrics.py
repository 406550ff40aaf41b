"""Prometheus metrics of the forwarder (names fixed by SPEC §6; more are welcome).

One registry per forwarder instance so that several forwarders can run in one test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

#: (scope "project" | "org", project or org key, signal, seconds until the deadline) of every active limit.
ActiveLimits = Callable[[], Iterable[tuple[str, str, str, float]]]
#: Label values and value of every series of a gauge read when scraped.
Series = Callable[[], Iterable[tuple[Sequence[str], float]]]


class ScrapedGauge:
    """A labelled gauge whose series are read from live state at scrape time (no hot-path cost, no child objects)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._labels = name, documentation, list(labels)
        self.source: Series | None = None
        registry.register(self)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self._name, self._documentation, labels=self._labels)]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, value in self.source() if self.source is not None else ():
            family.add_metric(list(values), value)
        yield family


class SeriesCounter:
    """A labelled counter for per-project series: each series is one dict entry.

    prometheus_client makes every label combination a child metric object of its own (~750 bytes with its lock and
    value); the four per-project metrics of 1,000 projects took ~3 MB that way. Incremented on the event loop only.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._labels = name, documentation, list(labels)
        self._values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def remove(self, *labels: str) -> None:
        """Forget one series (KeyError when there is none, like prometheus_client's `remove`)."""
        del self._values[labels]

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labels)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, value in list(self._values.items()):
            family.add_metric(list(values), value)
        yield family


class _RateLimitDeadlines(ScrapedGauge):
    """`sentryroute_rate_limit_remaining_seconds`, read from the live deadlines at scrape time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(
            "sentryroute_rate_limit_remaining_seconds",
            "Seconds until Sentry's rate limit on a project (or a whole org) ends, per signal; absent when none.",
            ["scope", "target", "signal"],
            registry,
        )
        self.limits: ActiveLimits | None = None
        self.source = self._series

    def _series(self) -> Iterator[tuple[Sequence[str], float]]:
        for scope, target, signal, seconds in self.limits() if self.limits is not None else ():
            yield (scope, target, signal), seconds


class ForwarderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received_items = Counter(
            "sentryroute_received_items", "Spans and log records accepted by the receivers.", ["signal"], registry=r
        )
        # Per-project series are dict entries or read when scraped, not prometheus_client children (see SeriesCounter).
        self.exported_items = SeriesCounter(
            "sentryroute_exported_items", "Items Sentry accepted (2xx).", ["signal", "project"], r
        )
        self.dropped_items = Counter(
            "sentryroute_dropped_items", "Items dropped, by reason.", ["signal", "reason"], registry=r
        )
        self.queued_items = ScrapedGauge("sentryroute_queued_items", "Items waiting per project.", ["project"], r)
        self.queued_bytes = Gauge("sentryroute_queued_bytes", "Bytes queued and held (global bound).", registry=r)
        self.receiving_bytes = Gauge(
            "sentryroute_receiving_bytes",
            "Bytes of requests being received (read, inflated, decoded), reserved against the global bound.",
            registry=r,
        )
        self.held_items = Gauge("sentryroute_held_items", "Items held, by reason.", ["reason"], registry=r)
        self.rate_limited_seconds = SeriesCounter(
            "sentryroute_rate_limited_seconds",
            "Seconds of rate limiting imposed by Sentry.",
            ["project", "category"],
            r,
        )
        self.export_duration = Histogram(
            "sentryroute_export_duration_seconds", "Duration of one export request to Sentry.", registry=r
        )
        self.export_requests = SeriesCounter(
            "sentryroute_export_requests", "Export requests by outcome.", ["project", "outcome"], r
        )
        self.export_turn_waits = Counter(
            "sentryroute_export_turn_waits",
            "Batches that waited for a later event-loop iteration to start (more fell due at once than start per"
            " iteration): growing steadily means exporting is behind receiving, and batches grow to catch up.",
            registry=r,
        )
        self.routes_revision = Gauge(
            "sentryroute_routes_revision_info",
            "Revision of the routes table in use (value 1).",
            ["revision"],
            registry=r,
        )
        self.routes_reload_errors = Counter(
            "sentryroute_routes_reload_errors", "Routes tables rejected (malformed or unsupported).", registry=r
        )
        self.rejected_requests = Counter(
            "sentryroute_rejected_requests", "Receiver requests answered with an error.", ["code"], registry=r
        )
        self.queue_disk_bytes = Gauge(
            "sentryroute_queue_disk_bytes", "Size of the queue directory's segment files (--queue-dir).", registry=r
        )
        self.queue_write_errors = Counter(
            "sentryroute_queue_write_errors",
            "Failed writes to the queue directory, by errno name (ENOSPC, EROFS, ...).",
            ["error"],
            registry=r,
        )
        self.queue_corrupt_bytes = Counter(
            "sentryroute_queue_corrupt_bytes", "Bytes of the queue directory skipped as corrupt on replay.", registry=r
        )
        self.queue_fsyncs = Counter(
            "sentryroute_queue_fsyncs",
            "Group commits of --queue-fsync: one fsync answers every request written before it started.",
            registry=r,
        )
        self.queue_replayed_items = Counter(
            "sentryroute_queue_replayed_items", "Items recovered from the queue directory at start-up.", registry=r
        )
        # For dashboards and alerts (charts/sentryroute/dashboards, templates/prometheusrule.yaml).
        self.export_responses = SeriesCounter(
            "sentryroute_export_responses",
            "Sentry's answers to export requests by HTTP status ('none': timeout or connection error).",
            ["project", "status"],
            r,
        )
        self.paced_requests = Counter(
            "sentryroute_paced_requests",
            "Answers held while their queues were backed up (--pace-bytes), by how the hold ended.",
            ["outcome"],
            registry=r,
        )
        self.held_answers = Gauge(
            "sentryroute_held_answers", "Answers being held right now (pacing, --pace-bytes).", registry=r
        )
        self.queue_limit_bytes = Gauge(
            "sentryroute_queue_limit_bytes",
            "The global bound on queued and held bytes (--max-bytes, or --max-disk-bytes with --queue-dir).",
            registry=r,
        )
        self.routes_loaded = Gauge(
            "sentryroute_routes_loaded_timestamp_seconds",
            "When the routes table in use was loaded (Unix time).",
            registry=r,
        )
        self.ready = Gauge("sentryroute_ready", "1 while /readyz answers ready, else 0.", registry=r)
        self.wire_check = Gauge(
            "sentryroute_wire_check_info",
            "How intake validation's wire check runs (value 1): mode=compiled, or interpreted (~70x slower).",
            ["mode"],
            registry=r,
        )
        self.rate_limit_deadlines = _RateLimitDeadlines(r)
        # process_cpu_seconds_total, process_resident_memory_bytes, ...: this registry is not the default one.
        ProcessCollector(registry=r)
        # Tenancy (SPEC §6.1, --namespace-from peer).
        self.peer_lookups = Counter(
            "sentryroute_peer_lookups",
            "Requests by what their peer address resolved to (pod, relay, unknown, ambiguous, local).",
            ["result"],
            registry=r,
        )
        self.peer_index_pods = Gauge(
            "sentryroute_peer_index_pods", "Pods with addresses of their own in the peer index.", registry=r
        )
        self.namespace_rewrites = Counter(
            "sentryroute_namespace_rewrites",
            "Resources whose k8s.namespace.name was corrected to the sender's true namespace.",
            registry=r,
        )
