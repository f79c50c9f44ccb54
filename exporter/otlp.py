"""Push the unified metrics to an OpenTelemetry collector over OTLP/HTTP (protobuf), every interval.

Imported only when ``otlp`` is configured (the [otlp] extra): the core sidecar never loads the SDK.

Each push takes one round of target reports through the exporter's own path (``Exporter.reports``:
the fetch in flight is shared, a report less than a second old is reused, the per-target token
bucket bounds the fetches), so the engine sees at most one more fetch per interval, and none when
Prometheus scraped within the second. The reports become the same series /metrics serves
(``render._collect``), written as OTLP data: gauges as Gauge, counters as cumulative monotonic
Sum, histograms as cumulative explicit-bucket Histogram.

Why the SDK's data classes handed to ``OTLPMetricExporter.export`` rather than a MeterProvider
with instruments: the engines' histograms arrive pre-aggregated (bucket counts, sum, count), which
no SDK instrument can record, and observable counters would have the SDK invent start times and
re-aggregate values we already hold. The data classes are the SDK's public export interface.

Pushing runs on its own thread: a slow or absent receiver delays only the next push, never /metrics.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric,
                                              MetricExportResult, MetricsData, NumberDataPoint, ResourceMetrics,
                                              ScopeMetrics, Sum)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from infersight import __version__
from infersight.exporter import normalize
from infersight.exporter.otlp_names import ATTRIBUTES, RESOURCE_TARGET, otel_name, unit
from infersight.exporter.render import TargetReport, _collect
from infersight.exporter.schema import Kind, Label, UnifiedMetric
from infersight.exporter.settings import Settings, read_otlp_headers, redact_url

log = logging.getLogger("infersight.exporter.otlp")

SERVICE_NAME = "infersight-exporter"
_SCOPE = InstrumentationScope("infersight.exporter", __version__)
_CUMULATIVE = AggregationTemporality.CUMULATIVE
STOP_WAIT_SECONDS = 2.0


def _histogram_point(hist: normalize.Histogram, attributes: dict[str, str], start: int,
                     now: int) -> HistogramDataPoint | None:
    """Prometheus' cumulative buckets as OTLP's per-bucket counts (the last one above the highest
    finite bound). None where the counts cannot be OTLP's (unsigned integers): a histogram whose
    buckets go down, or are NaN, is not pushed (its /metrics series shows why)."""
    buckets = dict(hist.buckets)
    buckets.setdefault(math.inf, hist.count)  # as /metrics: an engine that omits +Inf still has a count
    bounds = sorted(buckets)
    counts, previous = [], 0.0
    for bound in bounds:
        cumulative = float(buckets[bound])
        if not (math.isfinite(cumulative) and cumulative >= previous and cumulative.is_integer()):
            return None
        counts.append(int(cumulative - previous))
        previous = cumulative
    return HistogramDataPoint(attributes=attributes, start_time_unix_nano=start, time_unix_nano=now,
                              count=int(previous), sum=hist.sum, bucket_counts=counts,
                              explicit_bounds=bounds[:-1], min=None, max=None)


class Translator:
    """One round of reports as OTLP MetricsData. Remembers each cumulative series' start: the
    time it was first pushed, or the push that found it lower than before (a counter reset)."""

    def __init__(self, urls: dict[str, str]):
        self._urls = urls  # target label -> its URL, for server.address and server.port
        self._resources: dict[str | None, Resource] = {}
        self._starts: dict[tuple, tuple[int, float]] = {}  # (metric, label values) -> (start, last total)

    def resource(self, target: str | None) -> Resource:
        resource = self._resources.get(target)
        if resource is None:
            attributes: dict[str, str | int] = {"service.name": SERVICE_NAME, "service.version": __version__}
            if target is not None:
                attributes[RESOURCE_TARGET] = target
                url = urlsplit(self._urls.get(target, ""))
                if url.hostname:
                    attributes["server.address"] = url.hostname
                    attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
            resource = self._resources[target] = Resource(attributes)
        return resource

    def _start(self, starts: dict, key: tuple, total: float, now: int) -> int:
        start, last = self._starts.get(key, (now, total))
        if total < last:  # a reset (a restarted engine): the new series starts now
            start = now
        starts[key] = (start, total)
        return start

    def translate(self, reports: Iterable[TargetReport], now: int) -> MetricsData:
        by_target: dict[str | None, list[Metric]] = {}
        starts: dict[tuple, tuple[int, float]] = {}  # only the series of this push: bounded as they are
        for metric, series in _collect(reports, __version__).items():
            names = [ATTRIBUTES.get(label) for label in metric.labels]  # None: the target
            target_at = metric.labels.index(Label.TARGET) if Label.TARGET in metric.labels else None
            points: dict[str | None, list] = {}
            for values, value in series:
                attributes = {name: v for name, v in zip(names, values) if name is not None}
                target = values[target_at] if target_at is not None else None
                if metric.kind is Kind.GAUGE:
                    point = NumberDataPoint(attributes, 0, now, float(value))
                elif metric.kind is Kind.COUNTER:
                    start = self._start(starts, (metric, values), float(value), now)
                    point = NumberDataPoint(attributes, start, now, float(value))
                else:
                    start = self._start(starts, (metric, values), value.count, now)
                    point = _histogram_point(value, attributes, start, now)
                    if point is None:
                        continue
                points.setdefault(target, []).append(point)
            for target, data_points in points.items():
                by_target.setdefault(target, []).append(self._metric(metric, data_points))
        self._starts = starts
        return MetricsData([ResourceMetrics(self.resource(target), [ScopeMetrics(_SCOPE, metrics, "")], "")
                            for target, metrics in by_target.items()])

    @staticmethod
    def _metric(metric: UnifiedMetric, points: list) -> Metric:
        if metric.kind is Kind.GAUGE:
            data = Gauge(points)
        elif metric.kind is Kind.COUNTER:
            data = Sum(points, _CUMULATIVE, is_monotonic=True)
        else:
            data = Histogram(points, _CUMULATIVE)
        return Metric(otel_name(metric), metric.help, unit(metric), data)


class OtlpPusher:
    """Pushes every ``otlp.interval_seconds`` on its own thread until stopped."""

    def __init__(self, exporter, settings: Settings):
        assert settings.otlp is not None
        self._exporter = exporter  # server.Exporter (not imported: server imports this module)
        self._config = settings.otlp
        self._scrape_timeout = settings.scrape_timeout_seconds
        self._translator = Translator({settings.resolved(t).name: str(t.url) for t in settings.targets})
        self._endpoint = str(self._config.endpoint)
        self._client: OTLPMetricExporter | None = None
        self._headers: dict[str, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-push", daemon=True)
        self._ok: bool | None = None  # the last push's outcome, to log changes only

    def start(self) -> None:
        log.info("pushing OTLP endpoint=%s interval=%gs", redact_url(self._endpoint), self._config.interval_seconds)
        self._thread.start()

    def stop(self) -> None:
        """No last push: a push under way is given a moment, then left (its thread is a daemon),
        so that a hung receiver never holds up the pod's shutdown."""
        self._stop.set()
        self._thread.join(timeout=STOP_WAIT_SECONDS)
        if self._client is not None and not self._thread.is_alive():
            self._client.shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self._config.interval_seconds):
            try:
                ok = self.push()
            except Exception as exc:  # the push must never end: log, and try at the next interval
                log.warning("OTLP push failed: %s", type(exc).__name__)
                ok = False
            if ok != self._ok:
                if ok:
                    log.info("OTLP push to %s succeeded", redact_url(self._endpoint))
                else:
                    log.warning("OTLP push to %s failed; retrying every %gs", redact_url(self._endpoint),
                                self._config.interval_seconds)
                self._ok = ok

    def _otlp_client(self) -> OTLPMetricExporter:
        # The headers file is read at every push (mounted secrets rotate); a change makes a new client.
        headers = read_otlp_headers(self._config.headers_file) if self._config.headers_file else {}
        if self._client is None or headers != self._headers:
            if self._client is not None:
                self._client.shutdown()
            self._client = OTLPMetricExporter(endpoint=self._endpoint, headers=headers,
                                              timeout=self._config.timeout_seconds, compression=Compression.Gzip)
            self._headers = headers
        return self._client

    def push(self) -> bool:
        reports = self._exporter.reports(self._scrape_timeout)
        data = self._translator.translate(reports, time.time_ns())
        result = self._otlp_client().export(data, timeout_millis=self._config.timeout_seconds * 1000)
        return result is MetricExportResult.SUCCESS
