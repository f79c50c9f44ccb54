"""The vocabulary of adapter tables: a ``Row`` maps one engine metric onto one unified metric.

Adapters contain no code paths, only tables. When a case cannot be expressed, add a field here
and teach ``exporter.normalize`` about it; never special-case an engine in the normalizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from infersight.exporter.schema import Engine, Kind, Outcome, UnifiedMetric


class Unit(Enum):
    """The unit an engine reports in; values are converted to the schema's base unit.

    Each member is (multiplier, divisor); division keeps 100 ms -> 0.1 s exact.
    """

    BASE = (1, 1)
    MILLISECONDS = (1, 1_000)
    MICROSECONDS = (1, 1_000_000)
    PERCENT = (1, 100)
    MEBIBYTES = (1_048_576, 1)
    # Millijoules -> joules. Equal to MILLISECONDS' (1, 1000), so Python makes it an alias of that
    # member; it is named for the reader of an adapter table.
    MILLIJOULES = (1, 1_000)


class Take(Enum):
    """Which part of an engine family a row reads."""

    VALUE = "value"  # a gauge's or counter's value, or a whole histogram
    HISTOGRAM_SUM = "sum"  # the _sum of a histogram, read as a counter (e.g. tokens per request)


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Outcomes:
    """How a finish-reason label maps onto ``Outcome``; values not listed get ``default``."""

    label: str
    mapping: Mapping[str, Outcome]
    default: Outcome

    def of(self, value: str) -> Outcome:
        return self.mapping.get(value, self.default)


@dataclass(frozen=True)
class Row:
    """One engine family feeding one unified metric.

    Rows of one metric that share a ``part`` are aliases: per model, the first row (in table
    order) with data wins. Rows in different parts add up (e.g. Triton's success and failure
    counters both feed ``llm_requests_total``).
    """

    metric: UnifiedMetric
    source: str  # family name as parsed: counters without their _total suffix
    kind: Kind | None = None  # the engine family's type, when it differs from the metric's
    unit: Unit = Unit.BASE
    take: Take = Take.VALUE
    part: str = ""
    where: Mapping[str, str] = field(default_factory=dict)  # label -> regex, full match
    outcome: Outcome | None = None  # a fixed outcome for every sample of the row
    outcomes: Outcomes | None = None  # an outcome read from a label
    per: Mapping[str, str] | None = None  # divide by the sample of this family matching these labels
    count_source: str | None = None  # a cumulative-sum counter becomes a +Inf-only histogram counted by this family
    # A histogram's default upper bounds in the engine's unit (empty: not known), so that SLO
    # thresholds can be checked against what the engine can express.
    buckets: tuple[float, ...] = ()
    sign: int = 1  # -1 subtracts the row (a total that includes another outcome)
    # The row is read only when this family is in the payload too: a value derived from another
    # family (SGLang's prefix-cache queries are its prompt tokens) counts only beside the family
    # that shows the feature exists (its cached tokens).
    requires: str | None = None
    # Whether data from this row alone makes the signal "available". False for a correction of
    # another row (aborts subtracted from finished requests, the API server's own errors).
    provides: bool = True
    # Rows of one metric form alternatives: per model (or GPU) the lowest-numbered alternative with
    # data wins, and within it parts add and aliases resolve as usual. A total an engine reports
    # (alternative 0) beats the sum of its parts (alternative 1).
    alternative: int = 0
    # Labels of the unified metric other than engine, model, target, gpu and outcome, read from
    # the engine sample: {unified label: engine label}. A sample without the label is skipped.
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "where", _frozen(self.where))
        object.__setattr__(self, "labels", _frozen(self.labels))
        if self.per is not None:
            object.__setattr__(self, "per", _frozen(self.per))

    @property
    def source_kind(self) -> Kind:
        if self.kind is not None:
            return self.kind
        if self.take is Take.HISTOGRAM_SUM:
            return Kind.HISTOGRAM
        return self.metric.kind


@dataclass(frozen=True)
class Adapter:
    """Everything infersight knows about one engine's metrics, as data."""

    engine: Engine | None  # None for a GPU source such as dcgm-exporter
    rows: tuple[Row, ...]
    model_label: str | None  # the engine's label for the served model (None: the engine has none)
    gpu_labels: tuple[str, ...] = ()  # labels that may carry a GPU UUID, first present wins
    # Family-name prefixes rewritten before matching rows: {seen prefix: prefix the rows use}.
    prefix_aliases: Mapping[str, str] = field(default_factory=dict)
    # Family names (as parsed: counters without _total, rows' spelling) that identify this engine
    # for --engine auto besides the families its rows read; see adapters.detection_scores.
    detect: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix_aliases", _frozen(self.prefix_aliases))
