"""``/metrics``: the service in the Prometheus text format (``prometheus-client``).

Requests and their latency are counted as they are answered; everything else is read
from the runtime when scraped, so that answering costs one histogram observation.

| metric | type | labels |
|---|---|---|
| ``mixai_requests_total`` | counter | ``route``, ``status`` |
| ``mixai_request_duration_seconds`` | histogram | ``route`` |
| ``mixai_answers_total`` | counter | ``task``, ``source``, ``reason`` (empty for model answers) |
| ``mixai_queue_depth`` | gauge | calls waiting for the database writer |
| ``mixai_journal_bytes`` | gauge | journals waiting to be replayed |
| ``mixai_rows_total`` | counter | ``outcome``: ``written``, ``journaled``, ``spilled``, |
|  |  | ``replayed``, ``rejected``, ``lost`` |
| ``mixai_database_up`` | gauge | 1 when the last write reached the database |
| ``mixai_bundle_reloads_total`` | counter | ``outcome``: ``ok``, ``refused`` |
| ``mixai_control_refreshes_total`` | counter | ``outcome``: ``ok``, ``failed`` |
| ``mixai_control_age_seconds`` | gauge | since the control was last read |
| ``mixai_ready`` | gauge | 1 when ``/readyz`` answers 200 |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mixai_inference.serve.runtime import Runtime

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime, writer = self.runtime, self.runtime.writer
        answers = CounterMetricFamily(
            "mixai_answers",
            "Answers by task, source and fallback reason",
            labels=["task", "source", "reason"],
        )
        for (task, source, reason), count in sorted(writer.answers.items()):
            answers.add_metric([task, source, reason], count)
        yield answers
        yield GaugeMetricFamily(
            "mixai_queue_depth", "Calls waiting for the database writer", writer.queue_depth
        )
        yield GaugeMetricFamily(
            "mixai_journal_bytes",
            "Bytes of journals waiting to be replayed",
            writer.journal_bytes(),
        )
        rows = CounterMetricFamily("mixai_rows", "Rows by what became of them", labels=["outcome"])
        for outcome in ("written", "journaled", "spilled", "replayed", "rejected", "lost"):
            rows.add_metric([outcome], writer.counts[outcome])
        yield rows
        yield GaugeMetricFamily(
            "mixai_database_up",
            "1 when the last write reached the database",
            0 if writer.db_up is False else 1,
        )
        for name, counts, outcomes, text in (
            ("mixai_bundle_reloads", runtime.reloads, ("ok", "refused"), "Bundle reloads"),
            ("mixai_control_refreshes", runtime.refreshes, ("ok", "failed"), "Control reads"),
        ):
            family = CounterMetricFamily(name, text, labels=["outcome"])
            for outcome in outcomes:
                family.add_metric([outcome], counts[outcome])
            yield family
        read_at = runtime.status.read_at
        if read_at is not None:
            yield GaugeMetricFamily(
                "mixai_control_age_seconds",
                "Seconds since the control was read",
                time.monotonic() - read_at,
            )
        ready, _ = runtime.readiness()
        yield GaugeMetricFamily("mixai_ready", "1 when /readyz answers 200", int(ready))


class Telemetry:
    """The registry of one service."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "mixai_requests",
            "Requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "mixai_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_RuntimeCollector(runtime))
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        children = self._children.get((route, status))
        if children is None:
            children = (self._requests.labels(route, str(status)), self._latency.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text of ``/metrics`` and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
