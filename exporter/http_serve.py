"""The exporter's own HTTP server: uvicorn (with httptools' C parser) on the scrape loop.

The exporter's scrapes (target fetches, parsing, rendering) run on one asyncio loop; uvicorn
serves on the same loop, so a scrape is answered without handing work between threads. The
application is a plain ASGI callable (no framework) that turns each request into a ``Request``
for the exporter's handler and its ``Response`` into ASGI messages. It answers GET and HEAD;
every other method gets 405, and a request that carries a body 413.

What uvicorn does not bound by itself, ``_Protocol`` does (docs/performance.md, "Serving"):
httptools buffers a request head of any size and uvicorn has no timeout for a request head (its
keep-alive timer starts only after a response), so a client could hold a connection, and one of
the ``max_connections`` slots, forever by sending nothing or a byte at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import Server

log = logging.getLogger("infersight.exporter")

# Requests are answered 503 while this many connections are open (idle keep-alive ones and the
# request's own included) or this many requests are being answered: uvicorn's limit_concurrency,
# the counterpart of node_exporter's --web.max-requests (default 40, which counts requests only).
MAX_CONNECTIONS = 40
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together; 431 beyond
HEAD_TIMEOUT_SECONDS = 10.0  # from a connection's start, or a request's first byte, to the end of its head
# An idle keep-alive connection is closed after this; a scraper's connection stays open at scrape
# intervals up to two minutes, and a longer one reconnects.
IDLE_TIMEOUT_SECONDS = 120
GRACEFUL_SHUTDOWN_SECONDS = 5  # on shutdown, requests being answered get this long to finish


@dataclass
class Request:
    method: str
    path: str  # without the query string
    version: str  # "1.1", "1.0"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    client: str | None = None  # the peer's address (no port); never taken from a header


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


def asgi_app(handler: Handler) -> Callable[..., Awaitable[None]]:
    """The ASGI application serving ``handler``: GET and HEAD without a body reach it."""

    async def app(scope: dict[str, Any], receive: Any, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method = scope["method"]
        close = True
        if method not in ("GET", "HEAD"):
            response = Response(405, b"Method not allowed\n", headers={"Allow": "GET, HEAD"})
        elif headers.get("content-length", "0").lstrip("0") or "transfer-encoding" in headers:
            # llhttp let through ASCII digits only (``Content-Length: ²`` is a 400); "00" is 0.
            response = Response(413, b"Request bodies are not accepted\n")  # read nothing of it: close
        else:
            client = scope.get("client")
            response = await handler(Request(method, scope["path"], scope["http_version"], headers,
                                             client[0] if client else None))
            close = False
        head = [(b"content-type", response.content_type.encode("latin-1")),
                (b"content-length", b"%d" % len(response.body))]
        head += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
        if close:
            head.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": response.status, "headers": head})
        await send({"type": "http.response.body", "body": response.body})

    return app


_date: list[Any] = [0, []]  # the second of the current Date header, and the header


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on request heads: at most ``MAX_HEAD_BYTES``
    (431 beyond), and complete within ``HEAD_TIMEOUT_SECONDS`` of the connection's start or of
    the first byte of a request (the connection is closed otherwise). Bad requests are logged at
    debug level, not as uvicorn's warning per bad client."""

    _head_bytes = 0  # received since the last request head ended (a read's worth may go uncounted)
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.logger = log  # uvicorn's messages about requests (503 at the cap, a bug's 500) go to ours
        self.access_log = False  # whatever handlers the "uvicorn.access" logger has
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        log.debug("http request head not complete in time peer=%s", self.client)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused already: what a TLS record still held
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(431, b"Request Header Fields Too Large", "request head too large")
            return
        if self.cycle is None or self.cycle.response_complete:
            self._arm_head_deadline()  # the first bytes of a new request
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # e.g. curl's h2c upgrade: answered over HTTP/1.1, as if not asked
        except httptools.HttpParserError as exc:
            self._refuse(400, b"Invalid HTTP request received.", str(exc))

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        self._disarm_head_deadline()
        self._refresh_default_headers()
        super().on_headers_complete()

    def _refresh_default_headers(self) -> None:
        """The Date header (RFC 9110 6.6.1), made once a second, as uvicorn's main loop would."""
        second = int(time.time())
        if second != _date[0]:
            _date[:] = [second, [(b"date", formatdate(second, usegmt=True).encode())]]
        headers = _date[1] if self.config.date_header else []
        self.server_state.default_headers = headers + self.config.encoded_headers

    def _refuse(self, status: int, body: bytes, reason: str) -> None:
        """Answer ``status`` with ``body`` and close, in the form of uvicorn's own 400."""
        log.debug("http bad request peer=%s status=%d error=%s", self.client, status, reason)
        self._refresh_default_headers()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                    % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _Server(Server):
    """uvicorn's server, telling ``HttpServer`` when it accepts connections (or failed to), and
    waiting for ``stop`` where uvicorn's main loop polls ``should_exit`` ten times a second (2.5 ms
    of CPU a second on an idle exporter here; the Date header it refreshes there is kept by
    ``_Protocol``)."""

    def __init__(self, config: Config, started: concurrent.futures.Future):
        super().__init__(config)
        self._started = started
        self._stop = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except BaseException as exc:
            self._started.set_exception(exc)
            raise
        self._started.set_result(None)

    async def main_loop(self) -> None:
        await self._stop.wait()

    def stop(self) -> None:
        """Begin the shutdown (on the server's loop)."""
        self.should_exit = True
        self._stop.set()


def _stopped_before_start(serving: concurrent.futures.Future, started: concurrent.futures.Future) -> None:
    if not started.done():
        failure = None if serving.cancelled() else serving.exception()
        started.set_exception(failure or RuntimeError("the HTTP server stopped before it started"))


class HttpServer:
    """Serves ``handler`` on a listening socket, with uvicorn on ``loop`` (which runs in another
    thread). The blocking methods (``serve_forever``, ``shutdown``) are called from other threads,
    as with the stdlib's servers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listen_socket: socket.socket, handler: Handler,
                 ssl_context: ssl.SSLContext | None = None, *, max_connections: int = MAX_CONNECTIONS):
        self.loop = loop
        self.socket = listen_socket
        self.server_address = listen_socket.getsockname()
        config = Config(
            asgi_app(handler), http=_Protocol, ws="none", lifespan="off", interface="asgi3",
            log_config=None, access_log=False, proxy_headers=False, server_header=False, date_header=True,
            limit_concurrency=max_connections, timeout_keep_alive=IDLE_TIMEOUT_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context is not None else None)
        # Its lifecycle lines ("Started server process [n]") say nothing the exporter's own do not.
        if logging.getLogger("uvicorn.error").level == logging.NOTSET:
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        started: concurrent.futures.Future = concurrent.futures.Future()
        self.uvicorn = _Server(config, started)
        self._serving = asyncio.run_coroutine_threadsafe(self.uvicorn.serve(sockets=[listen_socket]), loop)
        self._serving.add_done_callback(lambda serving: _stopped_before_start(serving, started))
        try:
            started.result(10)
        except BaseException:
            self._serving.cancel()
            raise

    def serve_forever(self) -> None:
        """Block until ``shutdown`` (requests are served from the moment the server is made)."""
        self._serving.result()

    def shutdown(self) -> None:
        """Stop accepting, close idle connections, let requests being answered finish
        (``GRACEFUL_SHUTDOWN_SECONDS`` at most), and return."""
        if not self._serving.done():
            self.loop.call_soon_threadsafe(self.uvicorn.stop)
        self._serving.result(GRACEFUL_SHUTDOWN_SECONDS + 10)

    def server_close(self) -> None:
        self.socket.close()


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
