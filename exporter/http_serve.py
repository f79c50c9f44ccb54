"""A small HTTP/1.1 server on asyncio streams, for the exporter's own endpoint.

The exporter's scrapes (target fetches, parsing, rendering) run on one asyncio loop; serving
its HTTP on the same loop means a scrape is answered without handing work between threads (a
thread-per-connection server paid a GIL hand-off and the stdlib's e-mail header parser on every
request: about a third of the exporter's CPU per scrape). It serves what a Prometheus exporter
needs: GET and HEAD, keep-alive, TLS (the loop's own TLS support), request size limits and
timeouts, so a slow or malicious client costs a socket, not a thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger("infersight.exporter")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers together
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024  # a GET may carry a body; it is read and ignored
HEAD_TIMEOUT_SECONDS = 30.0  # from a request's first byte to the end of its headers
# An idle keep-alive connection is closed after this; Prometheus reconnects (scrape intervals
# are rarely above 5 minutes, so a scraper's connection normally stays open).
IDLE_TIMEOUT_SECONDS = 600.0


@dataclass
class Request:
    method: str
    path: str  # without the query string
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, detail: str):
        super().__init__(detail)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


async def _read_head(reader: asyncio.StreamReader) -> Request | None:
    """The next request's line and headers; None when the client closed between requests."""
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), IDLE_TIMEOUT_SECONDS)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "request line cut short") from None
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long") from None
    async with asyncio.timeout(HEAD_TIMEOUT_SECONDS):
        size = len(line)
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"malformed request line {line[:60]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request header too long") from None
            size += len(line)
            if size > MAX_HEAD_BYTES or len(headers) > MAX_HEADERS:
                raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large")
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request header")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(HTTPStatus.NOT_IMPLEMENTED, "request bodies with Transfer-Encoding")
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
        if int(length) > MAX_BODY_BYTES:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        if int(length):
            await reader.readexactly(int(length))
    return Request(method, target.split("?", 1)[0], version, headers)


def _encode(response: Response, keep_alive: bool, server: str, head_only: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Server: {server}", f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class HttpServer:
    """Serves ``handler`` on a listening socket, on ``loop`` (which runs in another thread).
    The blocking methods (``serve_forever``, ``shutdown``) are called from other threads, as
    with the stdlib's servers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listen_socket: socket.socket, handler: Handler,
                 ssl_context: ssl.SSLContext | None = None, server_name: str = "infersight"):
        self.loop = loop
        self.socket = listen_socket
        self.server_address = listen_socket.getsockname()
        self.handler = handler
        self.ssl_context = ssl_context
        self.server_name = server_name
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._stopped = asyncio.run_coroutine_threadsafe(self._start(), loop).result(10)

    async def _start(self) -> asyncio.Event:
        self._server = await asyncio.start_server(
            self._connection, sock=self.socket, ssl=self.ssl_context, limit=MAX_HEAD_BYTES,
            ssl_handshake_timeout=HEAD_TIMEOUT_SECONDS if self.ssl_context else None)
        return asyncio.Event()

    def serve_forever(self) -> None:
        """Block until ``shutdown`` (requests are served from the moment the server is made)."""
        asyncio.run_coroutine_threadsafe(self._stopped.wait(), self.loop).result()

    def shutdown(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._connections):  # idle keep-alive connections end with the server
                writer.close()
            self._stopped.set()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)

    def server_close(self) -> None:
        self.socket.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._connections.add(writer)
        try:
            while True:
                try:
                    request = await _read_head(reader)
                except _BadRequest as exc:
                    log.debug("http bad request peer=%s error=%s", peer, exc)
                    writer.write(_encode(Response(exc.status, f"{exc}\n".encode()), False, self.server_name, False))
                    await writer.drain()
                    return
                if request is None:
                    return
                keep_alive = (request.version == "HTTP/1.1" and request.headers.get("connection", "").lower() != "close")
                if request.method in ("GET", "HEAD"):
                    try:
                        response = await self.handler(request)
                    except Exception:  # a bug answers 500 and costs this request only
                        log.exception("error answering path=%s", request.path)
                        response = Response(500, b"internal error\n")
                else:
                    response = Response(405, b"Method not allowed\n", headers={"Allow": "GET, HEAD"})
                log.debug("http %s %s %s %d", peer, request.method, request.path, response.status)
                writer.write(_encode(response, keep_alive, self.server_name, request.method == "HEAD"))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ssl.SSLError, ValueError):
            return  # the client went away, stalled or sent more than a request head may hold
        finally:
            self._connections.discard(writer)
            writer.close()


def listening_socket(listen: str, backlog: int = 128) -> socket.socket:
    """A bound, listening TCP socket for ``host:port`` (``[::]:port`` for IPv6). Created with
    IPPROTO_TCP so that asyncio sets TCP_NODELAY on the connections it accepts."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
