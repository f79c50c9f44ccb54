"""The exporter's HTTP/1.1 client for plain-http engines, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest

from infersight.exporter.fetch import Payload, ScrapeError, fetch, new_client
from infersight.tools.replay import make_handler
from infersight.exporter.schema import ScrapeErrorReason
from tests.engine_server import EngineServer
from tests.processes import require_binary

BODY = "# TYPE vllm:num_requests_running gauge\n" + "".join(
    f'vllm:num_requests_running{{model_name="m{i}"}} {i}\n' for i in range(300))


@pytest.fixture
def engine():
    server = EngineServer()
    yield server
    server.close()


def get(*urls: str, max_bytes: int = 1 << 20) -> list[Payload | ScrapeError]:
    async def run() -> list[Payload | ScrapeError]:
        client = new_client()
        results: list[Payload | ScrapeError] = []
        try:
            for url in urls:
                try:
                    results.append(await fetch(client, url, timeout=5, max_bytes=max_bytes))
                except ScrapeError as exc:
                    results.append(exc)
        finally:
            await client.aclose()
        return results

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ["ok", "chunked", "until_close", "gzip"])
def test_every_body_framing_reads_the_same_text(engine: EngineServer, mode: str) -> None:
    engine.serve("/m", BODY, mode=mode)
    assert get(engine.url("/m")) == [Payload(BODY, openmetrics=False)]


def test_keep_alive_reuses_one_connection(engine: EngineServer) -> None:
    seen = engine.serve("/m", BODY)
    get(engine.url("/m"), engine.url("/m"), engine.url("/m"))
    assert len(seen.requests) == 3 and len({r["client-port"] for r in seen.requests}) == 1


def test_a_connection_the_server_dropped_is_replaced(engine: EngineServer) -> None:
    # until_close answers and hangs up: the next request must not fail on the dead connection.
    closing = engine.serve("/close", BODY, mode="until_close")
    engine.serve("/m", BODY)
    results = get(engine.url("/close"), engine.url("/m"), engine.url("/close"))
    assert results == [Payload(BODY, False)] * 3 and len(closing.requests) == 2


def test_a_relative_redirect_is_followed(engine: EngineServer) -> None:
    engine.serve("/old", "/new", mode="redirect")
    engine.serve("/new", BODY)
    assert get(engine.url("/old")) == [Payload(BODY, False)]


def test_caps_apply_to_every_framing(engine: EngineServer) -> None:
    for mode in ("ok", "chunked", "until_close", "gzip_bomb"):
        engine.serve(f"/{mode}", BODY, mode=mode)
    results = get(*(engine.url(f"/{m}") for m in ("ok", "chunked", "until_close", "gzip_bomb")), max_bytes=1000)
    assert [(r.reason, r.detail.split(" ")[0]) for r in results] == [(ScrapeErrorReason.TOO_LARGE, "body")] * 4


def test_openmetrics_and_charset_come_from_the_content_type(engine: EngineServer) -> None:
    engine.serve("/om", BODY.encode("latin-1"), content_type="application/openmetrics-text; charset=latin-1")
    assert get(engine.url("/om")) == [Payload(BODY, openmetrics=True)]


def test_not_http_at_all_is_a_connect_error() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage() -> None:
        connection, _ = listener.accept()
        connection.recv(1024)
        connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        connection.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        [result] = get(f"http://127.0.0.1:{listener.getsockname()[1]}/metrics")
    finally:
        listener.close()
    assert (result.reason, result.detail) == (ScrapeErrorReason.CONNECT, "not an HTTP response: b'SSH-2.0-OpenSSH_9.2\\r\\n'")


def test_https_targets_go_through_httpx_and_verify_certificates(tmp_path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(BODY.encode(), "/metrics"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        [result] = get(f"https://127.0.0.1:{server.server_address[1]}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    assert result.reason is ScrapeErrorReason.CONNECT and "CERTIFICATE_VERIFY_FAILED" in result.detail
