"""A layout's plan gives exactly what normalize gives, float for float."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersight.exporter.adapters import ADAPTERS, DCGM, detect_engine
from infersight.tools.bench import vllm_payload
from infersight.exporter.normalize import Histogram, Normalized, compile_plan, normalize
from infersight.exporter.parse import Layout, ParseError, SeriesCache, parse
from infersight.exporter.program import MAX_TERMS, LayoutPlan, _evaluate, normalize_parsed
from infersight.exporter.schema import Engine, M
from tests.conftest import CAPTURES, OWN_FIXTURES, examples

pytestmark = pytest.mark.unit

_VALUE = re.compile(r"(?m)^([^#\n][^\n]* )([^ \n]*)$")


def _with_values(text: str, values: list[str]) -> str:
    """``text`` with each sample line's value replaced, in turn, by one of ``values``."""
    counter = iter(range(10**9))
    return _VALUE.sub(lambda m: m.group(1) + values[next(counter) % len(values)], text)


def _exact(number: float) -> str:
    return "nan" if math.isnan(number) else repr(number)  # repr tells -0.0 from 0.0


def _comparable(result: Normalized) -> tuple:
    series = {
        metric.name: {key: (tuple((_exact(b), _exact(c)) for b, c in value.buckets.items()), _exact(value.sum),
                            _exact(value.count)) if isinstance(value, Histogram) else _exact(value)
                      for key, value in by_key.items()}
        for metric, by_key in result.series.items()}
    return series, {m.name: a for m, a in result.available.items()}, result.dropped_series


def _steady_scrapes(text: str, plan, value_sets: list[list[str]], **options) -> list[tuple[bool, tuple, tuple]]:
    """Scrape ``text`` and then each set of new values through one layout; per scrape: whether it
    was read through the layout, and the plan's and normalize's results."""
    cache, layout = SeriesCache(), Layout()
    parse(text, plan.wanted, series=cache, layout=layout)
    out = []
    for values in value_sets:
        families = parse(_with_values(text, values), plan.wanted, series=cache, layout=layout)
        through_layout = layout.values is not None
        out.append((through_layout, _comparable(normalize_parsed(plan, families, layout, **options)),
                    _comparable(normalize(plan, families, **options))))
    return out


def _readable(path) -> bool:
    text = path.read_text(encoding="utf-8")
    engine = detect_engine(text)
    if engine is None:
        return False
    try:
        parse(text, compile_plan(ADAPTERS[engine]).wanted)
        return True
    except ParseError:
        return False


_REAL = [p for p in sorted(CAPTURES.rglob("*.txt")) + sorted(OWN_FIXTURES.glob("*.txt")) if _readable(p)]
_VALUE_SETS = [["7"], ["0.25", "+Inf", "12345678901234567890"], ["-1e-300", "NaN", "-0.0", "0"], ["0"], ["3", "-2.5"]]


def test_every_engine_capture_is_checked() -> None:
    engines = {detect_engine(p.read_text(encoding="utf-8")) for p in _REAL}
    assert engines == set(Engine) and len(_REAL) >= 20


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu-rows", "no-gpu-rows"])
@pytest.mark.parametrize("path", _REAL, ids=[p.name for p in _REAL])
def test_real_payloads_through_a_plan_match_normalize(path, gpu: bool) -> None:
    text = path.read_text(encoding="utf-8")
    plan = compile_plan(ADAPTERS[detect_engine(text)], gpu=gpu)
    for options in ({}, {"model": "configured", "max_models": 1}):
        scrapes = _steady_scrapes(text, plan, _VALUE_SETS, **options)
        assert [through for through, _, _ in scrapes] == [True] * len(_VALUE_SETS)
        for _, ours, theirs in scrapes:
            assert ours == theirs


_DCGM_NO_GPU_LABEL = """# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 300
DCGM_FI_DEV_POWER_USAGE{Hostname="node-1"} 600
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a"} 100
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-b"} 100
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a"} 50
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-b"} 50
# TYPE DCGM_FI_DEV_FB_TOTAL gauge
DCGM_FI_DEV_FB_TOTAL{gpu="0",UUID="GPU-a"} 160
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-a"} 123456
"""


@pytest.mark.parametrize("text", [(OWN_FIXTURES / "dcgm-exporter-4.5.metrics.txt").read_text(encoding="utf-8"),
                                  (OWN_FIXTURES / "dcgm-exporter-4.5-fb-total.metrics.txt").read_text(encoding="utf-8"),
                                  _DCGM_NO_GPU_LABEL], ids=["dcgm", "dcgm-fb-total", "dcgm-mixed"])
def test_dcgm_alternatives_and_unlabelled_samples_through_a_plan_match_normalize(text: str) -> None:
    # A reported total beats the sum of its parts per GPU (GPU-a: FB_TOTAL; GPU-b: used + free), and
    # a sample without a GPU label is no series, in the plan as in normalize.
    scrapes = _steady_scrapes(text, compile_plan(DCGM), _VALUE_SETS)
    assert [through for through, _, _ in scrapes] == [True] * len(_VALUE_SETS)
    for _, ours, theirs in scrapes:
        assert ours == theirs
    result = normalize(compile_plan(DCGM), parse(text, compile_plan(DCGM).wanted))
    assert all(key != ("",) for series in result.series.values() for key in series)


def _plan_of(layout: Layout) -> LayoutPlan | None:
    (planned,) = layout.plans.values()
    return planned


def test_every_real_payload_is_planned() -> None:
    unplanned = []
    for path in _REAL:
        text = path.read_text(encoding="utf-8")
        plan = compile_plan(ADAPTERS[detect_engine(text)])
        cache, layout = SeriesCache(), Layout()
        parse(text, plan.wanted, series=cache, layout=layout)
        normalize_parsed(plan, parse(text, plan.wanted, series=cache, layout=layout), layout)
        if _plan_of(layout) is None:
            unplanned.append(path.name)
    assert unplanned == []


_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(["0", "-0.0", "NaN", "+Inf", "-Inf", "1e308", "5e-324"]))


@settings(max_examples=examples(200, 50), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_numbers, min_size=1, max_size=7), min_size=1, max_size=4))
def test_any_values_through_a_plan_match_normalize(value_sets: list[list[str]]) -> None:
    # Two data-parallel ranks per model (sums and means), NIM's subtracted outcome rows and
    # TRT-LLM's used/max ratio (a branch on its denominator) in one run.
    for text in (vllm_payload(3), (OWN_FIXTURES / "triton-trtllm-2024.metrics.txt").read_text(encoding="utf-8"),
                 (CAPTURES / "nim_datadog-integrations-core.txt").read_text(encoding="utf-8")):
        plan = compile_plan(ADAPTERS[detect_engine(text)])
        for through, ours, theirs in _steady_scrapes(text, plan, value_sets):
            assert (through, ours) == (True, theirs)


_TRTLLM_BLOCKS = """# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} USED
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} MAX
"""


def _blocks(used: str, capacity: str) -> str:
    return _TRTLLM_BLOCKS.replace("USED", used).replace("MAX", capacity)


def test_a_branch_taken_otherwise_falls_back_to_normalize() -> None:
    """TRT-LLM's usage is used/max, and no ratio while max is 0: the plan was made with max 100
    and must not divide by a later 0."""
    plan = compile_plan(ADAPTERS[Engine.TRITON])
    cache, layout = SeriesCache(), Layout()
    parse(_blocks("1", "100"), plan.wanted, series=cache, layout=layout)
    readings = []
    for used, capacity in (("25", "100"), ("0", "0"), ("50", "200")):
        families = parse(_blocks(used, capacity), plan.wanted, series=cache, layout=layout)
        result = normalize_parsed(plan, families, layout)
        readings.append((result.available[M.KV_CACHE_USAGE_RATIO], result.series.get(M.KV_CACHE_USAGE_RATIO),
                         _plan_of(layout).run(layout.values) is not None))
    assert readings == [(True, {("tensorrt_llm",): 0.25}, True),
                        (True, None, False),  # the guard (max is not 0) fails: normalize answers
                        (True, {("tensorrt_llm",): 0.25}, True)]
    assert _plan_of(layout).guards == ((1, True),)  # sample 1 (max) was not 0


def test_a_plan_is_expressions_over_sample_positions() -> None:
    """Two ranks of one model: their sum, in payload order, from 0.0 as normalize adds it."""
    text = ("# TYPE vllm:num_requests_running gauge\n"
            'vllm:num_requests_running{engine="0",model_name="m"} 2\n'
            'vllm:num_requests_running{engine="1",model_name="m"} 3\n')
    plan = compile_plan(ADAPTERS[Engine.VLLM])
    cache, layout = SeriesCache(), Layout()
    parse(text, plan.wanted, series=cache, layout=layout)
    normalize_parsed(plan, parse(text, plan.wanted, series=cache, layout=layout), layout)
    planned = _plan_of(layout)
    assert [(shape, [pick(layout.values) for pick in pickers], size) for shape, pickers, size in planned.groups] == [
        (("+", 0.0, ("+", ("v", 0), ("v", 1))), [(2.0,), (3.0,)], 1)]
    assert (planned.guards, planned.run((1.5, 2.25)).series) == ((), {M.REQUESTS_RUNNING: {("m",): 3.75}})


def test_expressions_are_evaluated_in_their_order() -> None:
    """(a + b) + c is not a + (b + c) in floating point: the plan keeps the order it was given."""
    columns = [(1e16, 0.5), (1.0, 0.25), (1.0, 0.25)]
    left = ("+", ("v", 0), ("v", 1), ("v", 2))
    right = ("+", ("v", 0), ("+", ("v", 1), ("v", 2)))
    scaled = ("/", ("*", ("v", 0), 3), 10)
    assert [list(_evaluate(shape, columns, 2)) for shape in (left, right, scaled, 0.0)] == [
        [1e16, 1.0], [1.0000000000000002e16, 1.0], [3e15, 0.15], [0.0, 0.0]]


@pytest.mark.parametrize("ranks", [500, 5000])
def test_hundreds_of_series_summed_into_one_are_planned_thousands_left_to_normalize(ranks: int) -> None:
    """Data-parallel ranks of one model: one sum of as many terms, added as normalize adds them;
    past MAX_TERMS the plan would take quadratic time to make, and normalize answers instead."""
    text = "# TYPE vllm:num_requests_running gauge\n" + "".join(
        f'vllm:num_requests_running{{engine="{i}",model_name="m"}} {i / 7!r}\n' for i in range(ranks))
    plan = compile_plan(ADAPTERS[Engine.VLLM])
    cache, layout = SeriesCache(), Layout()
    for _ in range(2):
        families = parse(text, plan.wanted, series=cache, layout=layout)
    result = normalize_parsed(plan, families, layout)
    assert (_plan_of(layout) is not None, _comparable(result)) == (ranks <= MAX_TERMS,
                                                                   _comparable(normalize(plan, families)))


def test_replicas_share_one_plan() -> None:
    text = vllm_payload(2)
    plan = compile_plan(ADAPTERS[Engine.VLLM])
    cache, layouts = SeriesCache(), [Layout(), Layout()]
    for layout in layouts:
        for _ in range(2):
            normalize_parsed(plan, parse(text, plan.wanted, series=cache, layout=layout), layout)
    assert layouts[0].plans is layouts[1].plans and len(layouts[0].plans) == 1
