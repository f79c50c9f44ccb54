"""Scrapes that multiply do not multiply the load on the engine (exporter/server.py, Freshness):
pipelined and looping clients, counted in engine fetches; and nothing older than the reuse
window is served."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from infersight.exporter.server import FRESH_FETCH_BURST, MIN_SCRAPE_INTERVAL_SECONDS
from tests.engine_server import Behaviour, EngineServer
from tests.harness import running_exporter

# serial: answers counted per one-second window; beside other workers a window can close early.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]  # bounds on fetch counts under 20 looping clients: alone

PAYLOAD = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} %d\n'
RUNNING = re.compile(r'llm_requests_running\{engine="vllm",model="m",target="a"\} (\S+)')


@pytest.fixture
def engine() -> Iterator[tuple[str, Behaviour]]:
    server = EngineServer()
    behaviour = server.serve("/m", PAYLOAD % 1)
    try:
        yield server.url("/m"), behaviour
    finally:
        server.close()


def most_fetches(seconds: float) -> float:
    """What a target may be fetched in ``seconds``: the burst, then one per reuse window (and
    one for a window begun)."""
    return FRESH_FETCH_BURST + seconds / MIN_SCRAPE_INTERVAL_SECONDS + 1


def running_value(text: str) -> float:
    (value,) = RUNNING.findall(text)
    return float(value)


def test_three_hundred_pipelined_scrapes_make_a_few_engine_fetches(engine) -> None:
    url, behaviour = engine
    request = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nAccept-Encoding: identity\r\n\r\n"
    with running_exporter(engine="vllm", targets=[f"a={url}"]) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            started = time.monotonic()
            conn.sendall(request * 300)  # 21 kB: one read, under the 64 KiB head bound
            data, answers = b"", []
            while len(answers) < 300:
                data += conn.recv(1 << 20)
                while b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = int(re.search(rb"content-length: (\d+)", head).group(1))
                    if len(rest) < length:
                        break
                    answers.append((head.split(b" ", 2)[1], rest[:length]))
                    data = rest[length:]
            elapsed = time.monotonic() - started
    fetches = len(behaviour.requests)
    print(f"\n300 pipelined scrapes in {elapsed:.2f} s: {fetches} engine fetches")
    assert [status for status, _ in answers] == [b"200"] * 300
    assert {running_value(body.decode()) for _, body in answers} == {1.0}
    assert 1 <= fetches <= most_fetches(elapsed)


def test_twenty_looping_clients_make_about_one_engine_fetch_a_second(engine) -> None:
    url, behaviour = engine
    seconds, answered, statuses = 3.0, [], set()
    with running_exporter(engine="vllm", targets=[f"a={url}"]) as base:
        deadline = time.monotonic() + seconds

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                while time.monotonic() < deadline:
                    response = http.get(base + "/metrics")
                    statuses.add(response.status_code)
                    answered.append(running_value(response.text))

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
    fetches = len(behaviour.requests)
    print(f"\n20 looping clients, {len(answered)} scrapes in {elapsed:.2f} s: {fetches} engine fetches")
    assert statuses == {200} and set(answered) == {1.0}
    assert len(answered) > 100  # they did loop: one fetch per scrape would have been as many
    assert fetches <= most_fetches(elapsed)


def test_an_answer_is_served_again_only_within_the_window(engine) -> None:
    url, behaviour = engine
    with running_exporter(engine="vllm", targets=[f"a={url}"]) as base:
        def scrape() -> float:
            return running_value(httpx.get(base + "/metrics", timeout=30).text)

        burst = []
        for i in range(FRESH_FETCH_BURST):  # back to back, each fetched (a person with curl sees changes)
            behaviour.body = (PAYLOAD % (10 + i)).encode()
            burst.append(scrape())
        fetched_last = time.monotonic()
        behaviour.body = (PAYLOAD % 99).encode()
        again = scrape()  # no fetch left: the last answer, less than the window old
        served_again_after = time.monotonic() - fetched_last
        time.sleep(MIN_SCRAPE_INTERVAL_SECONDS + 0.05 - (time.monotonic() - fetched_last))
        later = scrape()  # more than the window after the last fetch ended: fetched afresh
    assert burst == [10.0, 11.0, 12.0]
    assert (again, served_again_after < MIN_SCRAPE_INTERVAL_SECONDS) == (12.0, True)
    assert later == 99.0
    assert len(behaviour.requests) == FRESH_FETCH_BURST + 1


def test_a_short_budgets_timeout_is_not_served_to_a_longer_scrape(engine) -> None:
    """A curl announcing a 0.6 s timeout (0.1 s budget) times out a target that answers in 0.3 s;
    Prometheus with a 5 s budget right after is not served that failure: it fetches afresh
    (without a token, at most once a window) and sees the target up."""
    url, behaviour = engine
    behaviour.mode, behaviour.delay = "slow", 0.3
    with running_exporter(engine="vllm", targets=[f"a={url}"]) as base:
        def up(announced: str) -> str:
            text = httpx.get(base + "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": announced},
                             timeout=30).text
            return re.search(r'llm_exporter_target_up\{engine="vllm",target="a"\} (\S+)', text).group(1)

        curls = [up("0.6") for _ in range(FRESH_FETCH_BURST)]  # every token spent on a timeout
        prometheus = up("5.5")
        curl_after = up("0.6")  # within the window: the good report, served again
    assert (curls, prometheus, curl_after) == (["0.0"] * FRESH_FETCH_BURST, "1.0", "1.0")
    assert len(behaviour.requests) == FRESH_FETCH_BURST + 1
