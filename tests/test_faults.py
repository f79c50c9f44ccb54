"""A broken, slow or garbage-serving engine shows up as data; its neighbours are served unchanged.

Each case runs the real exporter HTTP server against real HTTP engine endpoints on 127.0.0.1 and
asserts the exact series the exporter serves for the bad target and for a healthy one beside it.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time

import httpx
import pytest

from infersight.exporter.schema import ENGINE_SIGNALS
from tests.engine_server import EngineServer
from tests.harness import failure_series, running_exporter, scrape, series

HEALTHY = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 100.0
"""

PROVIDED = {"llm_requests_running", "llm_kv_cache_usage_ratio", "llm_generation_tokens_total"}
HEALTHY_SERIES = sorted([
    'llm_exporter_target_up{engine="vllm",target="good"} 1.0',
    'llm_exporter_dropped_series_total{engine="vllm",target="good"} 0.0',
    *[f'llm_exporter_scrape_errors_total{{engine="vllm",reason="{r}",target="good"}} 0.0'
      for r in ("timeout", "connect", "http_status", "redirect", "parse", "too_large")],
    'llm_requests_running{engine="vllm",model="m",target="good"} 3.0',
    'llm_kv_cache_usage_ratio{engine="vllm",model="m",target="good"} 0.42',
    'llm_generation_tokens_total{engine="vllm",model="m",target="good"} 100.0',
    # Every schema signal is listed; the payload above provides exactly these three.
    *[f'llm_exporter_signal_available{{engine="vllm",signal="{m.name}",target="good"}} '
      f'{1.0 if m.name in PROVIDED else 0.0}' for m in ENGINE_SIGNALS],
])

SCRAPE_TIMEOUT = 1.0


@pytest.fixture
def engines():
    server = EngineServer()
    server.serve("/good", HEALTHY)
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_pair(engines: EngineServer, bad_url: str, **flags) -> tuple[str, float]:
    started = time.monotonic()
    with running_exporter(engine="vllm", scrape_timeout_seconds=SCRAPE_TIMEOUT,
                          targets=[f"good={engines.url('/good')}", f"bad={bad_url}"], **flags) as url:
        text = scrape(url)
    return text, time.monotonic() - started


def test_healthy_target_alone(engines: EngineServer) -> None:
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/good')}"]) as url:
        assert series(scrape(url), "good") == HEALTHY_SERIES


@pytest.mark.parametrize(("case", "reason"), [
    ("refused", "connect"),
    ("dns", "connect"),
    ("timeout", "timeout"),
    ("slow_drip", "timeout"),
    ("http_500", "http_status"),
    ("http_404", "http_status"),
    ("redirect_loop", "redirect"),
    ("truncated", "connect"),
    ("binary_garbage", "parse"),
    ("html_error_page", "parse"),
    ("too_large", "too_large"),
    ("gzip_bomb", "too_large"),
    ("duplicate_series", "parse"),
    ("conflicting_type", "parse"),
    ("not_utf8", "parse"),
])
def test_a_failing_target_is_data_and_its_neighbour_is_unchanged(engines: EngineServer, case: str,
                                                                  reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    big = HEALTHY * 200
    looked_up: list[str] = []
    if case == "dns":
        # A name under .invalid never resolves (RFC 6761), but how long a resolver takes to say so
        # (or whether one answers at all) is the machine's. A local stub answers NXDOMAIN at once,
        # through the same call httpx's connection makes (asyncio's getaddrinfo, in a thread).
        real_getaddrinfo = socket.getaddrinfo

        def stub_resolver(host, *args, **kwargs):
            name = host.decode("ascii") if isinstance(host, bytes) else host  # anyio passes IDNA bytes
            if isinstance(name, str) and name.endswith(".invalid"):
                looked_up.append(name)
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", stub_resolver)
    setups = {
        "refused": lambda: f"http://127.0.0.1:{closed_port()}/metrics",
        "dns": lambda: "http://engine.does-not-exist.invalid:8000/metrics",
        "timeout": lambda: engines.serve("/bad", HEALTHY, mode="slow", delay=5) and engines.url("/bad"),
        "slow_drip": lambda: engines.serve("/bad", HEALTHY, mode="drip", delay=0.05) and engines.url("/bad"),
        "http_500": lambda: engines.serve("/bad", mode="status", status=500) and engines.url("/bad"),
        "http_404": lambda: engines.url("/nothing-here"),
        "redirect_loop": lambda: engines.serve("/bad", mode="redirect_loop") and engines.url("/bad"),
        "truncated": lambda: engines.serve("/bad", HEALTHY, mode="truncated") and engines.url("/bad"),
        "binary_garbage": lambda: engines.serve("/bad", bytes(range(256)) * 4) and engines.url("/bad"),
        "html_error_page": lambda: engines.serve("/bad", "<html><body>502 Bad Gateway</body></html>\n")
        and engines.url("/bad"),
        "too_large": lambda: engines.serve("/bad", big) and engines.url("/bad"),
        "gzip_bomb": lambda: engines.serve("/bad", big, mode="gzip_bomb") and engines.url("/bad"),
        "duplicate_series": lambda: engines.serve("/bad", HEALTHY + HEALTHY.splitlines()[2] + "\n")
        and engines.url("/bad"),
        "conflicting_type": lambda: engines.serve(
            "/bad", HEALTHY + "# TYPE vllm:num_requests_running counter\nvllm:num_requests_running_total 1\n")
        and engines.url("/bad"),
        "not_utf8": lambda: engines.serve("/bad", HEALTHY.encode() + b'vllm:x{model_name="\xff\xfe"} 1\n')
        and engines.url("/bad"),
    }
    text, elapsed = scrape_pair(engines, setups[case](), max_body_bytes=len(big) - 1)
    assert series(text, "bad") == failure_series("vllm", "bad", reason)
    assert series(text, "good") == HEALTHY_SERIES
    assert elapsed < SCRAPE_TIMEOUT + 2.5  # the exporter answers within the scrape timeout (+ start-up)
    assert looked_up == (["engine.does-not-exist.invalid"] if case == "dns" else [])  # DNS, not something else


def test_gzip_encoded_payload_is_read(engines: EngineServer) -> None:
    engines.serve("/gz", HEALTHY, mode="gzip")
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/gz')}"]) as url:
        assert series(scrape(url), "good") == HEALTHY_SERIES


def test_prometheus_scrape_timeout_header_is_honoured(engines: EngineServer) -> None:
    # The budget itself, exactly: the header less the 0.5 s offset, never above the configured 30 s.
    from infersight.exporter.server import Exporter
    from infersight.exporter.settings import load_settings

    exporter = Exporter(load_settings({"engine": "vllm", "scrape_timeout_seconds": 30, "targets": ["a=http://a/m"]}))
    try:
        assert [exporter.scrape_timeout(h) for h in ("1.5", "60", None, "", "not-a-number")] == [1.0, 30, 30, 30, 30]
    finally:
        exporter.close()
    # End to end: an engine that answers after 3 s is a timeout with the header (1 s budget) and
    # would be an answer with the configured 30 s. The outcome says which budget was used, however
    # loaded the machine is; only the lower bound is on the wall clock (a clock never runs fast).
    engines.serve("/slow", HEALTHY, mode="slow", delay=3)
    with running_exporter(engine="vllm", scrape_timeout_seconds=30, targets=[f"slow={engines.url('/slow')}"]) as url:
        started = time.monotonic()
        text = scrape(url, **{"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
        elapsed = time.monotonic() - started
    assert series(text, "slow") == failure_series("vllm", "slow", "timeout")
    assert elapsed >= 1.0


def test_errors_accumulate_and_the_target_recovers(engines: EngineServer) -> None:
    bad = engines.serve("/flaky", mode="status", status=503)
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/flaky')}"]) as url:
        scrape(url)
        assert series(scrape(url), "good") == failure_series("vllm", "good", "http_status", count=2)
        bad.mode, bad.body, bad.status = "ok", HEALTHY.encode(), 200
        recovered = series(scrape(url), "good")
    expected = [line.replace('reason="http_status",target="good"} 0.0', 'reason="http_status",target="good"} 2.0')
                for line in HEALTHY_SERIES]
    assert recovered == expected


def test_counter_reset_after_an_engine_restart_is_passed_through(engines: EngineServer) -> None:
    payload = engines.serve("/engine", HEALTHY)
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        before = series(scrape(url), "good")
        payload.body = HEALTHY.replace("} 100.0", "} 4.0").encode()
        after = series(scrape(url), "good")
    line = 'llm_generation_tokens_total{engine="vllm",model="m",target="good"} %s'
    assert line % "100.0" in before and line % "4.0" in after  # Prometheus' rate() handles the reset
    assert [x for x in before if "generation_tokens" not in x] == [x for x in after if "generation_tokens" not in x]


def test_a_metric_renamed_between_scrapes_keeps_its_signal(engines: EngineServer) -> None:
    # An engine upgrade from vLLM 0.11 (gpu_cache_usage_perc) to 0.12 (kv_cache_usage_perc).
    payload = engines.serve("/engine", HEALTHY.replace("kv_cache_usage_perc", "gpu_cache_usage_perc"))
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        before = series(scrape(url), "good")
        payload.body = HEALTHY.encode()
        after = series(scrape(url), "good")
    assert before == after == HEALTHY_SERIES


def test_a_signal_that_disappears_is_reported_missing_not_served_stale(engines: EngineServer) -> None:
    payload = engines.serve("/engine", HEALTHY)
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        scrape(url)
        payload.body = HEALTHY.replace("vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_fraction_v99").encode()
        after = series(scrape(url), "good")
    expected = [line for line in HEALTHY_SERIES if not line.startswith("llm_kv_cache_usage_ratio")]
    expected = [line.replace('signal="llm_kv_cache_usage_ratio",target="good"} 1.0',
                             'signal="llm_kv_cache_usage_ratio",target="good"} 0.0') for line in expected]
    assert after == sorted(expected)


def test_nan_inf_and_awkward_label_values_are_served_faithfully(engines: EngineServer) -> None:
    model = 'a "quoted"\\model\nwith newline ünïcode'
    escaped = model.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    engines.serve("/engine", f"""\
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{model_name="{escaped}"}} NaN
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="{escaped}"}} +Inf
""")
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        text = scrape(url)
    from prometheus_client.parser import text_string_to_metric_families
    values = {(s.name, s.labels["model"]): s.value for f in text_string_to_metric_families(text)
              for s in f.samples if s.name in ("llm_kv_cache_usage_ratio", "llm_requests_waiting")}
    assert list(values) == [("llm_requests_waiting", model), ("llm_kv_cache_usage_ratio", model)]
    assert values[("llm_requests_waiting", model)] == float("inf")
    assert values[("llm_kv_cache_usage_ratio", model)] != values[("llm_kv_cache_usage_ratio", model)]  # NaN


def test_concurrent_exporter_scrapes_share_one_engine_fetch(engines: EngineServer) -> None:
    slow = engines.serve("/engine", HEALTHY, mode="slow", delay=0.6)
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            texts = list(pool.map(lambda _: scrape(url), range(2)))
    assert series(texts[0], "good") == series(texts[1], "good") == HEALTHY_SERIES
    assert len(slow.requests) == 1


def test_many_targets_are_rendered_off_the_loop_with_the_same_series(engines: EngineServer) -> None:
    from infersight.exporter.server import RENDER_IN_THREAD_FROM_TARGETS

    engines.serve("/engine", HEALTHY)
    n = RENDER_IN_THREAD_FROM_TARGETS
    with running_exporter(engine="vllm", targets=[f"t{i}={engines.url('/engine')}" for i in range(n)]) as url:
        text = scrape(url)
        openmetrics = httpx.get(url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                                timeout=60).text
    for i in (0, n - 1):
        assert series(text, f"t{i}") == [line.replace('target="good"', f'target="t{i}"') for line in HEALTHY_SERIES]
    assert (openmetrics.count("\nllm_exporter_target_up{"), openmetrics[-6:]) == (n, "# EOF\n")


def test_the_request_cannot_choose_what_is_fetched(engines: EngineServer) -> None:
    watched = engines.serve("/engine", HEALTHY)
    other = engines.serve("/other", HEALTHY.replace("3.0", "99.0"))
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        for query in (f"?target={engines.url('/other')}", f"?url={engines.url('/other')}&module=x"):
            response = httpx.get(url + "/metrics" + query, timeout=30)
            assert series(response.text, "good") == HEALTHY_SERIES
        assert httpx.get(url + "/probe?target=" + engines.url("/other"), timeout=30).status_code == 404
    assert len(watched.requests) == 2 and other.requests == []


def test_plain_text_is_asked_for_so_vllm_names_keep_their_colons(engines: EngineServer) -> None:
    watched = engines.serve("/engine", HEALTHY)
    with running_exporter(engine="vllm", targets=[f"good={engines.url('/engine')}"]) as url:
        scrape(url, Accept="application/openmetrics-text;version=1.0.0")
    assert "openmetrics" not in watched.requests[0]["Accept"]


def test_health_and_readiness_endpoints(engines: EngineServer) -> None:
    with running_exporter(engine="vllm", targets=[f"http://127.0.0.1:{closed_port()}/metrics"]) as url:
        assert httpx.get(url + "/-/healthy").text == "Healthy\n"
        ready = httpx.get(url + "/-/ready")
        assert (ready.status_code, ready.text) == (200, "Ready\n")


def test_ten_thousand_models_are_capped_with_a_counted_drop(engines: EngineServer) -> None:
    models = [f"org/model-{i:05d}" for i in range(10_000)]
    engines.serve("/many", "# TYPE vllm:num_requests_running gauge\n"
                  + "".join(f'vllm:num_requests_running{{model_name="{m}"}} 1\n' for m in models)
                  + "# TYPE vllm:kv_cache_usage_perc gauge\n"
                  + "".join(f'vllm:kv_cache_usage_perc{{model_name="{m}"}} 0.5\n' for m in models))
    with running_exporter(engine="vllm", max_models=3,
                          targets=[f"good={engines.url('/good')}", f"many={engines.url('/many')}"]) as url:
        scrape(url)
        text = scrape(url)
    kept = [line for line in series(text, "many") if not line.startswith("llm_exporter")]
    assert kept == sorted(
        [f'llm_kv_cache_usage_ratio{{engine="vllm",model="org/model-0000{i}",target="many"}} 0.5' for i in range(3)]
        + [f'llm_requests_running{{engine="vllm",model="org/model-0000{i}",target="many"}} 1.0' for i in range(3)])
    # Two scrapes, each dropping 2 x 9,997 series; the target itself stays up.
    assert 'llm_exporter_dropped_series_total{engine="vllm",target="many"} 39988.0' in series(text, "many")
    assert 'llm_exporter_target_up{engine="vllm",target="many"} 1.0' in series(text, "many")
    assert series(text, "good") == HEALTHY_SERIES
