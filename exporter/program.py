"""``normalize`` compiled for one layout: from a payload's numbers straight to unified series.

A payload read through its target's layout (``exporter.parse.Layout``) has the last payload's
series with new values, so what ``normalize`` does with it is fixed: which values land in which
unified series, scaled, summed or subtracted in which order. ``trace`` runs ``normalize`` once
on symbolic values that write down each arithmetic step as Python source, and compiles the
steps into one function from the layout's numbers to the unified values; each later scrape
through that layout runs the function and fills a copy of the traced structure, without
building families. The program does the same float operations in the same order, so its result
is normalize's, bit for bit (tests check it against normalize on every capture). Where normalize
branches on a value (TRT-LLM's used/max ratio is skipped while max is 0), the trace takes the
branch the current values take and the program checks first that its values take it too; when
they do not, that scrape goes through ``normalize``. What cannot be traced (a comparison of
values, a sum too deep to compile) keeps calling ``normalize``.

The generated source contains only ``v[index]``, numeric literals, ``+ - * /`` and ``bool()``:
the technique ``collections.namedtuple`` and ``dataclasses`` use, never fed with payload text.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from infersight.exporter.normalize import Histogram, Normalized, Plan, normalize
from infersight.exporter.parse import Family, Layout, layout_families, parse, values_through_layout

# Values per generated function. Compiling one large expression takes memory the process then
# keeps (2,000 values: a 12 MB peak for a 12k-sample payload; 100: 2.5 MB); calls are cheap.
_CHUNK = 100


class Untraceable(Exception):
    """The plan's arithmetic on this payload cannot be written down (or is beyond the compiler)."""


_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class _Step:
    """A value being traced: the Python source that computes it from ``v`` (the numbers), and
    what it is for the numbers being traced."""

    __slots__ = ("source", "precedence", "value", "tracer")

    def __init__(self, source: str, value: float, tracer: _Tracer, precedence: int = 0):
        self.source = source
        self.value = value
        self.tracer = tracer
        self.precedence = precedence  # 0: an atom, 1: * or /, 2: + or -

    def _binary(self, op: str, other: object, reflected: bool = False) -> _Step:
        precedence = 1 if op in "*/" else 2
        other = self.tracer.operand(other)
        left, right = (other, self) if reflected else (self, other)
        # Python evaluates a - b - c as (a - b) - c: the left side needs parentheses only when it
        # binds looser than the operator, the right side also when it binds as tightly.
        left_source = f"({left.source})" if left.precedence > precedence else left.source
        right_source = f"({right.source})" if right.precedence >= precedence else right.source
        return _Step(f"{left_source} {op} {right_source}", _OPERATORS[op](left.value, right.value), self.tracer,
                     precedence)

    # a + b, b + a, ... for each operator in _OPERATORS, as methods (set after the class).

    def __bool__(self) -> bool:
        """A branch on a value (a ratio skipped while its denominator is 0): take the branch these
        numbers take, and make the program check, before it runs, that its numbers take it too."""
        taken = bool(self.value)
        self.tracer.guards.append((self.source, taken))
        return taken

    def __eq__(self, other: object) -> bool:
        raise Untraceable("a comparison of a sample value")

    __lt__ = __le__ = __gt__ = __ge__ = __ne__ = __eq__
    __hash__ = None  # type: ignore[assignment]

    def __float__(self) -> float:
        raise Untraceable("a sample value used as a number")


def _operator_method(op: str, reflected: bool):
    def method(self: _Step, other: object) -> _Step:
        return self._binary(op, other, reflected)
    return method


for _name, _op in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/")):
    setattr(_Step, f"__{_name}__", _operator_method(_op, False))
    setattr(_Step, f"__r{_name}__", _operator_method(_op, True))


class _Tracer:
    def __init__(self) -> None:
        self.guards: list[tuple[str, bool]] = []  # (source, the truth value the trace took)

    def operand(self, value: object) -> _Step:
        if isinstance(value, _Step):
            return value
        if type(value) is int or (type(value) is float and math.isfinite(value)):
            source = repr(value)
            return _Step(f"({source})" if source.startswith("-") else source, value, self)
        raise Untraceable(f"a {type(value).__name__} in the arithmetic")

    def symbolic(self, layout: Layout) -> list[Family]:
        """The layout's families with ``v[i]`` for the value of kept sample ``i``."""
        values = layout.values
        assert values is not None
        families = []
        for name, typ, doc, duplicates, names, labels, start, _end in layout.families:
            samples = [(n, l, _Step(f"v[{start + i}]", values[start + i], self), None)
                       for i, (n, l) in enumerate(zip(names, labels))]
            families.append(Family(name, typ, doc, samples, duplicates))
        return families


def _compile(sources: list[str], name: str) -> list:
    """Functions of ``v`` giving the values of ``sources``, ``_CHUNK`` at a time, as tuples."""
    functions = []
    for start in range(0, len(sources), _CHUNK):
        code = f"def chunk(v):\n    return ({', '.join(sources[start:start + _CHUNK])},)\n"
        namespace: dict = {}
        try:
            exec(compile(code, f"<infersight program {name}>", "exec"), {}, namespace)
        except (RecursionError, SyntaxError, MemoryError) as exc:  # e.g. thousands of series summed into one
            raise Untraceable(f"cannot compile: {type(exc).__name__}") from None
        functions.append(namespace["chunk"])
    return functions


@dataclass(frozen=True)
class Program:
    """What normalize gives for one layout, as a function of the layout's numbers."""

    functions: tuple  # each gives a chunk of the output values, in ``shape`` order
    shape: tuple  # per metric: (metric, keys, histogram bounds per key or None for plain values)
    available: dict
    dropped_series: int
    guards: tuple  # functions giving the values the trace branched on (true or false, as traced)
    taken: tuple

    def run(self, values: Sequence[float]) -> Normalized | None:
        """The unified series for ``values``; None when they take another branch than the trace."""
        if self.guards and tuple(map(bool, (x for guard in self.guards for x in guard(values)))) != self.taken:
            return None
        out = [x for function in self.functions for x in function(values)]
        result = Normalized({}, dict(self.available), self.dropped_series)
        at = 0
        for metric, keys, bounds in self.shape:
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


def trace(plan: Plan, layout: Layout, model: str | None = None, max_models: int | None = None) -> Program:
    """Compile normalize for the layout's families, on the branches its current values take.
    Raises Untraceable, and ParseError where normalize would."""
    tracer = _Tracer()
    traced = normalize(plan, tracer.symbolic(layout), model, max_models)
    sources: list[str] = []
    shape = []
    for metric, series in traced.series.items():
        keys = list(series)
        if not any(isinstance(value, Histogram) for value in series.values()):
            sources += [tracer.operand(value).source for value in series.values()]
            shape.append((metric, keys, None))
            continue
        bounds = []
        for value in series.values():
            if not isinstance(value, Histogram):
                raise Untraceable(f"{metric.name} mixes histograms and plain values")
            bounds.append(list(value.buckets))
            sources += [tracer.operand(count).source for count in value.buckets.values()]
            sources += [tracer.operand(value.sum).source, tracer.operand(value.count).source]
        shape.append((metric, keys, bounds))
    name = str(plan.adapter.engine)
    return Program(tuple(_compile(sources, name)), tuple(shape), dict(traced.available), traced.dropped_series,
                   tuple(_compile([source for source, _ in tracer.guards], name)),
                   tuple(taken for _, taken in tracer.guards))


def normalize_parsed(plan: Plan, families: list[Family], layout: Layout | None, model: str | None = None,
                     max_models: int | None = None) -> Normalized:
    """``normalize(plan, families, ...)``, through the layout's program when ``families`` were just
    read through ``layout`` (tracing it the first time)."""
    if layout is None or layout.values is None:
        return normalize(plan, families, model, max_models)
    key = (plan.key, model, max_models)
    programs = layout.programs
    if key not in programs:
        try:
            programs[key] = trace(plan, layout, model, max_models)
        except Untraceable:
            programs[key] = None
        except Exception:  # normalize refuses the payload (ParseError): the real call says why
            return normalize(plan, families, model, max_models)
    program = programs[key]
    result = program.run(layout.values) if program is not None else None
    return result if result is not None else normalize(plan, families, model, max_models)


def parse_and_normalize(text: str, plan: Plan, *, openmetrics: bool = False, series: dict | None = None,
                        layout: Layout | None = None, model: str | None = None,
                        max_models: int | None = None) -> Normalized:
    """``normalize(plan, parse(text, ...))`` for one target's payload. Once its layout has a
    program, a payload with that layout goes from its numbers to unified series without
    building families. Raises ParseError as parse and normalize do."""
    if not openmetrics and series is not None and layout is not None and layout.pieces is not None:
        program = layout.programs.get((plan.key, model, max_models))
        if program is not None:
            values = values_through_layout(text, plan.wanted, layout)
            if values is not None:
                result = program.run(values)
                if result is not None:
                    return result
                return normalize(plan, layout_families(layout, values), model, max_models)
    families = parse(text, plan.wanted, openmetrics=openmetrics, series=series, layout=layout)
    return normalize_parsed(plan, families, layout, model, max_models)
