"""The exporter's HTTP endpoint: /metrics, /-/healthy, /-/ready.

Each GET /metrics scrapes every configured target (concurrently, on one asyncio loop running in
a background thread) within the scrape timeout Prometheus announces, and renders the result.
What is fetched comes from the configuration only; the request's path and query choose nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.fetch import FetchClient, new_client
from exporter.render import FamilySet, RenderCache, TargetReport, build_families, render_text
from exporter.scraper import Scraper
from exporter.settings import Settings
from exporter.webconfig import BasicAuth, WebConfig, load_web_config, ssl_context

log = logging.getLogger("infersight.exporter")

# As blackbox_exporter: leave Prometheus time to receive the answer before its own timeout.
SCRAPE_TIMEOUT_OFFSET_SECONDS = 0.5
MIN_SCRAPE_TIMEOUT_SECONDS = 0.1

_LANDING_PAGE = """<!doctype html><html><head><title>infersight exporter</title></head><body>
<h1>infersight exporter</h1><p>Normalized LLM-engine metrics for {n} target(s).</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul></body></html>
"""


TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def wants_openmetrics_only(accept: str | None) -> bool:
    """Serve the text format unless the client accepts nothing else. Prometheus lists text/plain
    too (at q=0.5); the text format carries all we export and renders much faster."""
    if not accept:
        return False
    accepted = {part.split(";", 1)[0].strip() for part in accept.split(",")}
    return "application/openmetrics-text" in accepted and not accepted & {"text/plain", "*/*", "text/*"}


class Exporter:
    """Owns the scrape loop thread, the HTTP client and the per-target state."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._in_progress: dict[bool, Future] = {}  # answers being rendered, by format (OpenMetrics?)
        web = load_web_config(settings.web_config_file) if settings.web_config_file else WebConfig()
        self.ssl_context = ssl_context(web)
        self.basic_auth = BasicAuth(web.basic_auth_users)
        self.scraper = Scraper([settings.resolved(t) for t in settings.targets], settings.max_body_bytes,
                               settings.max_models)
        self._render_cache = RenderCache()  # used by one render at a time (see exposition)
        # The exporter's own process, python and gc metrics: its RSS is part of its cost.
        self._runtime = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self._runtime)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scrape-loop", daemon=True)
        self._thread.start()
        self._client: FetchClient = self._call(self._make_client(), timeout=10)

    @staticmethod
    async def _make_client() -> FetchClient:
        return new_client()

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def ready(self) -> bool:
        return self._thread.is_alive() and self._loop.is_running()

    def scrape_timeout(self, announced: str | None) -> float:
        timeout = self.settings.scrape_timeout_seconds
        if announced:
            try:
                timeout = min(timeout, float(announced) - SCRAPE_TIMEOUT_OFFSET_SECONDS)
            except ValueError:
                pass
        return max(timeout, MIN_SCRAPE_TIMEOUT_SECONDS)

    def reports(self, timeout: float) -> list[TargetReport]:
        # Each target is bounded by ``timeout``; the margin covers parsing after the last byte.
        return self._call(self.scraper.scrape_all(self._client, timeout), timeout=timeout + 30)

    def exposition(self, accept: str | None, timeout: float) -> tuple[bytes, str]:
        """One scrape's answer. Requests that arrive while another is being answered in the same
        format share its answer (two Prometheus replicas, a retry): one fetch, one render."""
        openmetrics = wants_openmetrics_only(accept)
        with self._lock:
            shared = self._in_progress.get(openmetrics)
            owner = shared is None
            if owner:
                shared = self._in_progress[openmetrics] = Future()
        if not owner:
            return shared.result()
        try:
            answer = self._render(openmetrics, accept, timeout)
            shared.set_result(answer)
            return answer
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._in_progress[openmetrics]

    def _render(self, openmetrics: bool, accept: str | None, timeout: float) -> tuple[bytes, str]:
        reports = self.reports(timeout)
        runtime = list(self._runtime.collect())
        if openmetrics:
            encoder, content_type = choose_encoder(accept or "")
            return encoder(FamilySet(build_families(reports, __version__) + runtime)), content_type
        return render_text(reports, __version__, runtime, self._render_cache).encode("utf-8"), TEXT_CONTENT_TYPE

    def close(self) -> None:
        try:
            self._call(self._client.aclose(), timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()


def make_handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"infersight/{__version__}"
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._metrics()
            elif path == "/-/healthy":
                self._send(200, b"Healthy\n", "text/plain; charset=utf-8")
            elif path == "/-/ready":
                ready = exporter.ready
                self._send(200 if ready else 503, b"Ready\n" if ready else b"Not ready\n", "text/plain; charset=utf-8")
            elif path == "/":
                page = _LANDING_PAGE.format(n=len(exporter.settings.targets)).encode()
                self._send(200, page, "text/html; charset=utf-8")
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")

        def _metrics(self) -> None:
            if not exporter.basic_auth.allows(self.headers.get("Authorization")):
                self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": 'Basic realm="infersight"'})
                return
            timeout = exporter.scrape_timeout(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
            try:
                body, content_type = exporter.exposition(self.headers.get("Accept"), timeout)
            except (FutureTimeout, RuntimeError) as exc:
                log.error("scrape did not complete: %r", exc)
                self._send(503, b"scrape did not complete\n", "text/plain; charset=utf-8")
                return
            extra = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=1)  # fast: the bytes stay on the node
                extra["Content-Encoding"] = "gzip"
            self._send(200, body, content_type, extra)

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
            log.debug("http %s", format % args)

    return Handler


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog


class ExporterServer6(ExporterServer):
    address_family = socket.AF_INET6


def make_server(exporter: Exporter, listen: str) -> ExporterServer:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    server_class = ExporterServer6 if ":" in host else ExporterServer  # [::]:9400 listens on IPv6
    server = server_class((host, int(port)), make_handler(exporter))
    if exporter.ssl_context is not None:  # the TLS handshake then runs in each connection's thread
        server.socket = exporter.ssl_context.wrap_socket(server.socket, server_side=True,
                                                         do_handshake_on_connect=False)
    return server


def serve(settings: Settings) -> None:
    """Run until interrupted (SIGINT/SIGTERM)."""
    exporter = Exporter(settings)
    server = make_server(exporter, settings.listen)
    log.info("listening address=%s targets=%d version=%s", settings.listen, len(settings.targets), __version__)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        exporter.close()
