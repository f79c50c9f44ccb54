"""The simulated engine's control endpoints against bad input, through a real `infersight simulate`
process: every field is checked (400 naming it), faults are capped and handled in linear time, and
an engine loop that dies anyway turns /health to 503 rather than hanging its clients."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.processes import free_port, infersight_command, running
from tests.test_simulator_api import MODEL, engine  # noqa: F401 (the fixture: one simulated engine per module)

pytestmark = pytest.mark.integration

KV_RANGE = "kv_saturation's value is the share of the KV cache left: a number > 0 and <= 1"
DURATION = "must be a finite number > 0 (or absent: until cleared)"
KINDS = "'ttft_regression', 'outage', 'error_burst', 'kv_saturation', 'slow_metrics' or 'restart'"
# 3,000 POST /control/faults before this change, on the machine this was written on (a keep-alive
# client, every post answered with every fault so far, the engine loop scanning every fault at each
# step): 24.7 s, growing with each post (0.8 s for the first 500, 6.4 s for the last 500).
BEFORE_SECONDS = 24.7


def completes(base: str) -> bool:
    response = httpx.post(f"{base}/v1/completions", timeout=30, json={
        "model": MODEL, "prompt": "still there?", "max_tokens": 3, "ignore_eos": True})
    return response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 3


def problem(field: str | None, message: str) -> dict:
    return {"error": f"{field}: {message}" if field else message, "field": field,
            "problems": [{"field": field, "message": message}]}


@pytest.mark.parametrize(("body", "field", "message"), [
    # JSON's NaN and Infinity (Python's json and pydantic read them): the NaN used to stop the engine loop.
    ('{"kind": "kv_saturation", "value": NaN}', "value", KV_RANGE),
    ('{"kind": "kv_saturation", "value": Infinity}', "value", KV_RANGE),
    ('{"kind": "kv_saturation", "value": 0}', "value", KV_RANGE),
    ('{"kind": "kv_saturation", "value": 1.5}', "value", KV_RANGE),
    ('{"kind": "error_burst", "value": -0.1}', "value",
     "error_burst's value is the share of requests that fail: a number >= 0 and <= 1"),
    ('{"kind": "ttft_regression", "value": 1e9}', "value",
     "ttft_regression's value is seconds added to each prefill: a number >= 0 and <= 3600"),
    ('{"kind": "slow_metrics", "value": 7200}', "value",
     "slow_metrics's value is the delay of /metrics in seconds: a number >= 0 and <= 3600"),
    ('{"kind": "outage", "value": 1}', "value", "outage takes no value"),
    ('{"kind": "outage", "duration_seconds": -30}', "duration_seconds", DURATION),
    ('{"kind": "outage", "duration_seconds": 0}', "duration_seconds", DURATION),
    ('{"kind": "outage", "duration_seconds": NaN}', "duration_seconds", DURATION),
    ('{"kind": "outage", "delay_seconds": -1}', "delay_seconds", "must be a finite number >= 0"),
    ('{"kind": "outage", "delay_seconds": Infinity}', "delay_seconds", "must be a finite number >= 0"),
    ('{"kind": "error_burst", "value": "0.5"}', "value", "Input should be a valid number"),
    ('{"kind": "error_burst", "value": true}', "value", "Input should be a valid number"),
    ('{"kind": "meltdown"}', "kind", f"Input should be {KINDS}"),
    ('{"value": 0.5}', "kind", "Field required"),
    ('{"kind": "outage", "duration": 30}', "duration", "Extra inputs are not permitted"),
    ('["outage"]', None, "Input should be an object"),
    ('{"kind": "outage"', None, "Invalid JSON: EOF while parsing an object at line 1 column 17"),
])
def test_a_bad_fault_is_a_400_naming_its_field(engine: str, body: str, field: str | None, message: str) -> None:
    response = httpx.post(f"{engine}/control/faults", content=body, timeout=10,
                          headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()) == (400, problem(field, message))
    assert httpx.get(f"{engine}/control/faults", timeout=5).json()["faults"] == []  # nothing stored
    assert httpx.get(f"{engine}/health", timeout=5).status_code == 200


def test_the_engine_loop_survives_a_refused_nan(engine: str) -> None:
    httpx.post(f"{engine}/control/faults", content='{"kind": "kv_saturation", "value": NaN}', timeout=10)
    assert completes(engine)  # before, the loop was dead here and this request never ended
    good = httpx.post(f"{engine}/control/faults", json={"kind": "kv_saturation", "value": 0.5,
                                                         "duration_seconds": 30}, timeout=10)
    try:
        assert good.status_code == 201
        assert good.json()["faults_kept"] == 1
        assert {k: v for k, v in good.json()["fault"].items() if k != "start_seconds"} == {
            "kind": "kv_saturation", "duration_seconds": 30.0, "value": 0.5}
        assert completes(engine)
    finally:
        httpx.delete(f"{engine}/control/faults", timeout=5).raise_for_status()


def test_a_body_over_64_kib_is_a_413(engine: str) -> None:
    response = httpx.post(f"{engine}/control/faults", content=b" " * (64 * 1024 + 1), timeout=10)
    assert (response.status_code, response.json()) == (413, {"error": "the body is larger than 65,536 bytes",
                                                              "field": None})


@pytest.mark.parametrize(("query", "field", "message"), [
    ("window=nan", "window", "must be a finite number > 0 (seconds)"),
    ("window=inf", "window", "must be a finite number > 0 (seconds)"),
    ("window=0", "window", "must be a finite number > 0 (seconds)"),
    ("window=-60", "window", "must be a finite number > 0 (seconds)"),
    ("window=abc", "window", "Input should be a valid number, unable to parse string as a number"),
    ("start=nan", "start", "must be a finite number (Unix time)"),
    ("start=100&end=-inf", "end", "must be a finite number (Unix time)"),
    ("start=100&end=50", "end", "must be after start"),
    ("end=100", "end", "needs start"),
    ("windw=60", "windw", "Extra inputs are not permitted"),
])
def test_a_bad_truth_query_is_a_400_naming_its_field(engine: str, query: str, field: str, message: str) -> None:
    response = httpx.get(f"{engine}/control/truth?{query}", timeout=10)
    assert (response.status_code, response.json()) == (400, problem(field, message))


def test_a_good_truth_query(engine: str) -> None:
    now = time.time()
    for params in ({"window": "5"}, {"start": str(now - 5), "end": str(now)}, {}):
        response = httpx.get(f"{engine}/control/truth", params=params, timeout=10)
        assert response.status_code == 200
        assert set(response.json()) == {"seconds", "generated_tokens", "output_tokens_per_second", "requests_started",
                                        "ttft_p50_seconds", "ttft_p99_seconds", "itl_p50_seconds", "itl_p99_seconds"}


def test_3000_posted_faults_are_capped_and_take_linear_time(engine: str) -> None:
    fault = {"kind": "ttft_regression", "value": 0.001, "duration_seconds": 600}
    with httpx.Client(timeout=60) as client:
        # The yardstick: this machine's cost of one request on this connection, now.
        started = time.monotonic()
        for _ in range(300):
            client.get(f"{engine}/health")
        per_request = (time.monotonic() - started) / 300

        codes: list[int] = []
        sizes: list[int] = []
        refusal = None
        marks = []
        started = time.monotonic()
        for i in range(3000):
            response = client.post(f"{engine}/control/faults", json=fault)
            codes.append(response.status_code)
            sizes.append(len(response.content))
            if response.status_code == 429:
                refusal = response.json()
            if i % 500 == 499:
                marks.append(time.monotonic() - started)
        elapsed = time.monotonic() - started
        listed = client.get(f"{engine}/control/faults").json()
        cleared = client.delete(f"{engine}/control/faults")
    print(f"\n3,000 POST /control/faults: {elapsed:.2f} s (before: {BEFORE_SECONDS} s); after each 500: "
          f"{', '.join(f'{m:.2f}' for m in marks)} s; one GET /health: {per_request * 1000:.2f} ms")

    assert (codes.count(201), codes.count(429), codes[:1000] == [201] * 1000) == (1000, 2000, True)
    assert refusal == {"error": "at most 1000 faults are kept at once: wait for some to end, or clear them "
                                "(DELETE /control/faults)", "field": None}
    assert (len(listed["faults"]), listed["active_faults"].count("ttft_regression")) == (1000, 1000)
    assert cleared.json()["faults"] == []
    # Linear: a post's answer does not grow with the faults kept (it was the whole list: 355 kB at
    # the 3,000th), and 3,000 posts cost at most 8 plain requests each (measured: about 1.3).
    assert sizes[999] - sizes[0] <= 4  # "faults_kept": 1 .. 1000: the digits alone
    assert elapsed < 3000 * per_request * 8
    assert completes(engine)


def test_a_dead_engine_loop_turns_health_to_503(tmp_path) -> None:
    # No profile check refuses this one (prefill speed 0): its first prefill stops the engine loop,
    # as any bug in the model would. The HTTP server keeps running, as a real engine's may when
    # its engine core dies.
    profile = tmp_path / "broken.yaml"
    profile.write_text("base: small\nperformance: {prefill_tokens_per_second: 0}\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [*infersight_command(), "simulate", "--engine", "vllm", "--version", "0.33", "--profile", str(profile),
           "--no-load", "--port", str(port)]
    with running(cmd, f"{base}/health", log=tmp_path / "simulate.log"):
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # idle: nothing prefilled yet
        first = httpx.post(f"{base}/v1/completions", timeout=30, json={"model": MODEL, "prompt": "crash"})
        assert (first.status_code, first.json()["error"]["message"]) == (
            500, "the engine failed the request (error)")  # ended, not left waiting forever
        health = httpx.get(f"{base}/health", timeout=5)
        assert (health.status_code, health.text) == (503, "engine loop stopped (ZeroDivisionError: division by zero)\n")
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 503
        later = httpx.post(f"{base}/v1/completions", timeout=30, json={"model": MODEL, "prompt": "anyone?"})
        assert (later.status_code, later.json()["error"]["type"]) == (503, "ServiceUnavailableError")
        assert httpx.get(f"{base}/control/state", timeout=5).json()["failure"] == "ZeroDivisionError: division by zero"
    assert "the engine loop of vllm 0.33 stopped: ZeroDivisionError: division by zero" in (
        tmp_path / "simulate.log").read_text()


def test_an_address_the_simulator_cannot_bind_is_one_line() -> None:
    import subprocess

    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine. Exit 1, as a port in use.
    result = subprocess.run([*infersight_command(), "simulate", "--engine", "vllm", "--host", "192.0.2.1",
                             "--port", "8000"], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stderr) == (
        1, "infersight simulate: cannot listen on 192.0.2.1:8000: Cannot assign requested address\n")
