"""The exporter's HTTP server (uvicorn with httptools, exporter/http_serve.py), byte for byte over a
raw socket: keep-alive, pipelining, HEAD, limits, timeouts, the connection cap and what a bad
request gets."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

import pytest

from infersight.exporter import http_serve
from infersight.exporter.http_serve import HttpServer, Request, Response, listening_socket

pytestmark = pytest.mark.integration

DATE = re.compile(rb"date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                  rb"\d{4} \d\d:\d\d:\d\d GMT\r\n")


async def _handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("a bug")
    body = f"{request.method} {request.path} HTTP/{request.version} {request.headers.get('x-a', '-')}\n"
    return Response(200, body.encode())


@contextmanager
def _serving(handler=_handler, **kwargs) -> Iterator[HttpServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = HttpServer(loop, listening_socket("127.0.0.1:0"), handler, **kwargs)
    runner = threading.Thread(target=served.serve_forever, daemon=True)
    runner.start()
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()
        runner.join(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with _serving() as served:
        yield served


def _connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=10)


def _undated(answer: bytes) -> bytes:
    """``answer`` with each response's Date header (which must be there, in the HTTP date format)
    replaced by ``date: *``."""
    heads = len(re.findall(rb"(?:\A|\n)HTTP/1\.1 \d\d\d ", answer))
    undated, dates = DATE.subn(b"date: *\r\n", answer)
    assert dates == heads, answer
    return undated


def _read_all(conn: socket.socket) -> bytes:
    """Everything until the server closes the connection, Date headers undated."""
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return _undated(b"".join(chunks))


def _read_response(conn: socket.socket, head_only: bool = False) -> bytes:
    """One response with a Content-Length body (the head only for HEAD), Date undated."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"\r\ncontent-length: (\d+)\r\n", head + b"\r\n").group(1))
    while len(body) < length and not head_only:
        body += conn.recv(65536)
    return _undated(head + b"\r\n\r\n" + body)


def _answer(status: int, body: bytes, *extra: bytes, close: bool = False) -> bytes:
    """A response as the server writes it: Date first, uvicorn's lower-case header names."""
    head = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode()), b"date: *",
            b"content-type: text/plain; charset=utf-8", b"content-length: %d" % len(body), *extra]
    if close:
        head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _ok(body: bytes, close: bool = False) -> bytes:
    return _answer(200, body, close=close)


def test_keep_alive_and_pipelined_requests(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\r\n")
        first = _read_response(conn)
        conn.sendall(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\nHEAD /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\nConnection: close\r\n\r\n")
        rest = _read_all(conn)  # three pipelined requests, answered in order
    assert first == _ok(b"GET /a HTTP/1.1 one\n")
    assert rest == (_ok(b"GET /b HTTP/1.1 -\n") + _ok(b"HEAD /c HTTP/1.1 -\n")[:-len(b"HEAD /c HTTP/1.1 -\n")]
                    + _ok(b"GET /d HTTP/1.1 -\n", close=True))


def test_http_1_0_closes_after_one_answer(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /x HTTP/1.0\r\n\r\n")
        assert _read_all(conn) == _ok(b"GET /x HTTP/1.0 -\n", close=True)


def test_head_answers_the_head_only(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"HEAD /h HTTP/1.1\r\n\r\n")
        head = _read_response(conn, head_only=True)
        conn.sendall(b"GET /after-head HTTP/1.1\r\nConnection: close\r\n\r\n")  # nothing of a body came between
        rest = _read_all(conn)
    assert head == _ok(b"HEAD /h HTTP/1.1 -\n")[:-len(b"HEAD /h HTTP/1.1 -\n")]
    assert rest == _ok(b"GET /after-head HTTP/1.1 -\n", close=True)


INVALID = _answer(400, b"Invalid HTTP request received.", close=True)
TOO_LARGE_HEAD = _answer(431, b"Request Header Fields Too Large", close=True)
BODY_REFUSED = _answer(413, b"Request bodies are not accepted\n", close=True)


@pytest.mark.parametrize(("request_bytes", "answer"), [
    (b"POST /m HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
     _answer(405, b"Method not allowed\n", b"allow: GET, HEAD", close=True)),
    (b"DELETE /m HTTP/1.1\r\n\r\n", _answer(405, b"Method not allowed\n", b"allow: GET, HEAD", close=True)),
    (b"GET /m HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", BODY_REFUSED),
    (b"GET /m HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", BODY_REFUSED),
    (b"GET /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BODY_REFUSED),
    (b"GARBAGE\r\n\r\n", INVALID),
    (b"GET /m HTTP/2\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.0\n\n", INVALID),  # bare newlines: llhttp is strict
    (b"GET /m HTTP/1.1\r\nNo colon here\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length: x\r\n\r\n", INVALID),
    # Digits that are not ASCII (int() would take the Arabic-Indic ones): refused by llhttp, 400.
    ("GET /m HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode(), INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", INVALID),
    ("GET /m HTTP/1.1\r\nContent-Length: \u0663\r\n\r\n".encode(), INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length: -1\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length: +0\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length:\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", INVALID),
    (b"GET /\xff HTTP/1.1\r\n\r\n", INVALID),
    (b"GET /m HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", TOO_LARGE_HEAD),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", TOO_LARGE_HEAD),  # the request line is part of the head
    (b"GET /boom HTTP/1.1\r\n\r\n", _answer(500, b"Internal Server Error", close=True)),
])
def test_bad_requests_get_a_status_and_the_connection_ends(server: HttpServer, request_bytes: bytes,
                                                           answer: bytes) -> None:
    with _connect(server) as conn:
        conn.sendall(request_bytes)
        assert _read_all(conn) == answer


def test_a_content_length_of_zero_in_any_spelling_is_no_body(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /z HTTP/1.1\r\nContent-Length: 00\r\n\r\nGET /y HTTP/1.1\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n")
        assert _read_all(conn) == _ok(b"GET /z HTTP/1.1 -\n") + _ok(b"GET /y HTTP/1.1 -\n", close=True)


def test_a_head_sent_in_pieces_is_bounded_in_total(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /m HTTP/1.1\r\nX-A: " + b"a" * 60_000)
        conn.sendall(b"a" * 6_000)  # no piece is too large, the head is
        assert _read_all(conn) == TOO_LARGE_HEAD


def test_a_head_of_just_under_the_limit_is_served(server: HttpServer) -> None:
    start = b"GET /m HTTP/1.1\r\nConnection: close\r\nX-A: "
    filler = b"a" * (http_serve.MAX_HEAD_BYTES - len(start) - 4)
    with _connect(server) as conn:
        conn.sendall(start + filler + b"\r\n\r\n")
        assert _read_all(conn) == _ok(b"GET /m HTTP/1.1 " + filler + b"\n", close=True)


def test_a_bug_is_logged_with_its_traceback_on_the_exporters_logger(server: HttpServer, caplog) -> None:
    with caplog.at_level(logging.DEBUG), _connect(server) as conn:
        conn.sendall(b"GET /boom HTTP/1.1\r\n\r\n")
        _read_all(conn)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (record.name, record.levelname, record.getMessage()) == (
        "infersight.exporter", "ERROR", "Exception in ASGI application\n")
    assert repr(record.exc_info[1]) == "RuntimeError('a bug')"


def test_bad_clients_are_logged_at_debug_without_tracebacks(server: HttpServer, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        for request_bytes in (b"GARBAGE\r\n\r\n", b"GET /m HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
                              b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):  # a TLS hello on plain HTTP
            with _connect(server) as conn:
                conn.sendall(request_bytes)
                _read_all(conn)
        with _connect(server) as conn:  # an h2c upgrade is answered over HTTP/1.1, as if not asked
            conn.sendall(b"GET /u HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                         b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
            assert _read_response(conn) == _ok(b"GET /u HTTP/1.1 -\n")
    logged = [(r.name, r.levelname, re.sub(r"peer=\S+ \S+ ", "", r.getMessage()).split(" error=")[0])
              for r in caplog.records]
    assert logged == [("infersight.exporter", "DEBUG", "http bad request status=400"),
                      ("infersight.exporter", "DEBUG", "http bad request status=431"),
                      ("infersight.exporter", "DEBUG", "http bad request status=400")]
    assert [r.exc_info for r in caplog.records] == [None, None, None]


def test_a_client_that_sends_nothing_is_dropped(monkeypatch) -> None:
    monkeypatch.setattr(http_serve, "HEAD_TIMEOUT_SECONDS", 0.3)
    with _serving() as server:
        started = time.monotonic()  # before the server can have accepted
        with _connect(server) as conn:
            assert _read_all(conn) == b""
        assert 0.3 <= time.monotonic() - started < 5


def test_a_client_that_stalls_mid_request_is_dropped(monkeypatch) -> None:
    monkeypatch.setattr(http_serve, "HEAD_TIMEOUT_SECONDS", 0.3)
    with _serving() as server, _connect(server) as conn:
        started = time.monotonic()
        conn.sendall(b"GET /m HTTP/1.1\r\nX-A: 1\r\n")  # and never the blank line
        assert _read_all(conn) == b""
        assert time.monotonic() - started < 5


def test_the_next_request_on_a_kept_connection_has_the_head_deadline_too(monkeypatch) -> None:
    # uvicorn's keep-alive timer stops at a request's first byte; the head deadline starts there.
    monkeypatch.setattr(http_serve, "HEAD_TIMEOUT_SECONDS", 0.3)
    with _serving() as server, _connect(server) as conn:
        conn.sendall(b"GET /1 HTTP/1.1\r\n\r\n")
        assert _read_response(conn) == _ok(b"GET /1 HTTP/1.1 -\n")
        started = time.monotonic()
        conn.sendall(b"G")
        assert _read_all(conn) == b""
        assert 0.3 <= time.monotonic() - started < 5


def test_an_idle_keep_alive_connection_is_closed(monkeypatch) -> None:
    monkeypatch.setattr(http_serve, "IDLE_TIMEOUT_SECONDS", 0.3)
    with _serving() as server, _connect(server) as conn:
        started = time.monotonic()  # the keep-alive timer starts once the answer is written
        conn.sendall(b"GET /i HTTP/1.1\r\n\r\n")
        assert _read_response(conn) == _ok(b"GET /i HTTP/1.1 -\n")
        assert _read_all(conn) == b""
        assert 0.3 <= time.monotonic() - started < 5


def test_requests_beyond_the_connection_cap_get_503() -> None:
    with _serving(max_connections=2) as server, _connect(server) as first:
        first.sendall(b"GET /1 HTTP/1.1\r\n\r\n")
        assert _read_response(first) == _ok(b"GET /1 HTTP/1.1 -\n")  # and stays open, idle
        with _connect(server) as second:  # two connections open, its own included: the cap
            second.sendall(b"GET /2 HTTP/1.1\r\n\r\n")
            assert _read_all(second) == _answer(503, b"Service Unavailable", close=True)
        first.sendall(b"GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert _read_all(first) == _ok(b"GET /3 HTTP/1.1 -\n", close=True)
        with _connect(server) as third:  # the server closed the first before its FIN: one open now
            third.sendall(b"GET /4 HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert _read_all(third) == _ok(b"GET /4 HTTP/1.1 -\n", close=True)


def test_accepted_connections_disable_nagle(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /n HTTP/1.1\r\n\r\n")
        _read_response(conn)
        (protocol,) = server.uvicorn.server_state.connections
        assert protocol.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_shutdown_closes_idle_keep_alive_connections(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /i HTTP/1.1\r\n\r\n")
        assert _read_response(conn) == _ok(b"GET /i HTTP/1.1 -\n")
        server.shutdown()
        assert _read_all(conn) == b""
        with pytest.raises(OSError):
            _connect(server).close()


def test_shutdown_lets_a_request_being_answered_finish() -> None:
    called = threading.Event()
    release: list[asyncio.Event] = []

    async def slow(request: Request) -> Response:
        release.append(asyncio.Event())
        called.set()
        await release[0].wait()
        return Response(200, b"finished\n")

    with _serving(slow) as server, _connect(server) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\n\r\n")
        assert called.wait(10)
        stopping = threading.Thread(target=server.shutdown)
        stopping.start()
        # uvicorn stops listening and tells the connections in one step of the loop; the release
        # below runs on the loop after that step.
        while server.uvicorn.servers[0].is_serving():
            time.sleep(0.01)
        server.loop.call_soon_threadsafe(release[0].set)
        assert _read_all(conn) == _ok(b"finished\n", close=True)  # answered, then closed
        stopping.join(10)
        assert not stopping.is_alive()


def test_a_failure_to_start_is_raised_not_waited_for() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                HttpServer(loop, udp, _handler)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
