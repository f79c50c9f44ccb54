"""The embedded source (``History``, behind the web UI and ``infersight compare --exporter``)
against exporters that misbehave on 127.0.0.1: one deadline bounds a whole scrape round, and a
bad answer is an error entry naming its URL, never an exception."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from infersight.compare import History
from tests.engine_server import EngineServer
from tests.processes import free_port, infersight_command

pytestmark = pytest.mark.integration

GOOD = '# TYPE llm_requests_running gauge\nllm_requests_running{engine="vllm",model="m",target="t"} 3\n'
GOOD_SERIES = {"llm_requests_running": [((("engine", "vllm"), ("model", "m"), ("target", "t")), 3.0)]}
# The web UI's deadline (dashboard/data.py); the dripping servers below send a byte every 2 s, so
# httpx's per-read timeout of 3 s (all History used before) never fired: a round took as long as
# the drip (GOOD is 97 bytes: over three minutes).
TIMEOUT = 3.0
DRIP_SECONDS = 2.0
# What may come after the deadline: cancelling the late streams and closing the client's sockets
# (loopback, well under a millisecond), closing the round's event loop and parsing a few answers of
# under 100 bytes each (microseconds). The rest is the scheduler of two shared cores under a test
# run, generously one second.
MARGIN = 1.0


@contextmanager
def dripping_server(head: bytes, drip: bytes) -> Iterator[str]:
    """A server that sends ``head`` at once, then ``drip`` one byte every DRIP_SECONDS, until stopped."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    connections: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        try:
            conn.sendall(head)
            for byte in drip:
                if stop.wait(DRIP_SECONDS):
                    return
                conn.sendall(bytes([byte]))
        except OSError:  # the client gave up and closed
            return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in connections:
            conn.close()


@pytest.fixture
def exporters() -> Iterator[tuple[EngineServer, str, str]]:
    server = EngineServer()
    server.serve("/good", GOOD)
    server.serve("/not-a-number", 'llm_requests_running{engine="vllm",model="m",target="u"} abc\n')
    server.serve("/html", "<html><body>Sign in</body></html>\n", content_type="text/html")
    server.serve("/bucket", '# TYPE llm_ttft_seconds histogram\nllm_ttft_seconds_bucket{le="fast"} 1\n')
    server.serve("/binary", b"\xff\xfe\x00\x01 1\n")
    server.serve("/status", mode="status", status=500)
    body = GOOD.encode()
    # One drips its body after the headers, the other even its status line.
    with dripping_server(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode(), body) as drip, \
            dripping_server(b"", f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body) as head:
        try:
            yield server, drip, head
        finally:
            server.close()


def test_one_deadline_bounds_a_round_and_bad_answers_are_errors(exporters: tuple[EngineServer, str, str]) -> None:
    server, drip, head = exporters
    refused = f"http://127.0.0.1:{free_port()}/metrics"
    urls = [server.url(p) for p in ("/good", "/not-a-number", "/html", "/bucket", "/binary", "/status")]
    history = History([urls[0], drip, *urls[1:], head, refused], timeout=TIMEOUT)

    started = time.monotonic()
    snapshot = history.scrape()
    elapsed = time.monotonic() - started
    print(f"\none round of 9 exporters (2 dripping a byte every {DRIP_SECONDS:g} s) with a {TIMEOUT:g} s deadline: "
          f"{elapsed:.2f} s")

    late = f"no complete answer within {TIMEOUT:g} s"
    assert snapshot.errors == {
        drip: late,
        server.url("/not-a-number"): "the answer is not the Prometheus text format (could not convert string to "
                                     "float: 'abc')",
        server.url("/html"): "the answer is not the Prometheus text format (invalid metric name:<html><body>Sign "
                             "in</body></html>)",
        server.url("/bucket"): "the answer is not the Prometheus text format (the bucket bound le='fast' of "
                               "llm_ttft_seconds_bucket is not a number)",
        server.url("/binary"): "the answer is not UTF-8 text",
        server.url("/status"): "HTTP 500 Internal Server Error",
        head: late,
        refused: "connection refused",
    }
    assert snapshot.series == GOOD_SERIES  # the good exporter's series are kept, nothing of the bad ones
    # Concurrent, and one deadline: two dripping exporters cost one TIMEOUT, not two, nor the drip.
    assert TIMEOUT - 0.01 <= elapsed <= TIMEOUT + MARGIN
    assert list(history.snapshots) == [snapshot]


def test_a_round_without_trouble_ends_when_the_answers_are_in() -> None:
    server = EngineServer()
    server.serve("/a", GOOD)
    try:
        history = History([server.url("/a")], timeout=TIMEOUT)
        started = time.monotonic()
        snapshot = history.scrape(at=100.0)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert (snapshot.time, snapshot.series, snapshot.errors) == (100.0, GOOD_SERIES, {})
    assert elapsed < TIMEOUT  # the deadline bounds a round; it is not a wait


def test_an_answer_over_the_size_cap_is_an_error() -> None:
    server = EngineServer()
    server.serve("/big", GOOD * 20)  # 1,940 bytes
    try:
        snapshot = History([server.url("/big")], timeout=TIMEOUT, max_answer_bytes=1000).scrape()
    finally:
        server.close()
    assert (snapshot.series, snapshot.errors) == ({}, {server.url("/big"): "the answer is larger than 1,000 bytes"})


def test_a_scrape_from_inside_a_running_event_loop() -> None:
    server = EngineServer()
    server.serve("/a", GOOD)

    async def caller() -> dict:
        return History([server.url("/a")], timeout=TIMEOUT).scrape().series

    try:
        assert asyncio.run(caller()) == GOOD_SERIES
    finally:
        server.close()


def test_compare_prints_a_bad_exporter_as_one_line() -> None:
    server = EngineServer()
    server.serve("/m", 'llm_requests_running{engine="vllm"} abc\n')
    try:
        result = subprocess.run([*infersight_command(), "compare", "--exporter", server.url("/m"), "--window", "0s",
                                 "--format", "csv"], capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stderr) == (0, f"infersight compare: {server.url('/m')}: the answer is not the "
                                                     "Prometheus text format (could not convert string to float: "
                                                     "'abc')\n")
    assert result.stdout.splitlines()[0].startswith("engine,model,target,")
