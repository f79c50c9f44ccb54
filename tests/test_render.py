"""The exporter's own text renderer writes exactly what prometheus_client.generate_latest writes."""

from __future__ import annotations

import math

import httpx
import pytest
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest

from infersight.exporter.render import FamilySet, text_exposition
from infersight.exporter.server import wants_openmetrics_only
from tests.conftest import GOLDEN
from tests.engine_server import EngineServer
from tests.harness import running_exporter

# unit (tests/conftest.py's MODULE_TIERS), but for the one test marked integration


def library(families) -> str:
    return generate_latest(FamilySet(families)).decode("utf-8")


def awkward_families():
    gauge = GaugeMetricFamily("llm_x_ratio", 'help with \\ backslash\nand "quotes"', labels=["engine", "model"])
    gauge.add_metric(["vllm", 'a "b"\\c\nd ü'], math.nan)
    gauge.add_metric(["vllm", ""], math.inf)
    gauge.add_metric(["vllm", "z"], -math.inf)
    gauge.add_metric(["vllm", "big"], 1.5e300)
    gauge.add_metric(["vllm", "tiny"], 2.5e-8)
    gauge.add_metric(["vllm", "million"], 12345678.0)
    counter = CounterMetricFamily("llm_y_total", "", labels=["outcome"])
    counter.add_metric(["success"], 3)
    hist = HistogramMetricFamily("llm_z_seconds", "h", labels=["model"])
    hist.add_metric(["m"], [("0.005", 1), ("1e+06", 2), ("+Inf", 3)], 0.75)
    plain = GaugeMetricFamily("llm_w", "no labels", value=7)
    return [gauge, counter, hist, plain]


def test_awkward_values_and_labels_render_as_the_library_does() -> None:
    families = awkward_families()
    assert text_exposition(families) == library(families)


def test_runtime_collectors_render_as_the_library_does() -> None:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    families = list(registry.collect())
    assert text_exposition(families) == library(families)


def test_what_it_does_not_handle_goes_to_the_library() -> None:
    info = InfoMetricFamily("build", "b", value={"version": "1"})
    stamped = GaugeMetricFamily("llm_v", "v", labels=["a"])
    stamped.add_metric(["x"], 1, timestamp=1700000000.5)
    for families in ([info], [stamped]):
        assert text_exposition(families) == library(families)


@pytest.mark.parametrize("path", sorted(GOLDEN.rglob("*.prom")), ids=lambda p: p.name)
def test_goldens_round_trip_through_both_renderers(path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(path.read_text()))
    assert text_exposition(families) == library(families) == path.read_text()


@pytest.mark.parametrize(("accept", "openmetrics_only"), [
    (None, False),
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False),  # what Prometheus 2.42 sends
    ("application/openmetrics-text; version=1.0.0", True),
    ("text/plain", False),
])
def test_content_negotiation(accept, openmetrics_only) -> None:
    assert wants_openmetrics_only(accept) is openmetrics_only


@pytest.mark.integration  # an engine server and an exporter
def test_an_openmetrics_only_client_gets_openmetrics() -> None:
    engine = EngineServer()
    engine.serve("/m", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 1\n")
    try:
        with running_exporter(engine="vllm", targets=[engine.url("/m")]) as url:
            om = httpx.get(url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            text = httpx.get(url + "/metrics")
    finally:
        engine.close()
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_direct_rendering_matches_for_signed_zeros_and_special_values() -> None:
    import math as m

    from infersight.exporter.normalize import Histogram, Normalized
    from infersight.exporter.render import TargetReport, build_families, render_text
    from infersight.exporter.schema import M

    normalized = Normalized(series={
        M.KV_CACHE_USAGE_RATIO: {("a",): 0.0, ("b",): -0.0, ("c",): m.nan, ("d",): m.inf, ("e",): 1234567.0},
        M.TIME_TO_FIRST_TOKEN: {("a",): Histogram({0.5: 0.0, 1e6: -0.0, m.inf: 3.0}, -0.0, 3.0)},
    }, available={M.KV_CACHE_USAGE_RATIO: True})
    report = TargetReport("vllm", 't"1\\', True, 0.25, {}, normalized, [M.KV_CACHE_USAGE_RATIO])
    assert render_text([report], "v") == text_exposition(build_families([report], "v"))


def test_a_render_cache_carried_across_scrapes_writes_the_same_bytes() -> None:
    """Label strings come from the cache from the second scrape on; values, bucket sets, a
    missing +Inf, negative buckets and a shrinking cache must not change a byte."""
    import math as m

    from infersight.exporter.normalize import Histogram, Normalized
    from infersight.exporter.render import RenderCache, TargetReport, build_families, render_text
    from infersight.exporter.schema import M

    def report(scale: float, buckets: dict[float, float]) -> TargetReport:
        normalized = Normalized(series={
            M.KV_CACHE_USAGE_RATIO: {("a",): 0.5 * scale, ('q"\n\\',): -0.0},
            M.REQUESTS: {("a", "success"): 3 * scale, ("a", "error"): m.nan},
            M.TIME_TO_FIRST_TOKEN: {("a",): Histogram(dict(buckets), 1.5 * scale, 4 * scale),
                                    ("b",): Histogram({-1.0: 1.0, 2.0: 2.0, m.inf: 2.0}, 0.5, 2.0)},
        }, available={M.KV_CACHE_USAGE_RATIO: True})
        return TargetReport("vllm", "t", True, 0.25 * scale, {}, normalized, [M.KV_CACHE_USAGE_RATIO])

    scrapes = [report(1, {0.1: 1.0, 1.0: 2.0, m.inf: 4.0}), report(2, {0.1: 3.0, 1.0: 5.0, m.inf: 8.0}),
               report(3, {0.1: 3.0, 1.0: 5.0}),  # no +Inf bucket: the count stands in
               report(4, {0.1: 3.0, 0.5: 4.0, 1.0: 5.0, m.inf: 9.0}),  # new bucket bounds
               report(5, {0.1: 3.0, 0.5: 4.0, 1.0: 5.0, m.inf: 9.0}),
               report(6, {0.1: 3.0, 0.5: 4.0, 1.0: 5.0, m.inf: 9.0})]
    # A line per sample, and "b"'s _count and _sum, which the cache holds though a histogram with a
    # negative bucket leaves them out.
    n = _sample_lines(render_text(scrapes[0:1], "v")) + 2
    cache = RenderCache(max_lines=n + 6)
    lines = []
    for scrape in scrapes:
        assert render_text([scrape], "v", cache=cache) == text_exposition(build_families([scrape], "v"))
        lines.append(cache.lines)
    # Every line of the first scrape; then a second set of bounds for "a" (3 buckets, _count and
    # _sum); then a third (4 buckets) took it past its bound, full; the next render starts over and
    # fills it again ("a" now with 4 buckets), and the one after reuses it.
    assert lines == [n, n, n + 5, n + 11, n + 1, n + 1]


def test_a_render_cache_under_label_churn_stays_bounded() -> None:
    """Label values that change every scrape: the cache fills, takes no more, starts over at the
    next render; the bytes stay the library's throughout."""
    from infersight.exporter.normalize import Normalized
    from infersight.exporter.render import RenderCache, TargetReport, build_families, render_text
    from infersight.exporter.schema import M

    def report(scrape: int) -> TargetReport:
        normalized = Normalized(series={M.KV_CACHE_USAGE_RATIO: {(f"m{scrape}-{i}",): i / 4 for i in range(6)}})
        return TargetReport("vllm", "t", True, 0.25, {}, normalized, [M.KV_CACHE_USAGE_RATIO])

    n = _sample_lines(render_text([report(0)], "v"))  # the target's own lines and 6 new ones per scrape
    cache = RenderCache(max_lines=n + 4)
    lines = []
    for scrape in range(5):
        assert render_text([report(scrape)], "v", cache=cache) == text_exposition(build_families([report(scrape)], "v"))
        lines.append(cache.lines)
    # The second render fills it with 4 of its 6 new lines and leaves 2 out; the third starts over.
    assert lines == [n, n + 4, n, n + 4, n]


def _sample_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if not line.startswith("#"))
