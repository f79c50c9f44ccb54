"""The web UI (Streamlit AppTest, no browser): every page on the embedded source, the values shown
equal `infersight compare`'s, one colour per engine on every chart, the Cost page's $/h is the
exporters' own, the Plan page's figures equal a hand computation, and a source that is down is an
error message, not an exception."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from streamlit.testing.v1 import AppTest

from infersight.dashboard import data
from infersight.dashboard.transforms import COMPARE_FORMATS, display, rows_frame
from infersight.compare import Snapshot, embedded_rows, parse_snapshot
from infersight.exporter.schema import Engine, M
from infersight.simulator.engine import SimulatedEngine
from infersight.simulator.model import run_for
from infersight.simulator.profiles import PROFILES
from tests.conftest import REPO
from tests.test_golden import normalized_exposition

APP = str(REPO / "dashboard" / "app.py")
URLS = ("http://127.0.0.1:9/vllm", "http://127.0.0.1:9/triton", "http://127.0.0.1:9/nim")
ENGINES = (("vllm", "0.33", Engine.VLLM, "vllm"), ("triton", "vllm", Engine.TRITON, "triton"),
           ("nim", "1.x", Engine.NIM, "nim"))
# What each target's exporter is configured to cost: $/h = GPUs x $/GPU-hour + licence / 730.
COSTS = {"vllm": {"gpu_count": 1, "gpu_hourly_dollars": 1.25},  # $1.25/h
         "triton": {"gpu_count": 2, "gpu_hourly_dollars": 0.8},  # $1.60/h
         "nim": {"gpu_count": 2, "gpu_hourly_dollars": 3.25, "licence_monthly_dollars": 730.0}}  # $7.50/h
# The palette, written out: the same colour for an engine on every chart of every page.
COLOURS = {"vllm": "#0072B2", "triton": "#E69F00", "nim": "#009E73"}


RAW: list[list[str]] = []  # the exporters' expositions the history holds, per scrape (three engines each)


@pytest.fixture()
def history(monkeypatch):
    """Three simulated engines, stepped in virtual time, scraped through the exporter's normalization
    into the UI's history three times, 30 s apart (recent, so the UI does not scrape the fake URLs)."""
    sims = [(SimulatedEngine(e, v, PROFILES["small"], seed=2), unified, name) for e, v, unified, name in ENGINES]
    data.get_history.clear()
    RAW.clear()
    h = data.get_history(URLS)
    now = time.time()
    for i, at in enumerate((now - 60, now - 30, now)):
        for sim, _, _ in sims:
            run_for(sim.model, 30, start=30 * i)
        texts = [normalized_exposition(sim.metrics_text().decode(), unified, name=name, cost=COSTS[name])
                 for sim, unified, name in sims]
        h.add(parse_snapshot(texts, at))
        RAW.append(texts)
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


def _raw(text: str, name: str) -> float:
    """A sample's value summed over its series, read with prometheus_client's parser."""
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_compare_page_figures_equal_a_computation_from_the_exporters_text(history) -> None:
    # Independent of compare.py: output tokens/s over the window is the generation counter's rise
    # from the first to the last scrape (60 s apart), read with prometheus_client; $/h the gauge.
    shown = run().dataframe[0].value.set_index("engine")
    for i, (_, _, _, name) in enumerate(ENGINES):
        first, last = RAW[0][i], RAW[-1][i]
        tokens_per_second = (_raw(last, M.GENERATION_TOKENS.name) - _raw(first, M.GENERATION_TOKENS.name)) / 60
        assert tokens_per_second > 0
        assert shown.loc[name, "output tok/s"] == f"{tokens_per_second:.0f}"
        assert shown.loc[name, "$/h"] == f"${_raw(last, M.HOURLY_COST_DOLLARS.name):.2f}"


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


def test_cost_page_dollars_per_hour_are_the_exporters(history) -> None:
    compare = run().dataframe[0].value
    at = run("cost")
    table = at.dataframe[0].value
    assert list(table["engine"]) == ["nim", "triton", "vllm"]
    assert list(table["priced by"]) == ["exporter"] * 3
    # each exporter's llm_hourly_cost_dollars, as configured in COSTS, and what Compare shows
    assert list(table["$/h"]) == ["$7.50", "$1.60", "$1.25"] == list(compare["$/h"])
    assert list(table["$/month"]) == ["$5,475", "$1,168", "$912"]  # x 730 h
    assert [w.value for w in at.warning] == []


def test_cost_page_what_if_prices_the_seed_cost(history) -> None:
    at = run("cost")
    at.toggle(key="what-if").set_value(True).run()
    table = at.dataframe[0].value
    assert [w.value for w in at.warning] == ["What-if: $/h below comes from the what-if pricing, not from the "
                                             "exporters."]
    assert list(table["priced by"]) == ["what-if"] * 3
    # 2 x A100-80GB at the listed $2.4984, plus NIM's $4,500/month licence, 730 h a month
    assert list(table["$/month"]) == ["$8,148", "$3,648", "$3,648"]
    assert list(table["$/year"]) == ["$97,772", "$43,772", "$43,772"]


def trace_colours(at: AppTest) -> list[tuple[str, str]]:
    """(engine, colour) of every trace of every chart on the page."""
    out = []
    for chart in at.get("plotly_chart"):
        for trace in json.loads(chart.proto.spec)["data"]:
            colour = trace["marker"]["color"] if trace["type"] == "bar" else trace["line"]["color"]
            out.append((trace["name"].split()[0], colour))
    return out


def test_one_colour_per_engine_on_every_chart_of_every_page(history) -> None:
    seen = []
    for page in (None, "live", "cost"):
        at = run(page)
        colours = trace_colours(at)
        assert {engine for engine, _ in colours} == {"vllm", "triton", "nim"}, page
        seen += colours
    assert sorted(set(seen)) == sorted(COLOURS.items())


def test_compare_headlines_with_their_change_over_the_window(history) -> None:
    at = run()
    rows = {r["engine"]: r for r in embedded_rows(history.window(300))}
    labels = [m.label for m in at.metric]
    assert labels == [f"{e} {what}" for e in ("nim", "triton", "vllm") for what in ("output tok/s", "TTFT p99")]
    assert [m.value for m in at.metric][::2] == [f'{rows[e]["output_tokens_per_second"]:.0f}'
                                                 for e in ("nim", "triton", "vllm")]
    # the change: now (all three scrapes) against the first point of the window (the first two scrapes)
    earlier = {r["engine"]: r for r in embedded_rows(history.window(300)[:2])}
    assert [m.delta for m in at.metric] == [
        change for e in ("nim", "triton", "vllm") for change in (
            f'{rows[e]["output_tokens_per_second"] - earlier[e]["output_tokens_per_second"]:+.0f}',
            f'{rows[e]["ttft_p99_seconds"] - earlier[e]["ttft_p99_seconds"]:+.3f} s')]
    # the simulated engines' steady state (seed 2): throughput a token/s lower, TTFT p99 within a millisecond
    assert {m.delta for m in at.metric} == {"-1", "+0.000 s"}


def test_slo_page_attainment_from_the_buckets(history) -> None:
    at = run("slos")
    table = at.dataframe[0].value
    assert sorted(set(table["SLO"])) == ["availability", "itl", "ttft"]
    assert set(table["budget remaining"]) == {"n/a"}  # needs Prometheus' 30 days
    assert all(value.endswith("%") for value in table["attainment"])
    assert set(table["over"]) == {"1 min"}  # the scrape history's span (60 s), not the 30-d window
    assert [c.value for c in at.main.caption] == ["From the exporters' scrape history (60 s): attainment and burn "
                                                  "rate over that span; the 30-day error budget needs Prometheus.",
                                                  "Alertmanager not configured (INFERSIGHT_UI_ALERTMANAGER_URL)."]


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


def measured_snapshots(now: float) -> list[Snapshot]:
    """Two engines measured over three 30-s intervals, written out by hand: output tokens/s, TTFT and
    ITL (every observation of an interval in one bucket) and each target's $/h.

    vLLM: 600, 1200 tok/s within the SLO (TTFT p99 0.2475 s, ITL p99 0.02475 s), then 1500 with TTFT
    p99 0.995 s; NIM: 900, 1800 within, then 2400 with ITL p99 0.0995 s. Prompt tokens: twice the
    output (the Plan page's default 512:256 mix)."""
    intervals = {"vllm": [(600, "fast", "fast"), (1200, "fast", "fast"), (1500, "slow", "fast")],
                 "nim": [(900, "fast", "fast"), (1800, "fast", "fast"), (2400, "fast", "slow")]}
    hourly = {"vllm": 1.5, "nim": 7.5}
    ttft_bounds, itl_bounds = ("0.25", "0.5", "1.0", "+Inf"), ("0.025", "0.05", "0.1", "+Inf")
    slow_from = {"ttft": 2, "itl": 2}  # slow observations land in the third bucket (0.5-1 s, 0.05-0.1 s)
    totals = {e: {"out": 0.0, "ttft": [0.0] * 4, "itl": [0.0] * 4} for e in intervals}
    snapshots = []
    for i in range(4):
        if i:
            for engine, steps in intervals.items():
                rate, ttft, itl = steps[i - 1]
                totals[engine]["out"] += rate * 30
                for name, speed in (("ttft", ttft), ("itl", itl)):
                    first = 0 if speed == "fast" else slow_from[name]
                    for b in range(first, 4):
                        totals[engine][name][b] += 100  # 100 requests an interval
        series: dict[str, list] = {M.GENERATION_TOKENS.name: [], M.PROMPT_TOKENS.name: [],
                                   f"{M.TIME_TO_FIRST_TOKEN.name}_bucket": [],
                                   f"{M.INTER_TOKEN_LATENCY.name}_bucket": [], M.HOURLY_COST_DOLLARS.name: []}
        for engine, t in totals.items():
            labels = (("engine", engine), ("model", "m"), ("target", f"t-{engine}"))
            series[M.GENERATION_TOKENS.name].append((labels, t["out"]))
            series[M.PROMPT_TOKENS.name].append((labels, 2 * t["out"]))
            for name, bounds, key in ((M.TIME_TO_FIRST_TOKEN.name, ttft_bounds, "ttft"),
                                      (M.INTER_TOKEN_LATENCY.name, itl_bounds, "itl")):
                for bound, count in zip(bounds, t[key], strict=True):
                    series[f"{name}_bucket"].append((tuple(sorted((*labels, ("le", bound)))), count))
            series[M.HOURLY_COST_DOLLARS.name].append(((("engine", engine), ("target", f"t-{engine}")),
                                                       hourly[engine]))
        snapshots.append(Snapshot(now - 90 + 30 * i, series))
    return snapshots


@pytest.fixture()
def measured(monkeypatch):
    data.get_history.clear()
    h = data.get_history(URLS)
    for snapshot in measured_snapshots(time.time()):
        h.add(snapshot)
    monkeypatch.setenv("INFERSIGHT_UI_EXPORTERS", ",".join(URLS))
    monkeypatch.setenv("INFERSIGHT_UI_REFRESH_SECONDS", "3600")
    monkeypatch.setenv("INFERSIGHT_UI_WINDOW", "30s")  # each instant: the 30 s since the previous scrape
    monkeypatch.delenv("INFERSIGHT_UI_PROMETHEUS_URL", raising=False)
    yield h
    data.get_history.clear()


def test_plan_page_replicas_and_cost_equal_the_hand_computation(measured) -> None:
    at = run("plan")
    at.selectbox(key="plan-range").set_value("1 hour").run()
    table = at.dataframe[0].value
    # The defaults: 10 req/s of 512 prompt + 256 output tokens; the SLO spec's TTFT p99 0.5 s, ITL p99 0.05 s.
    # vLLM: best within the SLO 1200 tok/s / 256 = 4.6875 req/s; ceil(10 / 4.6875) = 3 replicas x $1.50/h x 730
    # = $3,285 a month; $4.50/h / (10 x 256 x 3600 tokens/h) x 1e6 = $0.49 per 1M; 3 x 4.6875 / 10 - 1 = 41%.
    # NIM: 1800 / 256 = 7.03125 req/s; 2 replicas x $7.50/h x 730 = $10,950; $15/h -> $1.63 per 1M; 41%.
    assert list(table["engine"]) == ["nim", "vllm"]
    assert list(table["goodput tok/s"]) == ["1800", "1200"]
    assert list(table["replicas"]) == ["2", "3"]
    assert list(table["$/h"]) == ["$7.50", "$1.50"]
    assert list(table["$/month"]) == ["$10,950", "$3,285"]
    assert list(table["$/1M output"]) == ["$1.63", "$0.49"]
    assert list(table["headroom"]) == ["41%", "41%"]
    assert list(table["instants within SLO"]) == ["2 of 3", "2 of 3"]
    assert [span.endswith("UTC (1 min)") for span in table["data span"]] == [True, True]
    assert [w.value for w in at.warning] == [
        "nim m t-nim: the asked 10 req/s is above the highest load measured on one replica (9.38 req/s): the plan "
        "assumes replicas add capacity linearly",
        "vllm m t-vllm: the asked 10 req/s is above the highest load measured on one replica (5.86 req/s): the plan "
        "assumes replicas add capacity linearly"]
    # the inputs are in the page's URL, and a URL's inputs are the page's: a plan can be shared
    assert dict(at.query_params) == {"rps": "10", "prompt": "512", "output": "256", "ttft": "0.5", "itl": "0.05",
                                     "quantile": "p99"}
    # 4 req/s fits one replica of either: no warning
    at.number_input(key="plan-rps").set_value(4.0).run()
    assert list(at.dataframe[0].value["replicas"]) == ["1", "1"]
    assert list(at.dataframe[0].value["$/month"]) == ["$5,475", "$1,095"]  # 7.50 and 1.50 x 730
    assert [w.value for w in at.warning] == []
    shared = AppTest.from_file(APP, default_timeout=60)
    shared.query_params["rps"] = "4"
    shared.switch_page("app_pages/plan.py").run()
    shared.selectbox(key="plan-range").set_value("1 hour").run()
    assert list(shared.dataframe[0].value["replicas"]) == ["1", "1"]
