"""The exporter's HTTP/1.1 server, byte for byte over a raw socket: keep-alive, HEAD, limits,
timeouts and what a bad request gets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from infersight.exporter import http_serve
from infersight.exporter.http_serve import HttpServer, Request, Response, listening_socket


async def _handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("a bug")
    return Response(200, f"{request.method} {request.path} {request.headers.get('x-a', '-')}\n".encode())


@pytest.fixture
def server() -> Iterator[HttpServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = HttpServer(loop, listening_socket("127.0.0.1:0"), _handler, server_name="test/1")
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


def _connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=10)


def _read_all(conn: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_response(conn: socket.socket) -> bytes:
    """One response with a Content-Length body (or a HEAD response's head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"Content-Length")))
    while len(body) < length and not head.startswith(b"HEAD"):
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def _ok(body: bytes, close: bool = False) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nServer: test/1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (len(body), b"Connection: close\r\n" if close else b"")) + body


def test_keep_alive_then_close(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\r\n")
        first = _read_response(conn)
        conn.sendall(b"GET /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nConnection: close\r\n\r\n")
        rest = _read_all(conn)  # two pipelined requests, the first with a body to skip
    assert (first, rest) == (_ok(b"GET /a one\n"), _ok(b"GET /b -\n") + _ok(b"GET /c -\n", close=True))


def test_http_1_0_closes_after_one_answer(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /x HTTP/1.0\n\n")  # bare newlines are accepted, as the stdlib server does
        assert _read_all(conn) == _ok(b"GET /x -\n", close=True)


def test_head_answers_the_head_only(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert _read_all(conn) == _ok(b"HEAD /h -\n", close=True)[:-len(b"HEAD /h -\n")]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"POST /m HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"405 Method Not Allowed"),
    (b"GARBAGE\r\n\r\n", b"400 Bad Request"),
    (b"GET /m HTTP/2\r\n\r\n", b"400 Bad Request"),
    (b"GET /m HTTP/1.1\r\nNo colon here\r\n\r\n", b"400 Bad Request"),
    (b"GET /m HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400 Bad Request"),
    (b"GET /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501 Not Implemented"),
    (b"GET /m HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413 Request Entity Too Large"),
    (b"GET /m HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
    (b"GET /m HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(102)) + b"\r\n",
     b"431 Request Header Fields Too Large"),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414 Request-URI Too Long"),
    (b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n", b"500 Internal Server Error"),
])
def test_bad_requests_get_a_status_and_the_connection_ends(server: HttpServer, request_bytes: bytes,
                                                           status: bytes) -> None:
    with _connect(server) as conn:
        conn.sendall(request_bytes)
        answer = _read_all(conn)
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 " + status
    if status.startswith(b"405"):
        assert b"\r\nAllow: GET, HEAD\r\n" in answer.split(b"\r\n\r\n")[0]


def test_a_client_that_stalls_mid_request_is_dropped(server: HttpServer, monkeypatch) -> None:
    monkeypatch.setattr(http_serve, "HEAD_TIMEOUT_SECONDS", 0.3)
    with _connect(server) as conn:
        conn.sendall(b"GET /m HTTP/1.1\r\nX-A: 1\r\n")  # and never the blank line
        started = time.monotonic()
        assert _read_all(conn) == b""
        assert time.monotonic() - started < 5


def test_accepted_connections_disable_nagle(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /n HTTP/1.1\r\n\r\n")
        _read_response(conn)
        (writer,) = server._connections
        assert writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_shutdown_closes_idle_keep_alive_connections(server: HttpServer) -> None:
    with _connect(server) as conn:
        conn.sendall(b"GET /i HTTP/1.1\r\n\r\n")
        assert _read_response(conn) == _ok(b"GET /i -\n")
        server.shutdown()
        assert _read_all(conn) == b""
        with pytest.raises(OSError):
            _connect(server).close()
