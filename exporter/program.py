"""``normalize`` planned once per payload layout, then replayed on each scrape's numbers.

Why: a target's payloads repeat the same series with new values (``exporter.parse.Layout``), so
what normalize does with them is fixed by the layout: which sample values land in which unified
series, scaled, summed, subtracted or averaged in which order. Running normalize on the
12k-sample vLLM payload costs about 9 ms a scrape; replaying its arithmetic from a plan, about 1.

The plan is data. ``plan_layout`` walks the layout's families as normalize does (with normalize's
own indexing, row selection and label keys), but where normalize computes a number it writes
down how: an *expression* over the payload's sample positions, made of

    ("v", i)                 the value of the layout's sample i
    a number                 a constant (0.0 where normalize starts a sum from it, a sign, a unit)
    ("+", a, b, c, ...)      a sum, added left to right as normalize adds it: (a + b) + c
    ("*", a, b), ("/", a, b)

``LayoutPlan.run`` evaluates the expressions that have one shape together: per shape, one
``itemgetter`` per sample position in it and one ``map`` per operator, in plain Python.

What it keeps: normalize's result bit for bit. The same float operations run in the same order;
only multiplications and divisions by 1 are left out, which IEEE 754 makes exact (x * 1 and x / 1
are x, signed zeros and infinities included; NaN stays NaN). ``tests/test_program.py`` checks
the plan against normalize on every capture, with NaN, infinities and signed zeros. Where
normalize branches on a value (TRT-LLM's used/max ratio is skipped while max is 0) the plan
records the branch this payload takes as a guard, and a scrape that goes the other way is handed
to normalize. The arithmetic here mirrors normalize's: a change there needs the same change
here, and the differential tests say where one was missed.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from infersight.exporter.adapters.base import Row
from infersight.exporter.normalize import (Caps, Histogram, LabelKey, Normalized, Plan, _first_alternative, _index,
                                           _matching, _RowReader, _seen_models, _value_sample_name,
                                           _zero_missing_outcomes, cap_labels, normalize)
from infersight.exporter.parse import (Family, Layout, ParseError, _picker, layout_families, parse,
                                       values_through_layout)
from infersight.exporter.schema import Combine, Kind, Label

Expression = tuple | float | int  # see the module docstring
_OPERATORS = {"+": operator.add, "*": operator.mul, "/": operator.truediv}
# A sum grows by copying its tuple: thousands of series added into one value (ranks of one model)
# would take quadratic time to plan. Beyond this many terms the layout is left to normalize.
MAX_TERMS = 1000


class Unplannable(Exception):
    """Normalize's result for this layout has a form the plan does not describe."""


# --- Expressions: normalize's arithmetic, written down ----------------------------------------


def _plus(total: Expression, term: Expression) -> Expression:
    """``total + term``. A sum gains the term at its end: ((a + b) + c) is ("+", a, b, c)."""
    if type(total) is tuple and total[0] == "+":
        if len(total) > MAX_TERMS:
            raise Unplannable(f"a sum of more than {MAX_TERMS} terms")
        return total + (term,)
    return ("+", total, term)


def _signed(sign: int, value: Expression) -> Expression:
    """``sign * value`` (1 * x is x)."""
    return value if sign == 1 else ("*", sign, value)


def _scaled(value: Expression, multiplier: int, divisor: int) -> Expression:
    """``value * multiplier / divisor`` (x * 1 and x / 1 are x)."""
    if multiplier != 1:
        value = ("*", value, multiplier)
    return value if divisor == 1 else ("/", value, divisor)


def _add_histogram(into: Histogram, other: Histogram, sign: int = 1) -> None:
    """``Histogram.add``."""
    for bound, count in other.buckets.items():
        into.buckets[bound] = _plus(into.buckets.get(bound, 0.0), _signed(sign, count))  # type: ignore[arg-type]
    into.sum = _plus(into.sum, _signed(sign, other.sum))  # type: ignore[assignment]
    into.count = _plus(into.count, _signed(sign, other.count))  # type: ignore[assignment]


def _read(reader: _RowReader, row: Row, values: Sequence[float],
          guards: list[tuple[int, bool]]) -> dict[LabelKey, Expression | Histogram] | None:
    """``_RowReader.read``: the row's expressions by output key. The samples' values are their
    positions; ``values`` are read only where normalize branches on one (recorded in ``guards``)."""
    family = reader.family(row)
    if family is None:
        return None
    if family.duplicates:
        raise ParseError(f"duplicate series in {family.name}")
    samples = reader.selected(row, family)
    if row.where and not samples:
        return None
    multiplier, divisor = row.unit.value
    metric = row.metric
    key_of = reader.key_of(row)
    out: dict = {}
    counts: dict[LabelKey, int] = defaultdict(int)

    def put(key: LabelKey | None, value: Expression | Histogram) -> None:
        if key is None:  # normalize: a sample of no output series
            return
        counts[key] += 1
        if key not in out:
            out[key] = value
        elif isinstance(value, Histogram):
            _add_histogram(out[key], value)
        else:
            out[key] = _plus(out[key], value)

    if metric.kind is Kind.HISTOGRAM and row.count_source is None:
        out.update(_histograms(row, samples, key_of, multiplier, divisor))
    elif row.count_source is not None:
        counted = reader.index.get(row.count_source)
        count_of = {tuple(sorted(s[1].items())): s[2] for s in (counted.samples if counted else [])}
        for _, labels, position, _ in samples:
            count = count_of.get(tuple(sorted(labels.items())))
            if count is not None:
                put(key_of(labels), Histogram({math.inf: ("v", count)}, _scaled(("v", position), multiplier, divisor),
                                              ("v", count)))
    else:
        wanted_name = _value_sample_name(row)
        for name, labels, position, _ in samples:
            if name != wanted_name:
                continue
            value: Expression = ("v", position)
            if row.per is not None:
                denominator = _matching(family, labels, row.per)
                if denominator is None:
                    continue
                taken = bool(values[denominator])  # normalize: no ratio while the denominator is 0
                guards.append((denominator, taken))
                if not taken:
                    continue
                value = ("/", value, ("v", denominator))
            put(key_of(labels), _scaled(value, multiplier, divisor))
    if metric.kind is Kind.GAUGE and metric.combine is Combine.MEAN:
        for key, n in counts.items():
            out[key] = out[key] if n == 1 else ("/", out[key], n)
    return out


def _histograms(row: Row, samples: list, key_of, multiplier: int, divisor: int) -> dict[LabelKey, Histogram]:
    """``normalize._histograms``."""
    merged: dict[LabelKey, Histogram] = {}
    bucket, total, count = row.source + "_bucket", row.source + "_sum", row.source + "_count"
    scaled = multiplier != 1 or divisor != 1
    for name, labels, position, _ in samples:
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
            hist.buckets[bound] = _plus(hist.buckets.get(bound, 0.0), ("v", position))  # type: ignore[arg-type]
        elif name == total:
            hist.sum = _plus(hist.sum, _scaled(("v", position), multiplier, divisor))  # type: ignore[assignment]
        elif name == count:
            hist.count = _plus(hist.count, ("v", position))  # type: ignore[assignment]
    return merged


def _accumulate(total: dict, key: LabelKey, value: Expression | Histogram, sign: int) -> None:
    """``normalize._accumulate``."""
    if isinstance(value, Histogram):
        if key not in total:
            total[key] = Histogram({}, 0.0, 0.0)
        _add_histogram(total[key], value, sign)
    else:
        total[key] = _plus(total.get(key, 0.0), _signed(sign, value))


def _expressions(plan: Plan, families: list[Family], values: Sequence[float], model: str | None,
                 max_models: int | None, guards: list[tuple[int, bool]], caps: Caps | None = None) -> Normalized:
    """``normalize(plan, families, model, max_models, caps)`` with expressions for values; the
    samples' values in ``families`` are their positions in ``values``."""
    index = _index(plan, families)
    if model is None:
        seen = _seen_models(plan, index)
        model = seen.pop() if len(seen) == 1 else ""
    reader = _RowReader(plan, index, model)
    result = Normalized()
    for metric, parts in plan.parts.items():
        totals: dict[int, dict] = {}
        available = False
        for aliases in parts:
            total = totals.setdefault(aliases[0].alternative, {})
            chosen: dict[str, Row] = {}
            contributions = []
            for row in aliases:
                data = _read(reader, row, values, guards)
                if data is None:
                    continue
                available = available or row.provides
                contributions.append((row, data))
                for key in data:
                    chosen.setdefault(key[0], row)
            for row, data in contributions:
                for key, value in data.items():
                    if chosen[key[0]] is row:
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


# --- The plan: expressions grouped by shape, evaluated a shape at a time ----------------------


def _shape(expression: Expression, positions: list[int]) -> Expression:
    """``expression`` with its sample positions numbered in order of appearance (appended to
    ``positions``): expressions that differ only in which samples they read share a shape.
    (Shapes compare their constants by value; the only float constant is 0.0, never -0.0.)"""
    if type(expression) is not tuple:
        return expression
    if expression[0] == "v":
        positions.append(expression[1])
        return ("v", len(positions) - 1)
    return (expression[0], *[_shape(operand, positions) for operand in expression[1:]])


def _evaluate(shape: Expression, columns: list[tuple[float, ...]], size: int) -> Iterable[float]:
    """The values of ``size`` expressions of one shape; ``columns[k]`` holds each one's k-th
    sample value. Operands are evaluated first, then combined left to right, as Python does;
    lazily, each operand's values consumed once, by its operator (a chain of lazy maps recurses
    in C as it is consumed: MAX_TERMS keeps it short)."""
    if type(shape) is not tuple:
        return repeat(shape, size)
    if shape[0] == "v":
        return columns[shape[1]]
    combine = _OPERATORS[shape[0]]
    operands = [_evaluate(operand, columns, size) for operand in shape[1:]]
    result = operands[0]
    for operand in operands[1:]:
        result = map(combine, result, operand)
    return result


@dataclass(frozen=True)
class LayoutPlan:
    """What normalize gives for one layout, as data over the layout's sample values."""

    groups: tuple  # (shape, one picker per sample position in the shape, how many expressions)
    order: Callable  # picks the unified values, in ``series`` order, from the groups' results
    series: tuple  # per metric: (metric, keys, histogram bounds per key or None for plain values)
    available: dict
    dropped_series: int
    guards: tuple  # (sample position, whether its value was true) where normalize branched on one

    def run(self, values: Sequence[float]) -> Normalized | None:
        """The unified series for ``values``; None when they take another branch than the plan."""
        for position, taken in self.guards:
            if bool(values[position]) is not taken:
                return None
        results: list[float] = []
        for shape, pickers, size in self.groups:
            results += _evaluate(shape, [pick(values) for pick in pickers], size)
        out = self.order(results)
        result = Normalized({}, dict(self.available), self.dropped_series)
        at = 0
        for metric, keys, bounds in self.series:
            if bounds is None:
                end = at + len(keys)
                result.series[metric] = dict(zip(keys, out[at:end]))
                at = end
                continue
            series = result.series[metric] = {}
            for key, key_bounds in zip(keys, bounds):
                end = at + len(key_bounds)
                series[key] = Histogram(dict(zip(key_bounds, out[at:end])), out[end], out[end + 1])
                at = end + 2
        return result


def plan_layout(plan: Plan, layout: Layout, model: str | None = None, max_models: int | None = None,
                caps: Caps | None = None) -> LayoutPlan:
    """Normalize's arithmetic for the layout's families, on the branches its current values take.
    Raises Unplannable, and ParseError where normalize would."""
    values = layout.values
    assert values is not None
    guards: list[tuple[int, bool]] = []
    planned = _expressions(plan, layout_families(layout, range(len(values))), values, model, max_models, guards,
                           caps)
    expressions: list[Expression] = []
    series = []
    for metric, by_key in planned.series.items():
        keys = list(by_key)
        if not any(isinstance(value, Histogram) for value in by_key.values()):
            expressions += by_key.values()
            series.append((metric, keys, None))
            continue
        bounds = []
        for value in by_key.values():
            if not isinstance(value, Histogram):
                raise Unplannable(f"{metric.name} mixes histograms and plain values")
            bounds.append(list(value.buckets))
            expressions += [*value.buckets.values(), value.sum, value.count]
        series.append((metric, keys, bounds))
    # Group by shape; remember where each expression's value lands among the groups' results.
    by_shape: dict[Expression, tuple[list[list[int]], list[int]]] = {}
    for slot, expression in enumerate(expressions):
        positions: list[int] = []
        shape = _shape(expression, positions)
        columns, slots = by_shape.setdefault(shape, ([[] for _ in positions], []))
        for column, position in zip(columns, positions):
            column.append(position)
        slots.append(slot)
    groups, result_slot = [], [0] * len(expressions)
    done = 0
    for shape, (columns, slots) in by_shape.items():
        groups.append((shape, tuple(_picker(column) for column in columns), len(slots)))
        for slot in slots:
            result_slot[slot] = done
            done += 1
    return LayoutPlan(tuple(groups), _picker(result_slot), tuple(series), dict(planned.available),
                      planned.dropped_series, tuple(guards))


def normalize_parsed(plan: Plan, families: list[Family], layout: Layout | None, model: str | None = None,
                     max_models: int | None = None, caps: Caps | None = None) -> Normalized:
    """``normalize(plan, families, ...)``, through the layout's plan when ``families`` were just
    read through ``layout`` (planning it the first time)."""
    if layout is None or layout.values is None:
        return normalize(plan, families, model, max_models, caps)
    key = (plan.key, model, max_models, caps)
    plans = layout.plans
    if key not in plans:
        try:
            plans[key] = plan_layout(plan, layout, model, max_models, caps)
        except Unplannable:
            plans[key] = None
        except Exception:  # normalize refuses the payload (ParseError): the real call says why
            return normalize(plan, families, model, max_models, caps)
    planned = plans[key]
    result = planned.run(layout.values) if planned is not None else None
    return result if result is not None else normalize(plan, families, model, max_models, caps)


def parse_and_normalize(text: str, plan: Plan, *, openmetrics: bool = False, series: dict | None = None,
                        layout: Layout | None = None, model: str | None = None,
                        max_models: int | None = None, caps: Caps | None = None) -> Normalized:
    """``normalize(plan, parse(text, ...))`` for one target's payload. Once its layout has a
    plan, a payload with that layout goes from its numbers to unified series without building
    families. Raises ParseError as parse and normalize do."""
    if not openmetrics and series is not None and layout is not None and layout.pieces is not None:
        planned = layout.plans.get((plan.key, model, max_models, caps))
        if planned is not None:
            values = values_through_layout(text, plan.wanted, layout)
            if values is not None:
                result = planned.run(values)
                if result is not None:
                    return result
                return normalize(plan, layout_families(layout, values), model, max_models, caps)
    families = parse(text, plan.wanted, openmetrics=openmetrics, series=series, layout=layout)
    return normalize_parsed(plan, families, layout, model, max_models, caps)
