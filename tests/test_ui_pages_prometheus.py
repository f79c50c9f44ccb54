"""The UI's pages (Streamlit AppTest) reading a Prometheus that misbehaves, on 127.0.0.1: one that
never answers, values that are not numbers, a body that is not JSON, HTTPS with a self-signed
certificate. Each page shows one st.error with the URL and the reason and raises nothing, within
the settings' deadline (``INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS``) per data call plus a margin.

The margin: a page run is its data calls (each ends at most ``MARGIN_CALL`` after its deadline,
see tests/test_ui_promapi.py) plus Streamlit's own work for the page (a warm AppTest run of these
pages takes well under a second here; 3 s on this shared 2-core machine)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import plain
from tests.conftest import REPO
from tests.test_ui_promapi import VECTOR, Server, answer, certificate, hang, serving, tls_context  # noqa: F401

pytestmark = pytest.mark.integration

APP = str(REPO / "dashboard" / "app.py")
TIMEOUT = 1.0  # INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS in the tests of a server that never answers
GENEROUS = "10"  # ... and in the others: their servers answer at once, the deadline is not their matter
MARGIN_CALL = 1.0
MARGIN_PAGE = 3.0


@pytest.fixture(autouse=True)
def prometheus_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("EXPORTERS", "ALERTMANAGER_URL", "CONFIG", "CA_FILE", "INSECURE_SKIP_VERIFY"):
        monkeypatch.delenv(f"INFERSIGHT_UI_{name}", raising=False)
    monkeypatch.setenv("INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS", GENEROUS)
    data.get_reader.clear()  # closes the readers earlier tests made: each test counts its own
    yield
    data.get_reader.clear()


def page(name: str | None) -> tuple[AppTest, float]:
    """Run ``name`` (None: the default, Compare) in a fresh session; the app and the time it took."""
    at = AppTest.from_file(APP, default_timeout=60)
    if name:
        at.switch_page(f"app_pages/{name}.py")
    started = time.monotonic()
    at.run()
    return at, time.monotonic() - started


def readers() -> int:
    return sum(t.name == "infersight-promapi" and t.is_alive() for t in threading.enumerate())


def test_live_page_against_a_prometheus_that_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS", f"{TIMEOUT:g}")
    with serving(hang) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        at, took = page("live")
    assert not at.exception
    # the comparison (selectors) and the time series: two calls, the page shows the time series' error
    assert [e.value for e in at.error] == [
        f"Prometheus at {server.url} could not be queried: no complete answer within 1 s"]
    assert [i.value for i in at.info] == ["No points yet: the first comes after two scrapes."]
    assert 2 * TIMEOUT <= took < 2 * (TIMEOUT + MARGIN_CALL) + MARGIN_PAGE


def test_slo_page_against_prometheus_and_alertmanager_that_never_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS", f"{TIMEOUT:g}")
    with serving(hang) as prometheus, serving(hang) as alertmanager:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", prometheus.url)
        monkeypatch.setenv("INFERSIGHT_UI_ALERTMANAGER_URL", alertmanager.url)
        at, took = page("slos")
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"Prometheus at {prometheus.url} could not be queried: no complete answer within 1 s",
        f"Alertmanager at {alertmanager.url} could not be read: no complete answer within 1 s"]
    assert at.dataframe[0].value.empty
    assert 2 * TIMEOUT <= took < 2 * (TIMEOUT + MARGIN_CALL) + MARGIN_PAGE
    assert readers() == 1  # one client for Prometheus and Alertmanager, every page and session


def test_compare_page_with_values_that_are_not_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"engine": "vllm", "model": "m", "target": "a"}, "value": [1700000000, "lots"]}]}}
    with serving(answer(bad)) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        at, took = page(None)
    assert not at.exception
    assert [e.value for e in at.error] == [f"Prometheus at {server.url} could not be queried: unexpected answer: "
                                           'the sample value "lots" is not a number']
    assert at.dataframe[0].value.empty
    assert took < MARGIN_PAGE  # at once: no retries, no backoff


def test_cost_and_slo_pages_with_an_answer_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(answer("Service temporarily unavailable", content_type="text/plain")) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        cost, _ = page("cost")
        slos, _ = page("slos")
    reason = "the answer is not JSON (Expecting value at line 1 column 1)"
    assert not cost.exception and not slos.exception
    assert [e.value for e in cost.error] == [f"Prometheus at {server.url} could not be queried: {reason}"]
    assert [e.value for e in slos.error] == [f"Prometheus at {server.url} could not be queried: {reason}"]


def test_a_servers_words_show_as_text_not_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    error = {"status": "error", "errorType": "execution", "error": "see [the fix](http://evil.example/) `now`"}
    with serving(answer(error, status="422 Unprocessable Entity")) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        at, _ = page(None)
    assert [e.value for e in at.error] == [
        f"Prometheus at {server.url} could not be queried: HTTP 422 Unprocessable Entity: execution: "
        r"see \[the fix\](http://evil.example/) \`now\`"]
    assert plain(r"a\b $x$") == r"a\\b \$x\$"


def test_https_prometheus_needs_the_ca_file_setting(monkeypatch: pytest.MonkeyPatch,
                                                    certificate: tuple[Path, Path]) -> None:  # noqa: F811
    with serving(answer(VECTOR), tls=tls_context(certificate)) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        refused, _ = page(None)
        monkeypatch.setenv("INFERSIGHT_UI_CA_FILE", str(certificate[0]))
        trusted, _ = page(None)
    assert [e.value for e in refused.error] == [
        f"Prometheus at {server.url} could not be queried: TLS certificate not trusted (self-signed certificate)"]
    assert [e.value for e in trusted.error] == []
    table = trusted.dataframe[0].value
    assert list(table["engine"]) == ["vllm"]
    assert list(table["output tok/s"]) == ["2"]  # every query answered 1.5: shown to no decimals
    assert not refused.exception and not trusted.exception


@pytest.mark.parametrize(("variables", "message"), [
    ({"INFERSIGHT_UI_QUERY_TIMEOUT_SECONDS": "0"},
     "The UI settings are invalid: query_timeout_seconds: Input should be greater than 0"),
    ({"INFERSIGHT_UI_CA_FILE": "/etc/ssl/certs/ca-certificates.crt", "INFERSIGHT_UI_INSECURE_SKIP_VERIFY": "true"},
     "The UI settings are invalid: settings: Value error, ca_file and insecure_skip_verify exclude each other"),
])
def test_settings_that_cannot_work_are_an_error_message(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str],
                                                        message: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    at, _ = page(None)
    assert not at.exception
    assert [e.value for e in at.error] == [message]


def test_live_page_shades_the_alerts_that_fired(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Prometheus stand-in: instant queries (the selectors) answer one vLLM row; range queries (the
    # series, and ALERTS{alertstate="firing"}) one series firing from 300 s to 150 s ago, every 7.5 s
    # (the 15-minute range's step), so one span.
    now = time.time()
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"engine": "vllm", "model": "m", "target": "a", "alertname": "LLMTTFTBudgetBurn",
                    "alertstate": "firing"},
         "values": [[now - 300 + 7.5 * i, "0.25"] for i in range(21)]}]}}
    vector_body, matrix_body = json.dumps(VECTOR).encode(), json.dumps(matrix).encode()

    def prometheus(connection, server) -> None:  # noqa: ANN001
        head = server.read_request(connection)
        body = matrix_body if "/api/v1/query_range" in head.split("\r\n", 1)[0] else vector_body
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                           + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    with serving(prometheus) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        at, _ = page("live")
    assert not at.exception
    assert [e.value for e in at.error] == []
    assert [c.value for c in at.main.caption] == ["Shaded: alerts firing (LLMTTFTBudgetBurn vllm)."]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 14  # every column answered, GPU utilization too (on the rows of its target)
    for chart in charts:
        (shape,) = chart["layout"]["shapes"]
        (note,) = chart["layout"]["annotations"]
        assert (shape["type"], shape["fillcolor"], note["text"]) == ("rect", "rgba(214, 39, 40, 0.12)",
                                                                      "LLMTTFTBudgetBurn vllm")
        start, end = (pd.Timestamp(shape[x]).timestamp() for x in ("x0", "x1"))
        assert (start, end) == (pytest.approx(now - 300, abs=0.01), pytest.approx(now - 150 + 7.5, abs=0.01))


def test_slo_page_says_the_span_its_figures_rest_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every query answers one TTFT series at 240: as the span query, 240 s of data (4 minutes of the
    # 30-day window); the other figures are not this test's matter.
    vector = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"slo": "ttft", "engine": "vllm", "model": "m"}, "value": [1700000000.5, "240"]}]}}
    with serving(answer(vector)) as server:
        monkeypatch.setenv("INFERSIGHT_UI_PROMETHEUS_URL", server.url)
        at, _ = page("slos")
    assert not at.exception
    assert [e.value for e in at.error] == []
    assert [w.value for w in at.warning] == ["Prometheus holds 4 min of the 30-day SLO window: attainment and budget "
                                             "are over that span, not 30 days."]
    table = at.dataframe[0].value
    assert (list(table["SLO"]), list(table["engine"]), list(table["over"])) == (["ttft"], ["vllm"], ["4 min"])
