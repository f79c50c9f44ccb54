"""``infersight.promapi``, the Prometheus/Alertmanager reader of the UI and of ``infersight compare``,
against real sockets on 127.0.0.1 that misbehave: a server that never answers, one that drips a
byte every 2 s, answers with values that are not numbers or bodies that are not JSON, HTTPS with a
self-signed certificate. Every failure is one ``APIError`` with an exact message, returned within
the call's deadline plus a margin.

The margin: the deadline is enforced by ``asyncio.timeout`` on the reader's event loop, which then
cancels the pending reads and closes their sockets (microseconds) and hands the error back to the
calling thread (one thread switch). On this 2-core machine, shared with other test runs, that is
well under 1 s, so a call must end between the deadline and the deadline plus 1 s. A reader that
relied on httpx's per-read timeout would never end against the drip (each read waits 2 s at most).
"""

from __future__ import annotations

import gc
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infersight.compare import SourceError, prometheus_rows, promql
from infersight.promapi import APIError, Reader, Sample, Series, redact

pytestmark = pytest.mark.integration

DEADLINE = 3.0  # longer than the drip's 2 s gap: a per-read timeout of the deadline would never fire
MARGIN = 1.0  # see the module's docstring
GENEROUS = 10.0  # the deadline where the test is not about it (TLS handshakes on a busy machine)
FAST = 2.0  # an answer that comes at once fails (or succeeds) well within this: no retries, no backoff


# --- a server that misbehaves on purpose -------------------------------------------------------------------

class Server:
    """A TCP (or TLS) server on 127.0.0.1: every connection runs ``handler(connection, server)`` in a
    thread. ``requests`` holds the request heads received (path and headers)."""

    def __init__(self, handler: Callable[[socket.socket, Server], None], tls: ssl.SSLContext | None = None):
        self.handler = handler
        self.tls = tls
        self.stop = threading.Event()
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self.tls is not None:
                connection.settimeout(5)
                connection = self.tls.wrap_socket(connection, server_side=True)
            self.handler(connection, self)
        except (OSError, ssl.SSLError):
            pass  # the client gave up, refused our certificate, or hung up: all expected here
        finally:
            connection.close()

    def read_request(self, connection: socket.socket) -> str:
        connection.settimeout(0.2)
        head = b""
        while b"\r\n\r\n" not in head and not self.stop.is_set():
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            head += chunk
        self.requests.append(head.decode("latin-1"))
        return head.decode("latin-1")

    def close(self) -> None:
        self.stop.set()
        self.acceptor.join(5)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@contextmanager
def serving(handler: Callable[[socket.socket, Server], None], tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(handler, tls)
    try:
        yield server
    finally:
        server.close()


def hang(connection: socket.socket, server: Server) -> None:
    """Accept, read the request, never answer."""
    server.read_request(connection)
    server.stop.wait()


def drip(what: bytes) -> Callable[[socket.socket, Server], None]:
    """Answer ``what`` one byte every 2 s (the status line included)."""
    def handler(connection: socket.socket, server: Server) -> None:
        server.read_request(connection)
        for i in range(len(what)):
            connection.sendall(what[i:i + 1])
            if server.stop.wait(2.0):
                return
    return handler


def answer(body: bytes | str | object, status: str = "200 OK", content_type: str = "application/json"
           ) -> Callable[[socket.socket, Server], None]:
    """Answer every request at once with ``body`` (an object is sent as JSON)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body

    def handler(connection: socket.socket, server: Server) -> None:
        server.read_request(connection)
        connection.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(raw)}\r\n"
                           "Connection: close\r\n\r\n".encode() + raw)
    return handler


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"engine": "vllm", "model": "m", "target": "a"}, "value": [1700000000.5, "1.5"]}]}}
MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": [
    {"metric": {"engine": "vllm"}, "values": [[1700000000, "1"], [1700000015, "NaN"]]}]}}


@pytest.fixture(scope="module")
def reader() -> Iterator[Reader]:
    with Reader() as shared:
        yield shared


@contextmanager
def timed(low: float, high: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert low <= elapsed < high, f"took {elapsed:.2f} s, expected [{low}, {high})"


def failure(call: Callable[[], object]) -> str:
    with pytest.raises(APIError) as caught:
        call()
    return str(caught.value)


# --- the deadline -----------------------------------------------------------------------------------------

def drip_body(connection: socket.socket, server: Server) -> None:
    """The head at once (a 1000-byte body announced), then a space every 2 s."""
    server.read_request(connection)
    connection.sendall(HEADERS)
    while not server.stop.wait(2.0):
        connection.sendall(b" ")


@pytest.mark.parametrize("handler", [drip(HEADERS), drip_body], ids=["head", "body"])
def test_a_server_that_drips_a_byte_every_2_s_fails_at_the_deadline(
        reader: Reader, handler: Callable[[socket.socket, Server], None]) -> None:
    with serving(handler) as server, timed(DEADLINE, DEADLINE + MARGIN):
        message = failure(lambda: reader.query_range(server.url, {"up": "up"}, start=0, end=60, step=15,
                                                     timeout=DEADLINE))
    assert message == f"Prometheus at {server.url} could not be queried: no complete answer within 3 s"


def test_a_server_that_never_answers_fails_at_the_deadline_one_for_every_query_of_a_call(reader: Reader) -> None:
    # prometheus_rows (the compare table) asks 16 queries; they share the 3 s (in turn: 48 s)
    with serving(hang) as server, timed(DEADLINE, DEADLINE + MARGIN):
        with pytest.raises(SourceError) as caught:
            prometheus_rows(server.url, "5m", timeout=DEADLINE, reader=reader)
    assert str(caught.value) == f"Prometheus at {server.url} could not be queried: no complete answer within 3 s"
    assert len(server.requests) == len(promql("5m")) == 16


def test_a_tls_handshake_that_never_ends_fails_at_the_deadline_and_closes_its_socket(reader: Reader) -> None:
    # The server takes the connection and reads the ClientHello, then nothing. Connecting gives up
    # 50 ms before the deadline (_CONNECT_SLACK), which closes the socket; the collection below would
    # turn a socket left open into a ResourceWarning, an error here (filterwarnings=error).
    with serving(hang) as server, timed(DEADLINE - 0.1, DEADLINE + MARGIN):
        message = failure(lambda: reader.query(f"https://127.0.0.1:{server.port}", {"up": "up"}, timeout=DEADLINE))
    gc.collect()
    assert message == (f"Prometheus at https://127.0.0.1:{server.port} could not be queried: "
                       "no complete answer within 3 s")


def test_alertmanager_that_never_answers(reader: Reader) -> None:
    with serving(hang) as server, timed(1.0, 1.0 + MARGIN):
        message = failure(lambda: reader.alerts(server.url, timeout=1.0))
    assert message == f"Alertmanager at {server.url} could not be read: no complete answer within 1 s"


# --- answers that are not what the API documents ------------------------------------------------------------

def test_a_value_that_is_not_a_number(reader: Reader) -> None:
    bad = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"engine": "vllm"}, "value": [1700000000.5, "abc"]}]}}
    with serving(answer(bad)) as server, timed(0, FAST):
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == (f"Prometheus at {server.url} could not be queried: unexpected answer: "
                       'the sample value "abc" is not a number')


def test_a_range_value_that_is_not_a_number_fails_compare_too(reader: Reader) -> None:
    bad = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1700000000, "1"], [1700000015, None]]}]}}
    with serving(answer(bad)) as server, timed(0, FAST):
        message = failure(lambda: reader.query_range(server.url, {"up": "up"}, start=0, end=60, step=15,
                                                     timeout=GENEROUS))
    assert message == (f"Prometheus at {server.url} could not be queried: unexpected answer: "
                       "the sample value null is not a number")


def test_an_answer_that_is_not_json(reader: Reader) -> None:
    with serving(answer("<html>maintenance</html>", content_type="text/html")) as server, timed(0, FAST):
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == (f"Prometheus at {server.url} could not be queried: "
                       "the answer is not JSON (Expecting value at line 1 column 1)")


def test_json_of_the_wrong_shape(reader: Reader) -> None:
    with serving(answer({"status": "success", "data": {"resultType": "matrix", "result": []}})) as server:
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == (f"Prometheus at {server.url} could not be queried: "
                       "unexpected answer: expected a vector, got matrix")
    with serving(answer([1, 2])) as server:
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message.endswith(" could not be queried: unexpected answer: not a JSON object")
    with serving(answer({"labels": "x"})) as server:
        message = failure(lambda: reader.alerts(server.url, timeout=GENEROUS))
    assert message == (f"Alertmanager at {server.url} could not be read: "
                       "unexpected answer: not a list of alerts with labels")


def test_prometheus_error_answer_and_other_statuses(reader: Reader) -> None:
    error = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error:\nunclosed left parenthesis"}
    with serving(answer(error, status="400 Bad Request")) as server:
        message = failure(lambda: reader.query(server.url, {"bad": "sum("}, timeout=GENEROUS))
    assert message == (f"Prometheus at {server.url} could not be queried: HTTP 400 Bad Request: bad_data: "
                       "1:5: parse error: unclosed left parenthesis")  # the newline shown as a space
    with serving(answer("<h1>Bad gateway</h1>", status="502 Bad Gateway", content_type="text/html")) as server:
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == f"Prometheus at {server.url} could not be queried: HTTP 502 Bad Gateway"


def test_an_answer_over_the_size_cap() -> None:
    with Reader(max_answer_bytes=1000) as small, serving(answer(b" " * 5000)) as server:
        message = failure(lambda: small.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == f"Prometheus at {server.url} could not be queried: the answer is larger than 1,000 bytes"


def test_a_good_answer_is_parsed_and_the_request_is_what_the_api_documents(reader: Reader) -> None:
    with serving(answer(VECTOR)) as server:
        got = reader.query(server.url + "/", {"a": "up", "b": "sum(up)"}, timeout=GENEROUS, at=1700000000.25)
    assert got == {"a": [Sample({"engine": "vllm", "model": "m", "target": "a"}, 1.5)],
                   "b": [Sample({"engine": "vllm", "model": "m", "target": "a"}, 1.5)]}
    lines = sorted(r.split("\r\n")[0] for r in server.requests)
    assert lines == ["GET /api/v1/query?query=sum%28up%29&timeout=10&time=1700000000.250 HTTP/1.1",
                     "GET /api/v1/query?query=up&timeout=10&time=1700000000.250 HTTP/1.1"]
    with serving(answer(MATRIX)) as server:
        got = reader.query_range(server.url, {"a": "up"}, start=100, end=160.5, step=7.5, timeout=GENEROUS)
    assert got["a"][0].labels == {"engine": "vllm"}
    assert got["a"][0].points[0] == (1700000000.0, 1.0)
    assert got["a"][0].points[1][1] != got["a"][0].points[1][1]  # NaN is a number: Prometheus' "no value"
    assert isinstance(got["a"][0], Series)
    assert server.requests[0].split("\r\n")[0] == (
        "GET /api/v1/query_range?query=up&start=100.000&end=160.500&step=7.5&timeout=10 HTTP/1.1")


def test_a_refused_connection_and_a_url_with_credentials() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with Reader() as r, timed(0, FAST):
        message = failure(lambda: r.query(f"http://admin:s3cret@127.0.0.1:{port}/prom?token=abc", {"up": "up"},
                                          timeout=GENEROUS))
    assert message == f"Prometheus at http://127.0.0.1:{port}/prom could not be queried: connection refused"
    assert redact("https://u:p@host:9090/x?q=1#f") == "https://host:9090/x"


# --- credentials ------------------------------------------------------------------------------------------

def test_bearer_token_file_is_read_at_each_call(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    with Reader(bearer_token_file=token) as r, serving(answer(VECTOR)) as server:
        r.query(server.url, {"a": "up"}, timeout=GENEROUS)
        token.write_text("second")
        r.query(server.url, {"a": "up"}, timeout=GENEROUS)
        token.unlink()
        message = failure(lambda: r.query(server.url, {"a": "up"}, timeout=GENEROUS))
    assert [h for r in server.requests for h in r.split("\r\n") if h.lower().startswith("authorization")] == [
        "Authorization: Bearer first", "Authorization: Bearer second"]
    assert message == (f"Prometheus at {server.url} could not be queried: the credentials file {token} "
                       "could not be read (No such file or directory)")


def test_basic_auth(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("pw\n")
    with Reader(basic_auth_username="ui", basic_auth_password_file=tmp_path / "password") as r, \
            serving(answer({"status": "success", "data": {"resultType": "vector", "result": []}})) as server:
        assert r.query(server.url, {"a": "up"}, timeout=GENEROUS) == {"a": []}
    assert "Authorization: Basic dWk6cHc=" in server.requests[0].split("\r\n")  # base64("ui:pw")
    with pytest.raises(ValueError, match="^bearer_token_file and basic auth exclude each other$"):
        Reader(bearer_token_file="t", basic_auth_username="u", basic_auth_password_file="p")


# --- TLS --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made by openssl, valid for a day)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "1",
                    "-subj", "/CN=infersight test", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return folder / "cert.pem", folder / "key.pem"


def tls_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_a_self_signed_certificate_is_refused_by_default(reader: Reader, certificate: tuple[Path, Path]) -> None:
    with serving(answer(VECTOR), tls=tls_context(certificate)) as server, timed(0, FAST):
        message = failure(lambda: reader.query(server.url, {"up": "up"}, timeout=GENEROUS))
    assert message == (f"Prometheus at https://127.0.0.1:{server.port} could not be queried: "
                       "TLS certificate not trusted (self-signed certificate)")
    assert server.requests == []  # nothing was sent over the untrusted connection


def test_ca_file_trusts_that_certificate_and_still_checks_the_host(certificate: tuple[Path, Path]) -> None:
    with Reader(ca_file=certificate[0]) as trusting, serving(answer(VECTOR), tls=tls_context(certificate)) as server:
        got = trusting.query(server.url, {"up": "up"}, timeout=GENEROUS)
        assert got == {"up": [Sample({"engine": "vllm", "model": "m", "target": "a"}, 1.5)]}
        # the certificate names 127.0.0.1, not localhost: trusted CA or not, the name must match
        message = failure(lambda: trusting.query(f"https://localhost:{server.port}", {"up": "up"},
                                                 timeout=GENEROUS))
    assert message == (f"Prometheus at https://localhost:{server.port} could not be queried: TLS certificate "
                       "not trusted (Hostname mismatch, certificate is not valid for 'localhost'.)")


def test_insecure_skip_verify_is_an_explicit_opt_out(certificate: tuple[Path, Path]) -> None:
    with Reader(insecure_skip_verify=True) as r, serving(answer(VECTOR), tls=tls_context(certificate)) as server:
        assert r.query(server.url, {"up": "up"}, timeout=GENEROUS)["up"][0].value == 1.5


def test_a_ca_file_that_cannot_be_loaded(tmp_path: Path) -> None:
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    with Reader(ca_file=tmp_path / "missing.pem") as missing, Reader(ca_file=tmp_path / "not-a-cert.pem") as junk:
        assert failure(lambda: missing.query("https://127.0.0.1:1", {"up": "up"}, timeout=1)) == (
            f"Prometheus at https://127.0.0.1:1 could not be queried: the CA file {tmp_path / 'missing.pem'} "
            "could not be loaded (No such file or directory)")
        assert failure(lambda: junk.query("https://127.0.0.1:1", {"up": "up"}, timeout=1)) == (
            f"Prometheus at https://127.0.0.1:1 could not be queried: the CA file {tmp_path / 'not-a-cert.pem'} "
            "could not be loaded ([X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found)")
