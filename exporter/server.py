"""The exporter's HTTP endpoint: /metrics, /-/healthy, /-/ready.

Each GET /metrics scrapes every configured target (concurrently, on one asyncio loop running in
a background thread, on which uvicorn also serves the HTTP: exporter/http_serve.py) within the
scrape timeout Prometheus announces, and renders the result; a target scraped more often than
the engine should be asked is answered its last report, less than a second old (Freshness).
What is fetched comes from the configuration only; the request's path and query choose nothing.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import threading

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from infersight import __version__
from infersight.exporter.fetch import FetchClient, ScrapeError, new_client
from infersight.exporter.http_serve import MAX_CONNECTIONS, HttpServer, Request, Response, listening_socket
from infersight.exporter.memory import release_free_memory
from infersight.exporter.render import FamilySet, RenderCache, TargetReport, build_families, render_text
from infersight.exporter.schema import GpuSource, ScrapeErrorReason
from infersight.exporter.scraper import Scraper, TargetScraper
from infersight.exporter.settings import Settings
from infersight.exporter.webconfig import TOO_MANY_REQUESTS, BasicAuth, WebConfig, load_web_config, ssl_context

log = logging.getLogger("infersight.exporter")

# As blackbox_exporter: leave Prometheus time to receive the answer before its own timeout.
SCRAPE_TIMEOUT_OFFSET_SECONDS = 0.5
MIN_SCRAPE_TIMEOUT_SECONDS = 0.1
RELEASE_MEMORY_AFTER_SECONDS = 1.0
# A target is fetched at most FRESH_FETCH_BURST times in a row, then once per
# MIN_SCRAPE_INTERVAL_SECONDS (a token bucket): a scrape that finds no token is served the
# target's last answer again, completed less than MIN_SCRAPE_INTERVAL_SECONDS ago (Freshness;
# docs/reliability.md, "Attacks"). Prometheus scrapes at 1 s or more; pipelined or looping
# clients, and scrapers that multiply, do not multiply the load on the engine.
MIN_SCRAPE_INTERVAL_SECONDS = 1.0
FRESH_FETCH_BURST = 3
REFUSED_CREDENTIALS_DELAY_SECONDS = 0.5  # a 401 or 429 of /metrics is answered this much later
RENDER_IN_THREAD_FROM_TARGETS = 50  # below this a render takes milliseconds: on the loop, no hand-off
GZIP_IN_THREAD_FROM_BYTES = 1 << 20

_LANDING_PAGE = """<!doctype html><html><head><title>infersight exporter</title></head><body>
<h1>infersight exporter</h1><p>Normalized LLM-engine metrics for {n} target(s).</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul></body></html>
"""


TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header accepts gzip (RFC 9110 12.5.3): listed as ``gzip`` or
    ``x-gzip``, or covered by ``*``, with a q-value above 0 (``gzip;q=0`` refuses it)."""
    if not accept_encoding:
        return False
    gzip_q = star_q = None
    for item in accept_encoding.split(","):
        coding, *parameters = item.split(";")
        coding = coding.strip().lower()
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # a malformed weight accepts nothing
        if coding in ("gzip", "x-gzip"):
            gzip_q = max(q, gzip_q or 0.0)
        elif coding == "*":
            star_q = q
    q = gzip_q if gzip_q is not None else star_q
    return q is not None and q > 0


def wants_openmetrics_only(accept: str | None) -> bool:
    """Serve the text format unless the client accepts nothing else. Prometheus lists text/plain
    too (at q=0.5); the text format carries all we export and renders much faster."""
    if not accept:
        return False
    accepted = {part.split(";", 1)[0].strip() for part in accept.split(",")}
    return "application/openmetrics-text" in accepted and not accepted & {"text/plain", "*/*", "text/*"}


class Freshness:
    """When one target is fetched again: its fetch in flight is shared, and a scrape that comes
    sooner than the engine should be asked again gets the target's last answer.

    A fetch takes a token; the bucket holds ``FRESH_FETCH_BURST`` and gains one every
    ``MIN_SCRAPE_INTERVAL_SECONDS``. A scrape that finds the target being fetched waits for that
    fetch (as long as its own budget allows); one that finds no token is answered the last
    report, completed less than ``MIN_SCRAPE_INTERVAL_SECONDS`` ago. So over any T seconds a
    target is fetched at most ``FRESH_FETCH_BURST + T / MIN_SCRAPE_INTERVAL_SECONDS`` times, and
    a report served again is less than ``MIN_SCRAPE_INTERVAL_SECONDS`` old (its values: that
    plus the fetch's duration). There is always either a token or such a report: the last fetch
    started before the last report completed, and a token comes back in that interval.

    A failed report made with a shorter budget than a scrape's (a curl's 0.1 s timing out a
    target Prometheus would wait for) is not served to that scrape: it fetches afresh without a
    token, at most once a window (so at most ``T / MIN_SCRAPE_INTERVAL_SECONDS + 1`` more)."""

    __slots__ = ("tokens", "refilled", "fetch", "report", "completed", "budget", "forced")

    def __init__(self, now: float):
        self.tokens = float(FRESH_FETCH_BURST)
        self.refilled = now
        self.fetch: asyncio.Future[TargetReport] | None = None
        self.report: TargetReport | None = None  # the last fetch's, kept MIN_SCRAPE_INTERVAL_SECONDS
        self.completed = 0.0
        self.budget = 0.0  # of the last fetch
        self.forced = -MIN_SCRAPE_INTERVAL_SECONDS  # when a fetch last went without a token

    def reuse(self, now: float, budget: float) -> TargetReport | None:
        """The last report if a scrape with ``budget`` gets it now, else None: fetch (and
        ``start`` it)."""
        self.tokens = min(FRESH_FETCH_BURST, self.tokens + (now - self.refilled) / MIN_SCRAPE_INTERVAL_SECONDS)
        self.refilled = now
        report = self.report
        if self.tokens >= 1 or report is None or now - self.completed >= MIN_SCRAPE_INTERVAL_SECONDS:
            return None
        if report.up or budget <= self.budget or now - self.forced < MIN_SCRAPE_INTERVAL_SECONDS:
            return report
        return None

    def start(self, now: float, budget: float, fetch: asyncio.Future) -> None:
        if self.tokens >= 1:
            self.tokens -= 1
        else:
            self.forced = now
        self.fetch, self.budget = fetch, budget

    def fetched(self, now: float, fetch: asyncio.Future) -> None:
        if not fetch.cancelled() and fetch.exception() is None:
            self.report, self.completed = fetch.result(), now


class Exporter:
    """Owns the loop thread (scrapes and HTTP), the HTTP client and the per-target state."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._in_progress: dict[tuple[bool, float], asyncio.Future] = {}  # answers being rendered: (OpenMetrics?, budget)
        web = load_web_config(settings.web_config_file) if settings.web_config_file else WebConfig()
        self.ssl_context = ssl_context(web)
        self.basic_auth = BasicAuth(web.basic_auth_users)
        self.scraper = Scraper([settings.resolved(t) for t in settings.targets], settings.max_body_bytes,
                               settings.max_models, settings.max_gpus, settings.max_label_bytes,
                               settings.max_cache_bytes)
        self._render_cache = RenderCache()  # used by one render at a time (see exposition)
        self._release: asyncio.TimerHandle | None = None
        self._freshness: dict[int, Freshness] = {}  # by index of self.scraper.targets
        self._collect_garbage = False  # a fetch failed since the last release of memory
        # The exporter's own process, python and gc metrics: its RSS is part of its cost.
        self._runtime = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self._runtime)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="exporter-loop", daemon=True)
        self._thread.start()
        self._client: FetchClient = self._call(self._make_client(), timeout=10)

    @staticmethod
    async def _make_client() -> FetchClient:
        return new_client()

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def ready(self) -> bool:
        return self._thread.is_alive() and self.loop.is_running()

    def scrape_timeout(self, announced: str | None) -> float:
        timeout = self.settings.scrape_timeout_seconds
        if announced:
            try:
                timeout = min(timeout, float(announced) - SCRAPE_TIMEOUT_OFFSET_SECONDS)
            except ValueError:
                pass
        return max(timeout, MIN_SCRAPE_TIMEOUT_SECONDS)

    async def exposition(self, accept: str | None, timeout: float) -> tuple[bytes, str]:
        """One scrape's answer. Requests that arrive while another is being answered in the same
        format and with the same budget share its answer (two Prometheus replicas, a retry): one
        render. A request with a shorter budget (Prometheus beside a curl) gets its own answer,
        bounded by its own budget; the targets' fetches are still shared (exporter.scraper)."""
        openmetrics = wants_openmetrics_only(accept)
        key = (openmetrics, timeout)
        answer = self._in_progress.get(key)
        if answer is None:
            answer = self._in_progress[key] = asyncio.ensure_future(self._render(openmetrics, accept, timeout))
            answer.add_done_callback(lambda done: self._in_progress.pop(key, None))
        return await asyncio.shield(answer)

    async def _render(self, openmetrics: bool, accept: str | None, timeout: float) -> tuple[bytes, str]:
        if self._release is None:  # once the scrapes are over, hand freed memory back (exporter.memory)
            self._release = self.loop.call_later(RELEASE_MEMORY_AFTER_SECONDS, self._release_memory)
        # Each target is bounded by ``timeout``; the margin covers parsing after the last byte.
        reports = await asyncio.wait_for(self._scrape_all(timeout), timeout + 30)
        runtime = list(self._runtime.collect())
        if len(reports) >= RENDER_IN_THREAD_FROM_TARGETS:
            # A thousand targets take a second to render: off the loop, so that health probes and
            # other requests are answered meanwhile (the interpreter switches threads every 5 ms).
            return await asyncio.to_thread(self._encode, reports, runtime, openmetrics, accept)
        return self._encode(reports, runtime, openmetrics, accept)

    def reports(self, timeout: float) -> list[TargetReport]:
        """One round of target reports for a caller on another thread (the OTLP push): the same
        fetches, shared fetches and reused reports as a scrape of /metrics (Freshness)."""
        return self._call(self._reports(timeout), timeout + 35)

    async def _reports(self, timeout: float) -> list[TargetReport]:
        if self._release is None:
            self._release = self.loop.call_later(RELEASE_MEMORY_AFTER_SECONDS, self._release_memory)
        return await asyncio.wait_for(self._scrape_all(timeout), timeout + 30)

    async def _scrape_all(self, timeout: float) -> list[TargetReport]:
        return list(await asyncio.gather(*(self._scrape_target(i, t, timeout)
                                           for i, t in enumerate(self.scraper.targets))))

    async def _scrape_target(self, index: int, target: TargetScraper, timeout: float) -> TargetReport:
        """This target's report for a scrape with ``timeout``: its fetch in flight, its last
        report while it is recent and no token is left, else a new fetch (see Freshness)."""
        now = self.loop.time()
        state = self._freshness.get(index)
        if state is None:
            state = self._freshness[index] = Freshness(now)
        fetch = state.fetch
        if fetch is not None and not fetch.done():
            try:  # wait_for cancels only the shield, never the shared fetch
                return await asyncio.wait_for(asyncio.shield(fetch), timeout)
            except TimeoutError:
                gpu_up = False if target.target.gpu.source in (GpuSource.DCGM, GpuSource.NVML) else None
                failure = ScrapeError(ScrapeErrorReason.TIMEOUT,
                                      f"no complete answer within {timeout:.3g}s (a scrape already in flight)")
                return target.report(None, failure, timeout, gpu_up, None)
        recent = state.reuse(now, timeout)
        if recent is not None:
            return recent
        # Nothing of this target is in flight, so the target's own scrape fetches afresh.
        fetch = asyncio.ensure_future(target.scrape(self._client, timeout))
        state.start(now, timeout, fetch)
        fetch.add_done_callback(lambda done: self._fetched(state, done))
        return await asyncio.shield(fetch)  # bounded by this same timeout

    def _fetched(self, state: Freshness, fetch: asyncio.Future) -> None:
        state.fetched(self.loop.time(), fetch)
        if state.report is not None and not state.report.up:
            # A failed fetch leaves its payload in a reference cycle (an exception's traceback
            # holds the parser's frames): 150 MiB for 30 MB of text, until a full collection,
            # which may be many scrapes away. Collected with the release (see _release_memory).
            self._collect_garbage = True

    def _encode(self, reports: list[TargetReport], runtime: list, openmetrics: bool,
                accept: str | None) -> tuple[bytes, str]:
        if openmetrics:
            encoder, content_type = choose_encoder(accept or "")
            return encoder(FamilySet(build_families(reports, __version__) + runtime)), content_type
        return render_text(reports, __version__, runtime, self._render_cache).encode("utf-8"), TEXT_CONTENT_TYPE

    def _release_memory(self) -> None:
        if self._in_progress:  # still scraping: try again later
            self._release = self.loop.call_later(RELEASE_MEMORY_AFTER_SECONDS, self._release_memory)
            return
        now, kept_until = self.loop.time(), 0.0
        for state in self._freshness.values():  # reports too old to be served again are dropped
            if state.report is not None:
                if now - state.completed >= MIN_SCRAPE_INTERVAL_SECONDS:
                    state.report = None
                else:
                    kept_until = max(kept_until, state.completed + MIN_SCRAPE_INTERVAL_SECONDS)
        if kept_until:  # a report may still be served: release once it is dropped
            self._release = self.loop.call_at(kept_until + 0.01, self._release_memory)
            return
        self._release = None
        if self._collect_garbage:
            self._collect_garbage = False
            gc.collect()
        release_free_memory()

    async def answer(self, request: Request) -> Response:
        """The response to one GET (or HEAD) request. The path chooses a page, never a target."""
        if request.path == "/metrics":
            return await self._metrics(request)
        if request.path == "/-/healthy":
            return Response(200, b"Healthy\n")
        if request.path == "/-/ready":
            return Response(200, b"Ready\n") if self.ready else Response(503, b"Not ready\n")
        if request.path == "/":
            page = _LANDING_PAGE.format(n=len(self.settings.targets)).encode()
            return Response(200, page, "text/html; charset=utf-8")
        return Response(404, b"Not found\n")

    async def _metrics(self, request: Request) -> Response:
        headers = request.headers
        if self.basic_auth.enabled:  # bcrypt, bounded (exporter.webconfig.BasicAuth)
            status = await self.basic_auth.check(headers.get("authorization"), request.client)
            if status != 200:
                # A guesser's connection waits (no CPU) before its next guess: a few per second
                # per connection, and the connections are capped (docs/reliability.md, "Attacks").
                await asyncio.sleep(REFUSED_CREDENTIALS_DELAY_SECONDS)
            if status == TOO_MANY_REQUESTS:
                return Response(429, b"Too many credentials being checked\n", headers={"Retry-After": "1"})
            if status != 200:
                return Response(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="infersight"'})
        timeout = self.scrape_timeout(headers.get("x-prometheus-scrape-timeout-seconds"))
        try:
            body, content_type = await self.exposition(headers.get("accept"), timeout)
        except TimeoutError as exc:
            log.error("scrape did not complete: %r", exc)
            return Response(503, b"scrape did not complete\n")
        extra = {}
        if accepts_gzip(headers.get("accept-encoding")):
            # Level 1: fast, the bytes stay on the node. A thousand targets' answer (tens of MB)
            # is compressed off the loop; zlib lets the loop run meanwhile.
            if len(body) > GZIP_IN_THREAD_FROM_BYTES:
                body = await asyncio.to_thread(gzip.compress, body, compresslevel=1)
            else:
                body = gzip.compress(body, compresslevel=1)
            extra["Content-Encoding"] = "gzip"
        return Response(200, body, content_type, extra)

    def close(self) -> None:
        try:
            self.basic_auth.close()
            self._call(self._client.aclose(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self.loop.close()


def make_server(exporter: Exporter, listen: str, *, max_connections: int = MAX_CONNECTIONS) -> HttpServer:
    """The exporter's endpoint on ``listen`` (``host:port``, ``[::]:port`` for IPv6), served by
    uvicorn on the exporter's loop from the moment it is made."""
    return HttpServer(exporter.loop, listening_socket(listen), exporter.answer, exporter.ssl_context,
                      max_connections=max_connections)


def serve(settings: Settings) -> None:
    """Run until interrupted (SIGINT/SIGTERM)."""
    exporter = Exporter(settings)
    server = make_server(exporter, settings.listen)
    log.info("listening address=%s targets=%d version=%s", settings.listen, len(settings.targets), __version__)
    pusher = None
    if settings.otlp is not None:  # the OpenTelemetry SDK loads only here (the [otlp] extra)
        from infersight.exporter.otlp import OtlpPusher

        pusher = OtlpPusher(exporter, settings)
        pusher.start()
    try:
        server.serve_forever()
    finally:
        if pusher is not None:
            pusher.stop()
        server.shutdown()
        server.server_close()
        exporter.close()
