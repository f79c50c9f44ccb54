"""The exporter's engine client (exporter/fetch.py, one httpx.AsyncClient), against real HTTP
servers on 127.0.0.1: body framings, keep-alive, caps while streaming, gzip, redirects, the
connection pool, TLS verification, and credentials that go nowhere but the configured host."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import subprocess
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infersight.exporter.fetch import Credentials, FetchClient, Payload, ScrapeError, fetch, new_client
from infersight.exporter.schema import ScrapeErrorReason
from infersight.tools.replay import make_handler
from tests.engine_server import EngineServer
from tests.processes import require_binary

pytestmark = pytest.mark.integration

BODY = "# TYPE vllm:num_requests_running gauge\n" + "".join(
    f'vllm:num_requests_running{{model_name="m{i}"}} {i}\n' for i in range(300))
TEXT = "text/plain; version=0.0.4; charset=utf-8"


class ScriptedEngine:
    """A 127.0.0.1 server whose paths answer as the test scripts them. Records each request's
    headers as (name, value) pairs in order, duplicates kept. A gated path announces the request
    (``arrived``) and answers only once the test sets ``release``."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def headers(self, path: str) -> list[list[tuple[str, str]]]:
        return [headers for seen, headers in self.requests if seen == path]

    def reply(self, path: str, body: bytes, headers: dict[str, str] | None = None, status: int = 200) -> None:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(status)
            for name, value in {"Content-Type": TEXT, "Content-Length": str(len(body)), **(headers or {})}.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = answer

    def gate(self, path: str, body: bytes) -> None:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            self.arrived.set()
            self.release.wait(30)
            handler.send_response(200)
            handler.send_header("Content-Type", TEXT)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = answer

    def close(self) -> None:
        self.release.set()  # a gated request still waiting ends now
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                engine.requests.append((self.path, list(self.headers.items())))
                route = engine.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    route(self)

        return Handler


@pytest.fixture
def engine() -> Iterator[EngineServer]:
    server = EngineServer()
    yield server
    server.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedEngine]:
    server = ScriptedEngine()
    yield server
    server.close()


def get(*urls: str, max_bytes: int = 1 << 20, credentials: Credentials = Credentials(),
        timeout: float = 5) -> list[Payload | ScrapeError]:
    """Fetch the URLs one after the other with one client, as one exporter does."""
    async def run() -> list[Payload | ScrapeError]:
        client = new_client()
        results: list[Payload | ScrapeError] = []
        try:
            for url in urls:
                try:
                    results.append(await fetch(client, url, timeout=timeout, max_bytes=max_bytes,
                                               credentials=credentials))
                except ScrapeError as exc:
                    results.append(exc)
        finally:
            await client.aclose()
        return results

    return asyncio.run(run())


def failure(result: Payload | ScrapeError) -> tuple[ScrapeErrorReason, str]:
    assert isinstance(result, ScrapeError), result
    return result.reason, result.detail


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["ok", "chunked", "until_close", "gzip"])
def test_every_body_framing_reads_the_same_text(engine: EngineServer, mode: str) -> None:
    engine.serve("/m", BODY, mode=mode)
    assert get(engine.url("/m")) == [Payload(BODY, openmetrics=False)]


def test_the_request_asks_for_plain_text_and_gzip(engine: EngineServer) -> None:
    from infersight import __version__

    seen = engine.serve("/m", BODY)
    get(engine.url("/m"))
    [headers] = seen.requests
    assert (headers["Accept"], headers["Accept-Encoding"], headers["User-Agent"], "Authorization" in headers) == (
        "text/plain;version=0.0.4;q=1.0,*/*;q=0.1", "gzip", f"infersight/{__version__}", False)


def test_keep_alive_reuses_one_connection(engine: EngineServer) -> None:
    seen = engine.serve("/m", BODY)
    assert get(engine.url("/m"), engine.url("/m"), engine.url("/m")) == [Payload(BODY, False)] * 3
    assert len(seen.requests) == 3 and len({r["client-port"] for r in seen.requests}) == 1


def test_a_connection_the_server_dropped_is_replaced(engine: EngineServer) -> None:
    # until_close answers and hangs up: the next request must not fail on the dead connection.
    closing = engine.serve("/close", BODY, mode="until_close")
    engine.serve("/m", BODY)
    results = get(engine.url("/close"), engine.url("/m"), engine.url("/close"))
    assert results == [Payload(BODY, False)] * 3 and len(closing.requests) == 2


def test_a_same_origin_redirect_is_followed_with_the_credentials(engine: EngineServer) -> None:
    old = engine.serve("/old", "/new", mode="redirect")
    new = engine.serve("/new", BODY)
    assert get(engine.url("/old"), credentials=Credentials.bearer("t0ken")) == [Payload(BODY, False)]
    assert [r["Authorization"] for r in old.requests + new.requests] == ["Bearer t0ken", "Bearer t0ken"]


def test_redirects_stop_after_three_hops(engine: EngineServer) -> None:
    loop = engine.serve("/loop", mode="redirect_loop")
    [result] = get(engine.url("/loop"))
    assert failure(result) == (ScrapeErrorReason.REDIRECT, "more than 3 redirects")
    assert len(loop.requests) == 4


def test_a_redirect_elsewhere_is_refused_before_any_request_goes_there(scripted: ScriptedEngine) -> None:
    other = ScriptedEngine()
    try:
        other.reply("/m", BODY.encode())
        elsewhere = {
            "/port": (other.url("/m"), f"http://127.0.0.1:{other.port}"),
            "/scheme": (f"https://127.0.0.1:{scripted.port}/m", f"https://127.0.0.1:{scripted.port}"),
            "/host": (f"http://localhost:{scripted.port}/m", f"http://localhost:{scripted.port}"),
            "/metadata": ("http://169.254.169.254/latest/meta-data/", "http://169.254.169.254:80"),
        }
        for path, (location, _) in elsewhere.items():
            scripted.reply(path, b"", {"Location": location}, status=302)
        results = get(*(scripted.url(p) for p in elsewhere), credentials=Credentials.bearer("t0ken"))
    finally:
        other.close()
    assert [failure(r) for r in results] == [
        (ScrapeErrorReason.REDIRECT,
         f"redirect to {origin} refused: only the same scheme, host and port are followed")
        for _, origin in elsewhere.values()]
    assert other.requests == []
    assert [path for path, _ in scripted.requests] == list(elsewhere)  # /m was never asked for over https


def test_caps_apply_to_every_framing(engine: EngineServer) -> None:
    for mode in ("ok", "chunked", "until_close", "gzip_bomb"):
        engine.serve(f"/{mode}", BODY, mode=mode)
    results = get(*(engine.url(f"/{m}") for m in ("ok", "chunked", "until_close", "gzip_bomb")), max_bytes=1000)
    assert [failure(r) for r in results] == [
        (ScrapeErrorReason.TOO_LARGE, f"body of {len(BODY)} bytes exceeds 1000"),  # declared: not read at all
        (ScrapeErrorReason.TOO_LARGE, "body exceeds 1000 bytes"),
        (ScrapeErrorReason.TOO_LARGE, "body exceeds 1000 bytes"),
        (ScrapeErrorReason.TOO_LARGE, "body exceeds 1000 bytes"),
    ]


def test_a_body_of_exactly_the_cap_is_accepted(engine: EngineServer) -> None:
    for mode in ("ok", "chunked", "gzip"):
        engine.serve(f"/{mode}", BODY, mode=mode)
    assert get(*(engine.url(f"/{m}") for m in ("ok", "chunked", "gzip")), max_bytes=len(BODY)) == [
        Payload(BODY, False)] * 3


def test_a_gzip_bomb_is_inflated_no_further_than_the_cap(scripted: ScriptedEngine) -> None:
    # 64 MiB of zeros in 64 KiB of gzip: one network read alone would inflate to tens of MiB.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(64)) + compressor.flush()
    scripted.reply("/bomb", bomb, {"Content-Encoding": "gzip"})
    scripted.reply("/small", BODY.encode())
    cap = 1 << 20

    async def run() -> tuple[ScrapeError, int]:
        client = new_client()
        try:
            await fetch(client, scripted.url("/small"), timeout=5, max_bytes=cap)  # the client set up, warm
            tracemalloc.start()
            try:
                with pytest.raises(ScrapeError) as error:
                    await fetch(client, scripted.url("/bomb"), timeout=5, max_bytes=cap)
                return error.value, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        finally:
            await client.aclose()

    error, peak = asyncio.run(run())
    assert failure(error) == (ScrapeErrorReason.TOO_LARGE, f"body exceeds {cap} bytes")
    # What the fetch held at most: the cap, one network read (64 KiB) and its unread tail, zlib's
    # buffers for one 64 KiB step, the client's own objects. Inflating a whole network read at
    # once would hold tens of MiB here; even inflating up to the cap in one call holds it twice.
    assert peak < 2 * cap


def test_broken_or_unasked_encodings_are_parse_errors(scripted: ScriptedEngine) -> None:
    scripted.reply("/cut", gzip.compress(BODY.encode())[:-12], {"Content-Encoding": "gzip"})
    scripted.reply("/garbage", b"not gzip at all", {"Content-Encoding": "gzip"})
    scripted.reply("/br", b"\x0b\x02\x80hello\x03", {"Content-Encoding": "br"})
    results = get(scripted.url("/cut"), scripted.url("/garbage"), scripted.url("/br"))
    assert [failure(r) for r in results] == [
        (ScrapeErrorReason.PARSE, "gzip body ends before its end marker"),
        (ScrapeErrorReason.PARSE, "undecodable gzip body: Error -3 while decompressing data: incorrect header check"),
        (ScrapeErrorReason.PARSE, "unsupported Content-Encoding 'br'"),
    ]


def test_openmetrics_and_charset_come_from_the_content_type(engine: EngineServer) -> None:
    engine.serve("/om", BODY.encode("latin-1"), content_type="application/openmetrics-text; charset=latin-1")
    assert get(engine.url("/om")) == [Payload(BODY, openmetrics=True)]


def test_an_error_status_and_a_refused_connection(engine: EngineServer) -> None:
    engine.serve("/503", mode="status", status=503)
    results = get(engine.url("/503"), f"http://127.0.0.1:{closed_port()}/m")
    assert [failure(r) for r in results] == [
        (ScrapeErrorReason.HTTP_STATUS, "HTTP 503"),
        (ScrapeErrorReason.CONNECT, "ConnectError: All connection attempts failed"),
    ]


def test_a_slow_drip_times_out_within_the_budget(engine: EngineServer) -> None:
    engine.serve("/drip", BODY, mode="drip", delay=0.05)
    [result] = get(engine.url("/drip"), timeout=0.5)
    assert failure(result) == (ScrapeErrorReason.TIMEOUT, "no complete answer within 0.5s")


def test_a_body_cut_off_is_a_connect_error(engine: EngineServer) -> None:
    engine.serve("/cut", BODY, mode="truncated")
    [result] = get(engine.url("/cut"))
    assert failure(result) == (
        ScrapeErrorReason.CONNECT,
        f"RemoteProtocolError: peer closed connection without sending complete message body "
        f"(received {len(BODY)} bytes, expected {2 * len(BODY)})")


def test_not_http_at_all_is_a_connect_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage() -> None:
        connection, _ = listener.accept()
        connection.recv(1024)
        connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        connection.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        [result] = get(f"http://127.0.0.1:{listener.getsockname()[1]}/metrics")
    finally:
        thread.join(5)
        listener.close()
    assert failure(result) == (ScrapeErrorReason.CONNECT,
                               "RemoteProtocolError: Server disconnected without sending a response.")


def test_https_targets_verify_certificates(tmp_path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(BODY.encode(), "/metrics"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        [result] = get(f"https://127.0.0.1:{server.server_address[1]}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    reason, detail = failure(result)
    assert reason is ScrapeErrorReason.CONNECT
    # (what follows names the cause in OpenSSL's words, which change between its versions)
    assert detail.startswith("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ")


def test_the_pool_bounds_connections_and_waiting_counts_in_the_budget(scripted: ScriptedEngine) -> None:
    scripted.gate("/slow", BODY.encode())

    async def run() -> tuple[Payload | ScrapeError, Payload | ScrapeError, int]:
        client = FetchClient(max_connections=1)
        try:
            first = asyncio.ensure_future(fetch(client, scripted.url("/slow"), timeout=10, max_bytes=1 << 20))
            assert await asyncio.to_thread(scripted.arrived.wait, 10)
            try:  # the one connection is busy: this fetch waits for it, within its own 0.3 s
                second: Payload | ScrapeError = await fetch(client, scripted.url("/slow"), timeout=0.3,
                                                            max_bytes=1 << 20)
            except ScrapeError as exc:
                second = exc
            asked = len(scripted.requests)
            scripted.release.set()
            return await first, second, asked
        finally:
            await client.aclose()

    first, second, asked = asyncio.run(run())
    assert first == Payload(BODY, False)
    assert failure(second) == (ScrapeErrorReason.TIMEOUT, "no complete answer within 0.3s")
    assert asked == 1  # the second never got a connection of its own


def test_cookies_are_not_kept_between_requests(scripted: ScriptedEngine) -> None:
    scripted.reply("/m", BODY.encode(), {"Set-Cookie": "session=abc123; Path=/"})
    assert get(scripted.url("/m"), scripted.url("/m")) == [Payload(BODY, False)] * 2
    assert [[name for name, _ in headers if name.lower() == "cookie"] for headers in scripted.headers("/m")] == [[], []]


def test_a_urls_userinfo_is_sent_as_basic_auth_and_not_in_the_host_header(scripted: ScriptedEngine) -> None:
    scripted.reply("/m", BODY.encode())
    assert get(scripted.url("/m").replace("http://", "http://alice:s%40cret@")) == [Payload(BODY, False)]
    [headers] = scripted.headers("/m")
    sent = [(name, value) for name, value in headers if name in ("Host", "Authorization")]
    assert sent == [("Host", f"127.0.0.1:{scripted.port}"),
                    ("Authorization", "Basic " + base64.b64encode(b"alice:s@cret").decode())]


def test_error_details_carry_no_password_and_no_query_value(scripted: ScriptedEngine) -> None:
    scripted.reply("/away?token=qs-secret-value", b"", {"Location": "http://127.0.0.2:1/x?token=qs-secret-value"},
                   status=302)
    urls = [f"http://alice:pw-secret@127.0.0.1:{closed_port()}/m?token=qs-secret-value",
            f"http://alice:pw-secret@127.0.0.1:{scripted.port}/none?token=qs-secret-value",
            f"http://alice:pw-secret@127.0.0.1:{scripted.port}/away?token=qs-secret-value",
            "http://alice:pw-secret@127.0.0.1:99999/m?token=qs-secret-value"]
    results = get(*urls)
    assert [failure(r) for r in results] == [
        (ScrapeErrorReason.CONNECT, "ConnectError: All connection attempts failed"),
        (ScrapeErrorReason.HTTP_STATUS, "HTTP 404"),
        (ScrapeErrorReason.REDIRECT,
         "redirect to http://127.0.0.2:1 refused: only the same scheme, host and port are followed"),
        (ScrapeErrorReason.CONNECT, "invalid URL: Port out of range 0-65535"),
    ]
    assert all("secret" not in str(r) for r in results)
