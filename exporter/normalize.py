"""Turn an engine's parsed families into unified series, as its adapter table says. Pure.

``compile_plan`` is run once per adapter; ``normalize`` once per scrape. The result is keyed by
unified metric and by label values in the metric's label order, without ``engine`` and
``target``, which the exporter adds.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from infersight.exporter.adapters.base import Adapter, Row, Take
from infersight.exporter.parse import Family, Labels, ParseError, Sample
from infersight.exporter.schema import Combine, Kind, Label, Outcome, UnifiedMetric, WaitingReason

LabelKey = tuple[str, ...]


@dataclass
class Histogram:
    buckets: dict[float, float]  # upper bound (seconds, +inf included) -> cumulative count
    sum: float
    count: float

    def add(self, other: Histogram, sign: int = 1) -> None:
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + sign * count
        self.sum += sign * other.sum
        self.count += sign * other.count


Value = float | Histogram


@dataclass
class Normalized:
    """One target's unified series and which of the adapter's signals the payload provided."""

    series: dict[UnifiedMetric, dict[LabelKey, Value]] = field(default_factory=dict)
    available: dict[UnifiedMetric, bool] = field(default_factory=dict)
    dropped_series: int = 0  # series over a cap (see Caps), not exported, or folded into an "other" value


@dataclass(frozen=True)
class Caps:
    """Bounds on the label values an engine can make the exporter copy (besides ``max_models``):
    every label value of an output series comes from the engine's payload, so each dimension is
    capped and what goes over is counted in ``Normalized.dropped_series``.

    ``max_gpus``: GPUs per target, the first by UUID (as models are kept by name).
    ``max_label_bytes``: a series with a copied label value (model, GPU) longer than this, in UTF-8,
    is dropped rather than truncated: truncating could merge two series into one wrong sum.
    Prometheus' own ``label_value_length_limit`` fails the whole scrape instead."""

    max_gpus: int | None = None
    max_label_bytes: int | None = None


DEFAULT_CAPS = Caps(max_gpus=64, max_label_bytes=1024)  # the exporter's defaults (settings.py)

# Labels whose values come from a fixed set: an engine value outside it is counted into "other".
_KNOWN_VALUES: dict[Label, frozenset[str]] = {Label.REASON: frozenset(WaitingReason)}


@dataclass(frozen=True)
class Plan:
    """An adapter compiled for scraping: what to ask the parser for and how rows group."""

    adapter: Adapter
    wanted: frozenset[str]  # family names as they may appear in a payload
    canonical: dict[str, str]  # payload family name -> the name rows use
    # metric -> parts, each part a tuple of alias rows in priority order (the rows of one part share
    # an alternative)
    parts: dict[UnifiedMetric, tuple[tuple[Row, ...], ...]]
    gpu: bool = True  # whether the adapter's GPU rows are in

    @property
    def key(self) -> tuple:
        """What the plan was compiled from (plans themselves are not hashable)."""
        return (self.adapter.engine, self.gpu)


def compile_plan(adapter: Adapter, *, gpu: bool = True) -> Plan:
    """``gpu=False`` leaves out the adapter's GPU rows (the target reads its GPUs elsewhere)."""
    rows = tuple(row for row in adapter.rows if gpu or Label.GPU not in row.metric.labels)
    sources = set()
    for row in rows:
        sources.add(row.source)
        if row.count_source:
            sources.add(row.count_source)
        if row.requires:
            sources.add(row.requires)
    canonical = {name: name for name in sources}
    for seen_prefix, row_prefix in adapter.prefix_aliases.items():
        for name in sources:
            if name.startswith(row_prefix):
                canonical[seen_prefix + name[len(row_prefix):]] = name
    grouped: dict[UnifiedMetric, dict[tuple[int, str], list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row.metric][(row.alternative, row.part)].append(row)
    parts = {metric: tuple(tuple(rows) for rows in by_part.values()) for metric, by_part in grouped.items()}
    return Plan(adapter, frozenset(canonical), canonical, parts, gpu)


# The labels every key function places itself (engine and target come from the exporter).
_KEYED = frozenset({Label.ENGINE, Label.TARGET, Label.MODEL, Label.OUTCOME, Label.GPU})

_ACCEPTED_TYPES = {
    Kind.GAUGE: ("gauge", "unknown"),
    Kind.COUNTER: ("counter",),
    Kind.HISTOGRAM: ("histogram",),
}


def _index(plan: Plan, families: Iterable[Family]) -> dict[str, Family]:
    """Families by the name rows use; the canonical spelling beats a prefix alias."""
    exact: dict[str, Family] = {}
    aliased: dict[str, Family] = {}
    for family in families:
        name = plan.canonical.get(family.name)
        if name is None:
            continue
        index = exact if family.name == name else aliased
        samples = family.samples
        if index is aliased:  # rename the samples too: ray_vllm:x_bucket -> vllm:x_bucket
            cut = len(family.name)
            samples = [(name + s[0][cut:], s[1], s[2], s[3]) for s in samples]
        earlier = index.get(name)
        if earlier is None:
            index[name] = Family(name, family.type, family.help, samples, family.duplicates)
        elif earlier.type != family.type:
            raise ParseError(f"conflicting TYPE lines for {family.name}: {earlier.type} and {family.type}")
        else:  # the same family twice in one payload: prometheus_client splits it; join it again
            index[name] = Family(name, family.type, family.help, earlier.samples + samples,
                                 earlier.duplicates + family.duplicates)
    return {**aliased, **exact}


class _RowReader:
    """Reads one row's contribution: {label key: value} for the row's metric."""

    def __init__(self, plan: Plan, index: dict[str, Family], default_model: str):
        self.adapter = plan.adapter
        self.index = index
        self.default_model = default_model
        self.folded = 0  # engine samples whose label value was outside its set (see _KNOWN_VALUES)

    def family(self, row: Row) -> Family | None:
        family = self.index.get(row.source)
        if family is None or family.type not in _ACCEPTED_TYPES[row.source_kind]:
            return None
        if row.requires is not None and row.requires not in self.index:
            return None
        return family

    def selected(self, row: Row, family: Family) -> list[Sample]:
        if not row.where:
            return family.samples
        patterns = [(label, re.compile(pattern)) for label, pattern in row.where.items()]
        return [s for s in family.samples if all(label in s[1] and p.fullmatch(s[1][label]) for label, p in patterns)]

    def key_of(self, row: Row) -> Callable[[Labels], LabelKey | None]:
        """A function from an engine sample's labels to the row's output key, specialised per row
        (it runs once per sample); None for a sample that belongs to no output series (a GPU
        series without a GPU label: not a device of this target)."""
        if Label.GPU in row.metric.labels:
            gpu_labels = self.adapter.gpu_labels

            def gpu_key(labels: Labels) -> LabelKey | None:
                for g in gpu_labels:
                    if g in labels:
                        return (labels[g],)
                return None

            return gpu_key
        model_label, default = self.adapter.model_label, self.default_model
        extra = [label for label in row.metric.labels if label not in _KEYED]
        if extra:
            return self._generic_key_of(row, extra)
        if Label.OUTCOME in row.metric.labels:
            if row.outcome is not None:
                fixed = row.outcome.value
                if model_label is None:
                    return lambda labels: (default, fixed)
                return lambda labels: (labels.get(model_label, default), fixed)
            outcomes = row.outcomes
            assert outcomes is not None
            if model_label is None:
                return lambda labels: (default, outcomes.of(labels.get(outcomes.label, "")).value)
            return lambda labels: (labels.get(model_label, default), outcomes.of(labels.get(outcomes.label, "")).value)
        if model_label is None:
            return lambda labels: (default,)
        return lambda labels: (labels.get(model_label, default),)

    def _generic_key_of(self, row: Row, extra: list[Label]) -> Callable[[Labels], LabelKey | None]:
        """Keys of a metric with labels of its own (e.g. a waiting reason), read as ``row.labels``
        says; the model first, then the outcome, then the metric's other labels in its order."""
        model_label, default = self.adapter.model_label, self.default_model
        # Every such label has its set of values: an engine cannot mint label values.
        engine_labels = [(row.labels.get(label.value, label.value), _KNOWN_VALUES[label]) for label in extra]
        outcome_of: Callable[[Labels], str] | None = None
        if Label.OUTCOME in row.metric.labels:
            if row.outcome is not None:
                fixed = row.outcome.value
                outcome_of = lambda labels: fixed  # noqa: E731
            else:
                outcomes = row.outcomes
                assert outcomes is not None
                outcome_of = lambda labels: outcomes.of(labels.get(outcomes.label, "")).value  # noqa: E731

        def key(labels: Labels) -> LabelKey | None:
            values = [default if model_label is None else labels.get(model_label, default)]
            if outcome_of is not None:
                values.append(outcome_of(labels))
            for name, known in engine_labels:
                value = labels.get(name)
                if value is None:
                    return None
                if value not in known:
                    self.folded += 1
                    value = WaitingReason.OTHER.value
                values.append(value)
            return tuple(values)

        return key

    def read(self, row: Row) -> dict[LabelKey, Value] | None:
        """The row's data, or None when the payload lacks the row's family (or its selected series)."""
        family = self.family(row)
        if family is None:
            return None
        if family.duplicates:
            raise ParseError(f"duplicate series in {family.name}")
        samples = self.selected(row, family)
        if row.where and not samples:
            return None
        multiplier, divisor = row.unit.value
        metric = row.metric
        key_of = self.key_of(row)
        out: dict[LabelKey, Value] = {}
        counts: dict[LabelKey, int] = defaultdict(int)

        def put(key: LabelKey | None, value: Value) -> None:
            if key is None:
                return
            counts[key] += 1
            if key not in out:
                out[key] = value
            elif isinstance(value, Histogram):
                out[key].add(value)  # type: ignore[union-attr]
            else:
                out[key] += value  # type: ignore[operator]

        if metric.kind is Kind.HISTOGRAM and row.count_source is None:
            out.update(_histograms(row, samples, key_of, multiplier, divisor))
        elif row.count_source is not None:
            counted = self.index.get(row.count_source)
            count_of = {tuple(sorted(s[1].items())): s[2] for s in (counted.samples if counted else [])}
            for _, labels, value, _ in samples:
                count = count_of.get(tuple(sorted(labels.items())))
                if count is not None:
                    put(key_of(labels), Histogram({math.inf: count}, value * multiplier / divisor, count))
        else:
            wanted_name = _value_sample_name(row)
            scaled = multiplier != 1 or divisor != 1
            for name, labels, value, _ in samples:
                if name != wanted_name:
                    continue
                if row.per is not None:
                    denominator = _matching(family, labels, row.per)
                    if not denominator:
                        continue  # no capacity reported (e.g. KV cache disabled): no ratio
                    value = value / denominator
                put(key_of(labels), value * multiplier / divisor if scaled else value)
        if metric.kind is Kind.GAUGE and metric.combine is Combine.MEAN:
            for key, n in counts.items():
                out[key] = out[key] / n  # type: ignore[operator]
        return out


def _histograms(row: Row, samples: list[Sample], key_of: Callable[[Labels], LabelKey | None], multiplier: int,
                divisor: int) -> dict[LabelKey, Histogram]:
    """Histograms per output key. Series that collapse onto one key are merged by adding their
    buckets, sums and counts, so no grouping by the full label set is needed."""
    merged: dict[LabelKey, Histogram] = {}
    bucket, total, count = row.source + "_bucket", row.source + "_sum", row.source + "_count"
    scaled = multiplier != 1 or divisor != 1
    for name, labels, value, _ in samples:
        key = key_of(labels)
        if key is None:
            continue
        hist = merged.get(key)
        if hist is None:
            hist = merged[key] = Histogram({}, 0.0, 0.0)
        if name == bucket:
            try:
                bound = float(labels["le"])
            except (KeyError, ValueError):
                raise ParseError(f"{name} without a valid le label") from None
            if scaled:
                bound = bound * multiplier / divisor
            buckets = hist.buckets
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name == total:
            hist.sum += value * multiplier / divisor if scaled else value
        elif name == count:
            hist.count += value
    return merged


def _value_sample_name(row: Row) -> str:
    if row.take is Take.HISTOGRAM_SUM:
        return row.source + "_sum"
    if row.source_kind is Kind.COUNTER:
        return row.source + "_total"
    return row.source


def _matching(family: Family, labels: dict[str, str], overrides) -> float | None:
    wanted = {**labels, **overrides}
    for _, other, value, _ in family.samples:
        if other == wanted:
            return value
    return None


def _seen_models(plan: Plan, index: dict[str, Family]) -> set[str]:
    label = plan.adapter.model_label
    if label is None:
        return set()
    return {labels[label] for family in index.values() for _, labels, _, _ in family.samples if label in labels}


def normalize(plan: Plan, families: Iterable[Family], model: str | None = None,
              max_models: int | None = None, caps: Caps | None = None) -> Normalized:
    """Unified series of one payload. ``model`` names series whose engine gives no model label;
    without it, the payload's only model (or "") is used. Beyond ``max_models`` models (in name
    order), and beyond ``caps``, the series are dropped and counted, so one engine cannot flood
    Prometheus."""
    index = _index(plan, families)
    if model is None:
        seen = _seen_models(plan, index)
        model = seen.pop() if len(seen) == 1 else ""
    reader = _RowReader(plan, index, model)
    result = Normalized()
    for metric, parts in plan.parts.items():
        totals: dict[int, dict[LabelKey, Value]] = {}  # per alternative
        available = False
        for aliases in parts:
            total = totals.setdefault(aliases[0].alternative, {})
            chosen: dict[str, Row] = {}  # selection unit (model or gpu) -> first row with data for it
            contributions = []
            for row in aliases:
                data = reader.read(row)
                if data is None:
                    continue
                available = available or row.provides
                contributions.append((row, data))
                for key in data:
                    chosen.setdefault(key[0], row)
            for row, data in contributions:
                for key, value in data.items():
                    if chosen[key[0]] is not row:
                        continue
                    _accumulate(total, key, value, row.sign)
        total = _first_alternative(totals)
        result.available[metric] = available
        if Label.OUTCOME in metric.labels:
            _zero_missing_outcomes(total)
        if total:
            result.series[metric] = total
    result.dropped_series += reader.folded
    cap_labels(result, max_models, caps)
    return result


def _first_alternative(totals: dict[int, dict[LabelKey, Value]]) -> dict[LabelKey, Value]:
    """Per selection unit (model or GPU), the series of the lowest-numbered alternative that has
    any for it."""
    if len(totals) == 1:
        return next(iter(totals.values()))
    out: dict[LabelKey, Value] = {}
    claimed: set[str] = set()
    for alternative in sorted(totals):
        series = totals[alternative]
        units = {key[0] for key in series}
        for key, value in series.items():
            if key[0] not in claimed:
                out[key] = value
        claimed |= units
    return out


def cap_labels(result: Normalized, max_models: int | None, caps: Caps | None) -> None:
    """Drop (and count) the series beyond the caps: over-long label values first, so that one
    cannot take a model's or a GPU's place, then models, then GPUs. A key's first value (the
    model, or the GPU) is the only one copied from the payload: outcomes and the other labels
    come from fixed sets (Outcome, _KNOWN_VALUES)."""
    limit = caps.max_label_bytes if caps is not None else None
    if limit is not None:
        _drop_units(result, lambda metric: True, lambda units: {u for u in units if _too_long(u, limit)})
    if max_models is not None:
        _drop_units(result, lambda metric: Label.MODEL in metric.labels,
                    lambda units: set(sorted(units)[max_models:]) if len(units) > max_models else set())
    if caps is not None and caps.max_gpus is not None:
        max_gpus = caps.max_gpus
        _drop_units(result, lambda metric: Label.GPU in metric.labels,
                    lambda units: set(sorted(units)[max_gpus:]) if len(units) > max_gpus else set())


def _too_long(value: str, limit: int) -> bool:
    return len(value) > limit or (len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit)


def _drop_units(result: Normalized, applies: Callable[[UnifiedMetric], bool],
                over: Callable[[set[str]], set[str]]) -> None:
    """Drop the series of the units (models or GPUs: a key's first value) that ``over`` picks
    among those of the metrics that ``applies`` to, and count them."""
    metrics = [metric for metric in result.series if applies(metric)]
    units = {key[0] for metric in metrics for key in result.series[metric]}
    dropped = over(units)
    if not dropped:
        return
    for metric in metrics:
        series = result.series[metric]
        if len(dropped) * 2 < len(units):
            gone = [key for key in series if key[0] in dropped]
            for key in gone:
                del series[key]
            result.dropped_series += len(gone)
        else:  # most go: build the kept ones instead
            kept = {key: value for key, value in series.items() if key[0] not in dropped}
            result.dropped_series += len(series) - len(kept)
            result.series[metric] = kept


def _zero_missing_outcomes(total: dict[LabelKey, Value]) -> None:
    """Give every model all outcomes, so error ratios read 0 rather than nothing."""
    for model in {key[0] for key in total}:
        for outcome in Outcome:
            total.setdefault((model, outcome.value), 0.0)


def _accumulate(total: dict[LabelKey, Value], key: LabelKey, value: Value, sign: int) -> None:
    if isinstance(value, Histogram):
        if key not in total:
            total[key] = Histogram({}, 0.0, 0.0)
        total[key].add(value, sign)  # type: ignore[union-attr]
    else:
        total[key] = total.get(key, 0.0) + sign * value  # type: ignore[operator]
