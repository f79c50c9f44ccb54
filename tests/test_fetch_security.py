"""What the fetch side does with credentials and budgets, through the real exporter HTTP server
and real engine endpoints on 127.0.0.1: a URL's user:password is basic auth and shows nowhere
else, a redirect never takes credentials to another host, and a scrape that joins a fetch
already in flight answers within its own budget."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.engine_server import EngineServer
from tests.harness import failure_series, running_exporter, scrape, series
from tests.processes import infersight_command
from tests.test_faults import HEALTHY, HEALTHY_SERIES, closed_port
from tests.test_fetch_client import ScriptedEngine

pytestmark = pytest.mark.integration

OPENMETRICS_ONLY = "application/openmetrics-text;version=1.0.0"
# What Prometheus 2.x/3.x sends: OpenMetrics first, text too, so the exporter answers in text.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;"
                     "q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


def healthy_series(target: str) -> list[str]:
    return [line.replace('target="good"', f'target="{target}"') for line in HEALTHY_SERIES]


def down_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The exporter's "target down" log lines, less their duration, sorted."""
    return sorted(m.split(" duration_seconds=")[0] for m in caplog.messages if m.startswith("target down "))


def check_config(*args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERSIGHT_")}
    return subprocess.run([*infersight_command(), "exporter", "--check-config", *args], capture_output=True,
                          text=True, env=clean, timeout=60)


def test_a_urls_userinfo_is_basic_auth_and_shows_nowhere_else(caplog: pytest.LogCaptureFixture) -> None:
    engine = EngineServer()
    engine.serve("/m", HEALTHY)
    engine.serve("/m?token=qs-secret-value", HEALTHY)
    up, down = f"127.0.0.1:{engine.port}", f"127.0.0.1:{closed_port()}"
    try:
        # httpx's own logger too: a CLI test earlier in the run may have set it to WARNING.
        with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"), \
                running_exporter(engine="vllm", targets=[
                f"http://alice:secret@{up}/m", f"http://bob:secret@{down}/m",
                f"query=http://{up}/m?token=qs-secret-value"]) as url:
            text = scrape(url)
    finally:
        engine.close()
    assert series(text, up) == healthy_series(up)  # the label is host:port
    assert series(text, down) == failure_series("vllm", down, "connect")
    assert series(text, "query") == healthy_series("query")
    [request] = engine.behaviours["/m"].requests
    assert (request["Host"], request["Authorization"]) == (up, "Basic YWxpY2U6c2VjcmV0")  # base64("alice:secret")
    assert "secret" not in text
    # The failing target's log line and httpx's request lines: neither password nor query value.
    assert down_lines(caplog) == [
        f"target down engine=vllm target={down} reason=connect detail='ConnectError: All connection attempts failed'"]
    assert f'HTTP Request: GET http://{up}/m?token=*** "HTTP/1.1 200 OK"' in caplog.messages
    assert "secret" not in caplog.text

    result = check_config("--target", f"http://alice:secret@{up}/m",
                          "--target", f"query=http://{up}/m?token=qs-secret-value")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (f"ok: target {up} engine=auto url=http://{up}/m gpu=none auth=yes\n"
                             f"ok: target query engine=auto url=http://{up}/m?token=*** gpu=none auth=no\n")


def test_a_redirect_to_another_host_gets_no_credentials_and_the_target_is_down(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken-secret\n")
    engine, other = EngineServer(), EngineServer()
    other.serve("/m", HEALTHY)
    engine.serve("/bearer", other.url("/m"), mode="redirect")
    engine.serve("/basic", other.url("/m"), mode="redirect")
    engine.serve("/metadata", "http://169.254.169.254/latest/meta-data/", mode="redirect")
    bearer = {"bearer_token_file": str(token)}
    try:
        with caplog.at_level(logging.INFO), running_exporter(engine="vllm", targets=[
                {"name": "bearer", "url": engine.url("/bearer"), "auth": bearer},
                {"name": "basic", "url": engine.url("/basic").replace("http://", "http://alice:secret@")},
                {"name": "metadata", "url": engine.url("/metadata"), "auth": bearer}]) as url:
            text = scrape(url)
    finally:
        engine.close()
        other.close()
    assert other.behaviours["/m"].requests == []  # not asked at all, so never given a credential
    for name in ("bearer", "basic", "metadata"):
        assert series(text, name) == failure_series("vllm", name, "redirect")
    assert [engine.behaviours[p].requests[0]["Authorization"] for p in ("/bearer", "/basic", "/metadata")] == [
        "Bearer t0ken-secret", "Basic YWxpY2U6c2VjcmV0", "Bearer t0ken-secret"]
    refused = "refused: only the same scheme, host and port are followed"
    assert down_lines(caplog) == [
        f"target down engine=vllm target=basic reason=redirect detail='redirect to http://127.0.0.1:{other.port} "
        f"{refused}'",
        f"target down engine=vllm target=bearer reason=redirect detail='redirect to http://127.0.0.1:{other.port} "
        f"{refused}'",
        f"target down engine=vllm target=metadata reason=redirect detail='redirect to http://169.254.169.254:80 "
        f"{refused}'",
    ]
    assert "secret" not in text + caplog.text


def _joined_scrape(first_accept: str, configured_timeout: float = 10) -> tuple[str, float, str, int]:
    """A slow engine; a first exporter scrape without X-Prometheus-Scrape-Timeout-Seconds (its
    budget: the configured timeout); once the engine has that fetch, a Prometheus-like scrape that
    announces 1 s. Returns that second answer, how long it took, the first answer, and how many
    requests the engine got."""
    engine = ScriptedEngine()
    engine.gate("/m", HEALTHY.encode())  # answers once released: after the second scrape is answered
    try:
        with running_exporter(engine="vllm", scrape_timeout_seconds=configured_timeout,
                              targets=[f"slow={engine.url('/m')}"]) as url:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                first = pool.submit(httpx.get, url + "/metrics", headers={"Accept": first_accept}, timeout=60)
                assert engine.arrived.wait(10)
                started = time.monotonic()
                second = scrape(url, **{"X-Prometheus-Scrape-Timeout-Seconds": "1", "Accept": PROMETHEUS_ACCEPT})
                elapsed = time.monotonic() - started
                engine.release.set()
                first_text = first.result(timeout=60).text
    finally:
        engine.close()
    return second, elapsed, first_text, len(engine.requests)


def test_a_scrape_that_joins_a_longer_fetch_answers_within_its_own_budget() -> None:
    # The first scrape asks for OpenMetrics only, so the two exporter scrapes render separately and
    # meet at the target's shared fetch (exporter/scraper.py).
    second, elapsed, first, requests = _joined_scrape(OPENMETRICS_ONLY)
    assert series(second, "slow") == failure_series("vllm", "slow", "timeout")
    # Its budget is 1 s less the 0.5 s offset; the engine answers nobody before this scrape is
    # answered, so waiting for the shared fetch would take the first scrape's 10 s. The upper bound
    # lies halfway to that other outcome: it tells the two apart on however loaded a machine.
    assert 0.5 <= elapsed < 10 / 2
    assert requests == 1  # the second joined the fetch, and leaving it did not cancel it for the first:
    lines = first.splitlines()
    assert 'llm_exporter_target_up{engine="vllm",target="slow"} 1.0' in lines
    assert 'llm_exporter_scrape_errors_total{engine="vllm",reason="timeout",target="slow"} 1.0' in lines


def test_a_prometheus_scrape_joining_a_curl_scrape_answers_within_its_own_budget() -> None:
    second, elapsed, _, requests = _joined_scrape("*/*", configured_timeout=3)  # fails in 3 s, not 10
    # As above: the budget's 0.5 s at least, and under half of the 3 s it would wait otherwise.
    assert (series(second, "slow"), 0.5 <= elapsed < 3 / 2, requests) == (
        failure_series("vllm", "slow", "timeout"), True, 1)
