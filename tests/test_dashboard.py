"""The web UI (Streamlit AppTest, no browser): every page on the embedded source, the values shown
equal `infersight compare`'s, and a source that is down is an error message, not an exception."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from infersight.dashboard import data
from infersight.dashboard.transforms import COMPARE_FORMATS, display, rows_frame
from infersight.compare import embedded_rows, parse_snapshot
from infersight.exporter.schema import Engine
from infersight.simulator.engine import SimulatedEngine
from infersight.simulator.model import run_for
from infersight.simulator.profiles import PROFILES
from tests.conftest import REPO
from tests.test_golden import normalized_exposition

APP = str(REPO / "dashboard" / "app.py")
URLS = ("http://127.0.0.1:9/vllm", "http://127.0.0.1:9/triton", "http://127.0.0.1:9/nim")
ENGINES = (("vllm", "0.33", Engine.VLLM, "vllm"), ("triton", "vllm", Engine.TRITON, "triton"),
           ("nim", "1.x", Engine.NIM, "nim"))


@pytest.fixture()
def history(monkeypatch):
    """Three simulated engines, stepped in virtual time, scraped through the exporter's normalization
    into the UI's history twice, 30 s apart (recent, so the UI does not scrape the fake URLs)."""
    sims = [(SimulatedEngine(e, v, PROFILES["small"], seed=2), unified, name) for e, v, unified, name in ENGINES]
    data.get_history.clear()
    h = data.get_history(URLS)
    now = time.time()
    for i, at in enumerate((now - 30, now)):
        for sim, _, _ in sims:
            run_for(sim.model, 30, start=30 * i)
        texts = [normalized_exposition(sim.metrics_text().decode(), unified, name=name) for sim, unified, name in sims]
        h.add(parse_snapshot(texts, at))
    monkeypatch.setenv("INFERSIGHT_UI_EXPORTERS", ",".join(URLS))
    monkeypatch.setenv("INFERSIGHT_UI_REFRESH_SECONDS", "3600")
    monkeypatch.delenv("INFERSIGHT_UI_PROMETHEUS_URL", raising=False)
    yield h
    data.get_history.clear()


def run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def test_compare_page_shows_exactly_compares_rows(history) -> None:
    at = run()
    expected = display(rows_frame(embedded_rows(history.window(300))), COMPARE_FORMATS)
    shown = at.dataframe[0].value
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected)
    assert list(shown["engine"]) == ["nim", "triton", "vllm"]
    assert list(shown["KV cache"])[1] == "n/a"  # Triton's vLLM backend has no KV gauge: n/a, not 0
    assert [e.value for e in at.error] == []
    assert at.title[0].value == "Compare engines"


def test_compare_page_shows_joules_per_million_beside_dollars(history) -> None:
    at = run()
    shown = list(at.dataframe[0].value.columns)
    assert shown[shown.index("$/1M output") + 1] == "J/1M output"
    assert set(at.dataframe[0].value["J/1M output"]) == {"n/a"}  # these exporters read no GPU energy counter
    charts = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert charts == ["Output tokens/s", "TTFT p99 (s)", "$ per 1M output tokens", "GPU joules per 1M output tokens"]


def test_selectors_filter_the_table(history) -> None:
    at = run()
    at.sidebar.multiselect(key="engines").select("vllm").run()
    assert list(at.dataframe[0].value["engine"]) == ["vllm"]


def test_live_page_draws_every_signal_the_engines_export(history) -> None:
    at = run("live")
    # throughput, TTFT p50/p99, ITL, KV, queue; prefill and decode p50, spec decoding acceptance, prompt
    # tokens from cache, deferred requests, admission rejections, ranks awake (the simulated vLLM 0.33's)
    assert len(at.get("plotly_chart")) == 13
    assert [m.value for m in at.markdown] == ["**GPU utilization**: n/a (no engine shown exports it)"]
    assert [i.value for i in at.info] == []


@pytest.mark.parametrize("page", ["live", "cost", "slos"])
def test_every_page_renders_without_errors(history, page: str) -> None:
    at = run(page)
    assert [e.value for e in at.error] == []


def test_cost_page_projects_the_seed_cost(history) -> None:
    at = run("cost")
    table = at.dataframe[-1].value
    assert list(table["engine"]) == ["nim", "triton", "vllm"]
    # 2 x A100-80GB at the listed $2.4984, plus NIM's $4,500/month licence, 730 h a month
    assert list(table["$/month"]) == ["$8,148", "$3,648", "$3,648"]
    assert list(table["$/year"]) == ["$97,772", "$43,772", "$43,772"]


def test_slo_page_attainment_from_the_buckets(history) -> None:
    at = run("slos")
    table = at.dataframe[0].value
    assert sorted(set(table["SLO"])) == ["availability", "itl", "ttft"]
    assert set(table["budget remaining"]) == {"n/a"}  # needs Prometheus' 30 days
    assert all(value.endswith("%") for value in table["attainment"])


def test_an_unreachable_prometheus_is_an_error_message(monkeypatch) -> None:
    monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", "http://127.0.0.1:9")
    for page in (None, "live", "slos"):
        at = run(page)
        # the connection is refused at once: one message per failed data call, no retries, no traceback
        assert [e.value for e in at.error] == ["Prometheus at http://127.0.0.1:9 could not be queried: "
                                               "connection refused"]


def test_no_source_configured(monkeypatch) -> None:
    monkeypatch.delenv("INFERSIGHT_UI_PROMETHEUS_URL", raising=False)
    monkeypatch.delenv("INFERSIGHT_UI_EXPORTERS", raising=False)
    at = run()
    assert at.error[0].value == "No data source: set INFERSIGHT_UI_PROMETHEUS_URL or INFERSIGHT_UI_EXPORTERS."
