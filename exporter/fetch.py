"""Fetch one /metrics payload, bounded in time and size, failing with a reason.

One ``httpx.AsyncClient`` per exporter (``FetchClient``), shared by every target: keep-alive
connections, a bounded pool, no cookies, no proxies from the environment, no automatic redirects.

Every failure becomes a ``ScrapeError`` with one of the schema's ``ScrapeErrorReason`` values;
nothing else escapes. Credentials travel only as the Authorization header to the configured
host: a URL's ``user:password@`` is turned into basic auth and removed from the URL before the
request is built (so it is neither in the Host header nor in any message), redirects are followed
only to the same scheme, host and port, and error details carry no URL, password or query value.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import zlib
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import httpx

from infersight import __version__
from infersight.exporter.schema import ScrapeErrorReason
from infersight.exporter.settings import redact_url, split_userinfo

# Plain text keeps vLLM's colon names intact: prometheus-client >= 0.23 rewrites them when asked
# for OpenMetrics, and picks OpenMetrics whenever the Accept header mentions it at all.
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
MAX_REDIRECTS = 3
# Connections open at once to one target URL; a fetch beyond waits for a free one within its own
# scrape budget. A target has at most one fetch in flight per scrape budget (exporter.scraper
# shares it), so two cover a Prometheus scrape beside a curl.
MAX_CONNECTIONS = 2
# An idle connection is reused for this long only: shorter than the keep-alive timeout of the
# engines' HTTP servers (uvicorn's 5 s: vLLM, SGLang, NIM), so a request never races the engine
# closing the connection under it. Between two Prometheus scrapes (15 s) a new connection is made.
KEEPALIVE_EXPIRY_SECONDS = 4.0
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_INFLATE_STEP = 1 << 16  # bytes of decompressed body per zlib call: zlib's transient buffers stay this small
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ScrapeError(Exception):
    def __init__(self, reason: ScrapeErrorReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Payload:
    text: str
    openmetrics: bool


@dataclass(frozen=True)
class Credentials:
    """An Authorization header value, kept out of repr()."""

    header: str | None = None

    def __repr__(self) -> str:
        return "Credentials(***)" if self.header else "Credentials(None)"

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        return cls(f"Bearer {token.strip()}")

    @classmethod
    def basic(cls, username: str, password: str) -> Credentials:
        pair = f"{username}:{password}".encode()
        return cls("Basic " + base64.b64encode(pair).decode("ascii"))


class FetchClient:
    """The exporter's HTTP client, http and https (certificates verified): one small
    ``httpx.AsyncClient`` pool per target URL, sharing one TLS context. One per exporter, used from
    its event loop only.

    Why a pool per URL: httpcore walks every connection of a pool on each request, so one pool of
    a thousand targets' connections cost more CPU than parsing their payloads (measured with
    py-spy: 52% of the exporter's CPU at 1,000 targets; docs/performance.md)."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._tls = httpx.create_ssl_context()  # the trust store is loaded once, not per pool
        self._pools: dict[str, httpx.AsyncClient] = {}

    def pool(self, name: str) -> httpx.AsyncClient:
        """The pool named ``name``: a target's, or a URL's (its redirects stay on its origin, so
        they use it too). Only configured targets and URLs come here: the configuration bounds the
        number of pools."""
        client = self._pools.get(name)
        if client is None:
            client = self._pools[name] = httpx.AsyncClient(
                headers={"Accept": ACCEPT, "Accept-Encoding": "gzip", "User-Agent": f"infersight/{__version__}"},
                follow_redirects=False,  # followed by fetch(): same scheme, host and port only
                verify=self._tls,
                limits=httpx.Limits(max_connections=self._max_connections,
                                    max_keepalive_connections=self._max_connections,
                                    keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS),
                trust_env=False,  # an engine next to us is never reached through a proxy from the environment
            )
            # No cookie jar: an engine's Set-Cookie would otherwise come back on every request.
            client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        return client

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for client in pools:
            await client.aclose()


def new_client() -> FetchClient:
    return FetchClient()


async def fetch(client: FetchClient, url: str, *, timeout: float, max_bytes: int,
                credentials: Credentials = Credentials(), pool: str | None = None) -> Payload:
    """GET ``url`` within ``timeout`` seconds (connecting, waiting for a pooled connection,
    redirects and a slow drip included) and at most ``max_bytes`` of decompressed body. ``pool``
    names the connection pool (the target's name; default the URL): targets that share a URL
    (replicas behind one Service) still get a pool each.

    A ``user:password@`` in ``url`` is sent as basic auth when no ``credentials`` are given (the
    configuration has already turned a target's into credentials, see settings.TargetConfig)."""
    try:
        url, userinfo = split_userinfo(url)
        urlsplit(url).port  # noqa: B018 - checked here: anyio would raise an OverflowError group
    except ValueError as exc:  # an unclosed IPv6 bracket, a port out of range (the text names no part)
        raise ScrapeError(ScrapeErrorReason.CONNECT, f"invalid URL: {exc}") from None
    if userinfo is not None and credentials.header is None:
        credentials = Credentials.basic(*userinfo)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, pool or url, max_bytes, credentials, timeout)
    except TimeoutError:
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None
    except _HttpxFailure as failure:
        raise ScrapeError(failure.reason, _scrub(failure.detail, url, userinfo)) from None


class _HttpxFailure(Exception):
    """An httpx exception, mapped; its text is scrubbed of secrets before it becomes a ScrapeError."""

    def __init__(self, reason: ScrapeErrorReason, detail: str):
        self.reason, self.detail = reason, detail


def _scrub(detail: str, url: str, userinfo: tuple[str, str] | None) -> str:
    """An error text without the URL's password or query values (a token may travel there)."""
    query = urlsplit(url).query
    if query:
        detail = detail.replace(url, redact_url(url))
    secrets = [value for _, sep, value in (item.partition("=") for item in query.split("&")) if sep and len(value) >= 4]
    if userinfo is not None and userinfo[1]:
        secrets.append(userinfo[1])
    for secret in sorted(secrets, key=len, reverse=True):
        detail = detail.replace(secret, "***")
    return detail


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


async def _fetch(client: FetchClient, url: str, pool_name: str, max_bytes: int, credentials: Credentials,
                 timeout: float) -> Payload:
    headers = {"Authorization": credentials.header} if credentials.header else {}
    try:
        pool = client.pool(pool_name)
        request = pool.build_request("GET", url, headers=headers, timeout=timeout)
        origin = _origin(request.url)
        for _ in range(MAX_REDIRECTS + 1):
            response = await pool.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location is not None:
                    request = _redirected(pool, request.url, location, origin, headers, timeout)
                    continue
                return await _read(response, max_bytes)
            finally:
                await response.aclose()  # unread (a redirect, a refused body): the connection is dropped
        raise ScrapeError(ScrapeErrorReason.REDIRECT, f"more than {MAX_REDIRECTS} redirects")
    # httpx's narrow exceptions: each is a kind of failure the schema names.
    except httpx.TimeoutException:  # connect, read, write, or waiting for a pooled connection
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError,  # refused, DNS, TLS, reset
            httpx.RemoteProtocolError,  # not HTTP, a body cut off before its length
            httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.ProxyError, httpx.InvalidURL) as exc:
        raise _HttpxFailure(ScrapeErrorReason.CONNECT, f"{type(exc).__name__}: {exc}") from None


def _redirected(pool: httpx.AsyncClient, url: httpx.URL, location: str, origin: tuple[str, str, int | None],
                headers: dict[str, str], timeout: float) -> httpx.Request:
    """The next request of a redirect, only to the same scheme, host and port: credentials are
    never sent elsewhere (Go's client drops them across hosts; we do not go there at all)."""
    try:
        target = url.join(location).copy_with(username=None, password=None, fragment=None)
    except httpx.InvalidURL:
        raise ScrapeError(ScrapeErrorReason.REDIRECT, "redirect to an invalid location") from None
    if _origin(target) != origin:
        scheme, host, port = _origin(target)
        raise ScrapeError(ScrapeErrorReason.REDIRECT,
                          f"redirect to {scheme}://{host}:{port} refused: only the same scheme, host and port "
                          "are followed")
    return pool.build_request("GET", target, headers=headers, timeout=timeout)


async def _read(response: httpx.Response, max_bytes: int) -> Payload:
    if not 200 <= response.status_code < 300:
        raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"HTTP {response.status_code}")
    encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    if encodings and encodings != ["gzip"] and encodings != ["x-gzip"]:
        raise ScrapeError(ScrapeErrorReason.PARSE, f"unsupported Content-Encoding {','.join(encodings)!r}")
    declared = response.headers.get("content-length", "")
    if not encodings and declared.isdigit() and int(declared) > max_bytes:
        raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body of {declared} bytes exceeds {max_bytes}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encodings else None
    chunks: list[bytes] = []
    size = 0
    try:
        async for raw in response.aiter_raw():  # as the bytes arrive: nothing above the cap is held
            if inflater is None:
                size += len(raw)
                if size > max_bytes:
                    raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body exceeds {max_bytes} bytes")
                chunks.append(raw)
                continue
            # Inflated a step at a time: a gzip bomb stops at the cap (max_bytes + 1 bytes at most).
            while raw:
                chunk = inflater.decompress(raw, min(_INFLATE_STEP, max_bytes + 1 - size))
                size += len(chunk)
                if size > max_bytes:
                    raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body exceeds {max_bytes} bytes")
                chunks.append(chunk)
                raw = inflater.unconsumed_tail
        if inflater is not None:
            chunk = inflater.flush()
            if chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body exceeds {max_bytes} bytes")
                chunks.append(chunk)
            if not inflater.eof:
                raise ScrapeError(ScrapeErrorReason.PARSE, "gzip body ends before its end marker")
        body = b"".join(chunks)  # the one copy: a single chunk is returned as is
    except zlib.error as exc:
        chunks.clear()
        raw = chunk = b""  # noqa: F841
        raise ScrapeError(ScrapeErrorReason.PARSE, f"undecodable gzip body: {exc}") from None
    except BaseException:
        chunks.clear()  # a refused or broken body is dropped now, not when the error is
        raw = chunk = b""  # noqa: F841 - the traceback keeps this frame, so not its last chunk either
        raise
    del chunks
    content_type = response.headers.get("content-type", "")
    return _payload(body, content_type, _charset(content_type))


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _payload(body: bytes, content_type: str, charset: str) -> Payload:
    try:
        text = body.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise ScrapeError(ScrapeErrorReason.PARSE, "body is not valid text") from None
    return Payload(text, content_type.startswith("application/openmetrics-text"))


class _RedactUrls(logging.Filter):
    """httpx logs each request's URL ("HTTP Request: GET ..."): shown without query values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())
