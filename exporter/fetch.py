"""Fetch one /metrics payload, bounded in time and size, failing with a reason.

Every failure becomes a ``ScrapeError`` with one of the schema's ``ScrapeErrorReason`` values;
nothing else escapes. Messages never contain credentials (they are sent as headers and httpx
error texts carry only the URL, which holds none).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from urllib.parse import urljoin

from infersight import __version__
from infersight.exporter.http1 import Http1Client, Http1Error
from infersight.exporter.schema import ScrapeErrorReason

# Plain text keeps vLLM's colon names intact: prometheus-client >= 0.23 rewrites them when asked
# for OpenMetrics, and picks OpenMetrics whenever the Accept header mentions it at all.
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
MAX_REDIRECTS = 3


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
    """The exporter's HTTP clients: a lean HTTP/1.1 client for http:// targets, httpx (created on
    first use) for https:// ones. One per exporter, used from its event loop only."""

    def __init__(self) -> None:
        self.http1 = Http1Client({"Accept": ACCEPT, "Accept-Encoding": "gzip",
                                  "User-Agent": f"infersight/{__version__}"})
        self._httpx = None

    @property
    def httpx(self):
        if self._httpx is None:
            import httpx  # only https targets need it: its import costs memory in every sidecar

            self._httpx = httpx.AsyncClient(
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                headers={"Accept": ACCEPT, "User-Agent": f"infersight/{__version__}"},
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000),
                trust_env=False,  # an engine next to us is never reached through a proxy from the environment
            )
        return self._httpx

    async def aclose(self) -> None:
        self.http1.close()
        if self._httpx is not None:
            await self._httpx.aclose()


def new_client() -> FetchClient:
    return FetchClient()


async def fetch(client: FetchClient, url: str, *, timeout: float, max_bytes: int,
                credentials: Credentials = Credentials()) -> Payload:
    """GET ``url`` within ``timeout`` seconds (a slow drip included) and at most ``max_bytes``
    of decompressed body."""
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, max_bytes, credentials, timeout)
    except TimeoutError:
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None


_REDIRECTS = (301, 302, 303, 307, 308)
_REASONS = {"connect": ScrapeErrorReason.CONNECT, "too_large": ScrapeErrorReason.TOO_LARGE,
            "parse": ScrapeErrorReason.PARSE}


async def _fetch(client: FetchClient, url: str, max_bytes: int, credentials: Credentials, timeout: float) -> Payload:
    headers = {"Authorization": credentials.header} if credentials.header else {}
    for _ in range(MAX_REDIRECTS + 1):
        if not url.startswith("http://"):
            return await _fetch_httpx(client, url, max_bytes, headers, timeout)
        try:
            response = await client.http1.get(url, max_bytes, headers)
        except Http1Error as exc:
            raise ScrapeError(_REASONS[exc.kind], str(exc)) from None
        if response.status in _REDIRECTS and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            continue
        if not 200 <= response.status < 300:
            raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"HTTP {response.status}")
        content_type = response.headers.get("content-type", "")
        return _payload(response.body, content_type, _charset(content_type))
    raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"more than {MAX_REDIRECTS} redirects")


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


async def _fetch_httpx(client: FetchClient, url: str, max_bytes: int, headers: dict[str, str],
                       timeout: float) -> Payload:
    import httpx

    try:
        async with client.httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
            if not 200 <= response.status_code < 300:
                raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if (declared and declared.isdigit() and int(declared) > max_bytes
                    and "content-encoding" not in response.headers):
                raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body of {declared} bytes exceeds {max_bytes}")
            chunks = []
            size = 0
            async for chunk in response.aiter_bytes():  # decompressed: a gzip bomb is cut off too
                size += len(chunk)
                if size > max_bytes:
                    raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body exceeds {max_bytes} bytes")
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "")
            charset = response.charset_encoding or "utf-8"
    except httpx.TimeoutException:
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None
    except httpx.TooManyRedirects:
        raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.DecodingError as exc:
        raise ScrapeError(ScrapeErrorReason.PARSE, f"undecodable body: {exc}") from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:  # refused, DNS, reset, cut-off body
        raise ScrapeError(ScrapeErrorReason.CONNECT, f"{type(exc).__name__}: {exc}") from None
    return _payload(b"".join(chunks), content_type, charset)
