"""Build the exporter's metric families from one round of target reports.

Families are built fresh for every scrape (never module-level gauges): series of an engine that
went away disappear with it, and two concurrent scrapes cannot race.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

from exporter.normalize import Histogram, Normalized
from exporter.schema import CATALOGUE, GpuSource, Kind, Label, M, ScrapeErrorReason, UnifiedMetric


@dataclass
class TargetReport:
    """What one scrape learned about one target."""

    engine: str
    target: str
    up: bool
    duration_seconds: float
    errors: Mapping[ScrapeErrorReason, int]  # cumulative since the exporter started
    normalized: Normalized | None  # None while the target is down
    signals: Sequence[UnifiedMetric] = ()  # the signals this target is expected to provide
    gpu_source: GpuSource = GpuSource.NONE
    gpu_up: bool | None = None  # None: no separate GPU source
    gpu: Normalized | None = None  # GPU series from dcgm/nvml
    hourly_cost_dollars: float | None = None


@dataclass
class _Builder:
    families: dict[UnifiedMetric, Metric] = field(default_factory=dict)

    def family(self, metric: UnifiedMetric) -> Metric:
        family = self.families.get(metric)
        if family is None:
            labels = [label.value for label in metric.labels]
            cls = {Kind.GAUGE: GaugeMetricFamily, Kind.COUNTER: CounterMetricFamily,
                   Kind.HISTOGRAM: HistogramMetricFamily}[metric.kind]
            family = self.families[metric] = cls(metric.name, metric.help, labels=labels)
        return family

    def add(self, metric: UnifiedMetric, label_values: Sequence[str], value: float | Histogram) -> None:
        family = self.family(metric)
        if isinstance(value, Histogram):
            family.add_metric(label_values, _buckets(value), value.sum)
        else:
            family.add_metric(label_values, value)


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    buckets = dict(hist.buckets)
    buckets.setdefault(math.inf, hist.count)  # an engine that omits +Inf still has a count
    return [(floatToGoString(bound), buckets[bound]) for bound in sorted(buckets)]


def _label_values(metric: UnifiedMetric, engine: str, target: str, key: Sequence[str]) -> list[str]:
    rest = iter(key)
    return [engine if label is Label.ENGINE else target if label is Label.TARGET else next(rest)
            for label in metric.labels]


def _add_normalized(builder: _Builder, report: TargetReport, normalized: Normalized) -> None:
    for metric, series in normalized.series.items():
        for key in sorted(series):
            builder.add(metric, _label_values(metric, report.engine, report.target, key), series[key])


def build_families(reports: Iterable[TargetReport], version: str) -> list[Metric]:
    """All families for one scrape, in catalogue order; series in report order, then label order."""
    builder = _Builder()
    builder.add(M.EXPORTER_BUILD_INFO, [version], 1)
    for report in reports:
        target_labels = [report.engine, report.target]
        builder.add(M.EXPORTER_TARGET_UP, target_labels, 1 if report.up else 0)
        builder.add(M.EXPORTER_TARGET_SCRAPE_DURATION, target_labels, report.duration_seconds)
        for reason in ScrapeErrorReason:
            builder.add(M.EXPORTER_SCRAPE_ERRORS, target_labels + [reason.value], report.errors.get(reason, 0))
        if report.hourly_cost_dollars is not None:
            builder.add(M.HOURLY_COST_DOLLARS, target_labels, report.hourly_cost_dollars)
        if report.gpu_up is not None:
            builder.add(M.EXPORTER_GPU_SOURCE_UP, target_labels + [report.gpu_source.value], 1 if report.gpu_up else 0)
        available: dict[UnifiedMetric, bool] = {}
        if report.normalized is not None:
            _add_normalized(builder, report, report.normalized)
            available.update(report.normalized.available)
        if report.gpu is not None:
            _add_normalized(builder, report, report.gpu)
            available.update(report.gpu.available)
        if report.up:  # while down nothing is known; target_up says so
            for signal in report.signals:
                builder.add(M.EXPORTER_SIGNAL_AVAILABLE, target_labels + [signal.name],
                            1 if available.get(signal) else 0)
    order = {metric: i for i, metric in enumerate(CATALOGUE)}
    return [builder.families[m] for m in sorted(builder.families, key=order.__getitem__)]


class FamilySet:
    """A one-shot registry, so that prometheus_client's encoders can render built families."""

    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
               "unknown": "untyped"}
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def text_exposition(families: list[Metric]) -> str:
    """The Prometheus text format (0.0.4) of ``families``: byte for byte what
    ``prometheus_client.generate_latest`` writes, several times faster. Families it does not
    handle (exotic types or names, timestamps, OpenMetrics-only samples) go to the library."""
    if not all(f.type in _TEXT_TYPES and _LEGACY_NAME.fullmatch(f.name) for f in families):
        return generate_latest(FamilySet(families)).decode("utf-8")
    out = []
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {_TEXT_TYPES[family.type]}\n")
        for sample_name, labels, value, timestamp, *_ in family.samples:
            if timestamp is not None or sample_name.endswith(("_created", "_gsum", "_gcount")):
                return generate_latest(FamilySet(families)).decode("utf-8")
            if labels:
                pairs = ",".join([f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items())])
                out.append(f"{sample_name}{{{pairs}}} {floatToGoString(value)}\n")
            else:
                out.append(f"{sample_name} {floatToGoString(value)}\n")
    return "".join(out)
