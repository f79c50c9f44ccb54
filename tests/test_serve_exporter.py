"""The exporter's endpoints through its real HTTP server (uvicorn on the scrape loop): formats by
Accept, gzip by Accept-Encoding, HEAD, the landing page, what other paths and methods get."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from tests.engine_server import EngineServer
from tests.harness import running_exporter, series

pytestmark = pytest.mark.integration

PAYLOAD = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 2\n'
RUNNING = 'llm_requests_running{engine="vllm",model="m",target="a"} 2.0'
# What Prometheus 2.x sends (scrape.go's acceptHeader with OpenMetrics enabled).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    engine = EngineServer()
    engine.serve("/m", PAYLOAD)
    try:
        with running_exporter(engine="vllm", targets=[f"a={engine.url('/m')}"]) as base:
            yield base
    finally:
        engine.close()


def _raw(url: str, method: str = "GET", **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decompressed)."""
    with httpx.Client(timeout=30) as client, client.stream(method, url, headers=headers) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [
    ("gzip", True), ("gzip, deflate", True), ("*", True),
    ("identity", False), ("gzip;q=0", False), ("gzip;q=0, identity;q=1", False), ("br", False),
    ("GZIP", True), ("x-gzip", True), ("gzip;q=0.001", True),
    ("gzip;q=0, *", False), ("*;q=0", False), ("gzip ; Q=0.000", False),  # gzip refused outright
])
def test_gzip_only_where_accepted(url: str, accept_encoding: str, gzipped: bool) -> None:
    response, body = _raw(url + "/metrics", **{"Accept-Encoding": accept_encoding})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == ("gzip" if gzipped else None)
    assert int(response.headers["content-length"]) == len(body)
    text = (gzip.decompress(body) if gzipped else body).decode()
    assert RUNNING in series(text, "a")


@pytest.mark.parametrize(("accept", "content_type"), [
    (None, "text/plain; version=0.0.4; charset=utf-8"),
    (PROMETHEUS_ACCEPT, "text/plain; version=0.0.4; charset=utf-8"),  # text/plain listed: the faster format
    ("text/plain", "text/plain; version=0.0.4; charset=utf-8"),
    ("application/openmetrics-text; version=1.0.0",
     "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
])
def test_the_format_follows_accept(url: str, accept: str | None, content_type: str) -> None:
    headers = {"Accept-Encoding": "identity"} | ({"Accept": accept} if accept else {})
    response, body = _raw(url + "/metrics", **headers)
    assert (response.status_code, response.headers["content-type"]) == (200, content_type)
    text = body.decode()
    assert text.endswith("# EOF\n") is content_type.startswith("application/openmetrics-text")
    assert f'llm_requests_running{{engine="vllm",model="m",target="a"}} 2' in text


def test_head_of_metrics_has_the_heads_and_no_body(url: str) -> None:
    response, body = _raw(url + "/metrics", "HEAD", **{"Accept-Encoding": "identity"})
    assert (response.status_code, response.headers["content-type"], body) == (
        200, "text/plain; version=0.0.4; charset=utf-8", b"")
    assert int(response.headers["content-length"]) > len(PAYLOAD)


def test_the_landing_page_and_unknown_paths(url: str) -> None:
    landing = httpx.get(url + "/", timeout=30)
    missing = httpx.get(url + "/metrics/extra", timeout=30)
    assert (landing.status_code, landing.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert landing.text == (
        '<!doctype html><html><head><title>infersight exporter</title></head><body>\n'
        '<h1>infersight exporter</h1><p>Normalized LLM-engine metrics for 1 target(s).</p>\n'
        '<ul><li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>\n'
        '<li><a href="/-/ready">/-/ready</a></li></ul></body></html>\n')
    assert (missing.status_code, missing.text) == (404, "Not found\n")


def test_probes_and_refused_methods(url: str) -> None:
    healthy = httpx.get(url + "/-/healthy", timeout=30)
    ready = httpx.head(url + "/-/ready", timeout=30)
    posted = httpx.post(url + "/metrics", content=b"", timeout=30)
    assert (healthy.status_code, healthy.text, ready.status_code, ready.text) == (200, "Healthy\n", 200, "")
    assert (posted.status_code, posted.text, posted.headers["allow"], posted.headers["connection"]) == (
        405, "Method not allowed\n", "GET, HEAD", "close")
    assert "server" not in healthy.headers  # no product name and version for a scanner


def test_a_request_body_is_refused(url: str) -> None:
    response = httpx.request("GET", url + "/metrics", content=b"x" * 10, timeout=30)
    assert (response.status_code, response.text, response.headers["connection"]) == (
        413, "Request bodies are not accepted\n", "close")
