"""The OTLP translation without a network: names and units (and the documented table), histogram
buckets de-cumulated, counter start times across resets, the headers file, the settings."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

from infersight.cli import main
from infersight.exporter.normalize import Histogram, Normalized
from infersight.exporter.otlp import Translator
from infersight.exporter.otlp_names import SEMCONV, attribute_table, mapping_table, otel_name, unit
from infersight.exporter.render import TargetReport
from infersight.exporter.schema import CATALOGUE, M, ScrapeErrorReason
from infersight.exporter.settings import ConfigError, load_settings, read_otlp_headers
from tests.conftest import REPO

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("document", ["docs/opentelemetry.md", "README.md"])
def test_the_documented_tables_are_the_mapping(document: str) -> None:
    doc = (REPO / document).read_text()
    table = doc.split("<!-- otlp-names:start -->\n", 1)[1].split("<!-- otlp-names:end -->", 1)[0]
    assert table.strip() == mapping_table()
    if document == "README.md":
        return  # the README has the names only
    table = doc.split("<!-- otlp-attributes:start -->\n", 1)[1].split("<!-- otlp-attributes:end -->", 1)[0]
    assert table.strip() == attribute_table()


def test_names_are_unique_and_the_conventions_are_used_where_they_exist() -> None:
    names = [otel_name(m) for m in CATALOGUE]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"(infersight|gen_ai)(\.[a-z][a-z0-9_]*)+", n) for n in names)
    assert {m: (otel_name(m), unit(m)) for m in SEMCONV} == {
        M.TIME_TO_FIRST_TOKEN: ("gen_ai.server.time_to_first_token", "s"),
        M.TIME_PER_OUTPUT_TOKEN: ("gen_ai.server.time_per_output_token", "s"),
        M.REQUEST_DURATION: ("gen_ai.server.request.duration", "s")}
    assert [(otel_name(m), unit(m)) for m in (M.PROMPT_TOKENS, M.KV_CACHE_USAGE_RATIO, M.GPU_ENERGY_JOULES,
                                              M.GPU_MEMORY_USED_BYTES, M.EXPORTER_TARGET_UP)] == [
        ("infersight.prompt_tokens", "{token}"), ("infersight.kv_cache_usage", "1"), ("infersight.gpu.energy", "J"),
        ("infersight.gpu.memory_used", "By"), ("infersight.exporter.target_up", "1")]


def _report(hist: Histogram, prompt_tokens: float) -> TargetReport:
    normalized = Normalized(series={M.TIME_TO_FIRST_TOKEN: {("m",): hist}, M.PROMPT_TOKENS: {("m",): prompt_tokens}})
    return TargetReport(engine="vllm", target="a", up=True, duration_seconds=0.25,
                        errors={ScrapeErrorReason.TIMEOUT: 2}, normalized=normalized)


def _points(translator: Translator, report: TargetReport, now: int) -> dict[str, list]:
    data = translator.translate([report], now)
    return {m.name: list(m.data.data_points) for rm in data.resource_metrics for s in rm.scope_metrics
            for m in s.metrics}


def test_histograms_are_decumulated_and_counters_keep_their_start_until_a_reset() -> None:
    translator = Translator({"a": "http://engine:8000/metrics"})
    attributes = {"gen_ai.provider.name": "vllm", "gen_ai.request.model": "m"}
    first = _points(translator, _report(Histogram({0.1: 2.0, 1.0: 5.0, math.inf: 7.0}, 3.5, 7.0), 10.0), 100)
    assert first["gen_ai.server.time_to_first_token"] == [HistogramDataPoint(
        attributes, 100, 100, 7, 3.5, [2, 3, 2], [0.1, 1.0], None, None)]
    assert first["infersight.prompt_tokens"] == [NumberDataPoint(attributes, 100, 100, 10.0)]
    assert first["infersight.exporter.scrape_errors"][1] == NumberDataPoint(
        {"gen_ai.provider.name": "vllm", "infersight.reason": "connect"}, 100, 100, 0.0)
    assert first["infersight.exporter.target_up"] == [NumberDataPoint({"gen_ai.provider.name": "vllm"}, 0, 100, 1.0)]
    # Grown: same start. An engine without +Inf: its count is the last bucket.
    later = _points(translator, _report(Histogram({0.1: 2.0, 1.0: 6.0}, 4.0, 9.0), 12.0), 200)
    assert later["gen_ai.server.time_to_first_token"] == [HistogramDataPoint(
        attributes, 100, 200, 9, 4.0, [2, 4, 3], [0.1, 1.0], None, None)]
    assert later["infersight.prompt_tokens"] == [NumberDataPoint(attributes, 100, 200, 12.0)]
    # Lower than before: a reset, the series starts at this push.
    reset = _points(translator, _report(Histogram({0.1: 1.0, math.inf: 1.0}, 0.5, 1.0), 3.0), 300)
    assert reset["gen_ai.server.time_to_first_token"] == [HistogramDataPoint(
        attributes, 300, 300, 1, 0.5, [1, 0], [0.1], None, None)]
    assert reset["infersight.prompt_tokens"] == [NumberDataPoint(attributes, 300, 300, 3.0)]


@pytest.mark.parametrize("buckets", [{0.1: 5.0, math.inf: 4.0}, {0.1: math.nan, math.inf: 4.0},
                                     {0.1: 1.5, math.inf: 4.0}, {0.1: math.inf, math.inf: math.inf}])
def test_a_histogram_otlp_cannot_carry_is_left_out(buckets: dict[float, float]) -> None:
    points = _points(Translator({}), _report(Histogram(buckets, 1.0, 4.0), 1.0), 100)
    assert "gen_ai.server.time_to_first_token" not in points
    assert "infersight.prompt_tokens" in points


def test_the_headers_file(tmp_path: Path) -> None:
    good = tmp_path / "headers"
    good.write_text("# comment\n\nAuthorization: Bearer abc:def\nX-Scope-OrgID:  tenant-1 \n")
    assert read_otlp_headers(good) == {"Authorization": "Bearer abc:def", "X-Scope-OrgID": "tenant-1"}
    bad = tmp_path / "bad"
    bad.write_text("Authorization: Bearer abc\nBearer secret-token-value\n")
    with pytest.raises(ConfigError) as error:
        load_settings({"targets": ["http://e:8000/metrics"],
                       "otlp": {"endpoint": "http://collector:4318/v1/metrics", "headers_file": bad}})
    assert error.value.problems == [f"otlp.headers_file: {bad}:2: expected 'Name: value'"]


def test_otlp_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"targets": ["http://e:8000/metrics"],
                       "otlp": {"endpoint": "collector:4318", "interval_seconds": 0.5, "timeout_seconds": math.inf}})
    assert error.value.problems == [
        "otlp.endpoint: URL scheme should be 'http' or 'https'",
        "otlp.interval_seconds: Input should be greater than or equal to 1",
        "otlp.timeout_seconds: Input should be a finite number"]
    settings = load_settings({"targets": ["http://e:8000/metrics"],
                              "otlp": {"endpoint": "http://collector:4318/v1/metrics"}})
    assert (str(settings.otlp.endpoint), settings.otlp.interval_seconds, settings.otlp.timeout_seconds) == (
        "http://collector:4318/v1/metrics", 60.0, 10.0)


def test_check_config_shows_the_push_without_its_secrets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    headers = tmp_path / "headers"
    headers.write_text("Authorization: Bearer hdr-secret\n")
    code = main(["exporter", "--check-config", "--target", "e=http://engine:8000/metrics", "--otlp-endpoint",
                 "https://u:url-secret@collector:4318/v1/metrics?key=query-secret", "--otlp-interval", "15",
                 "--otlp-headers-file", str(headers)])
    assert (code, capsys.readouterr()) == (0, (
        "ok: target e engine=auto url=http://engine:8000/metrics gpu=none auth=no\n"
        "ok: otlp endpoint=https://collector:4318/v1/metrics?key=*** interval=15s headers=yes\n", ""))
