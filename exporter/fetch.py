"""Fetch one /metrics payload, bounded in time and size, failing with a reason.

Every failure becomes a ``ScrapeError`` with one of the schema's ``ScrapeErrorReason`` values;
nothing else escapes. Messages never contain credentials (they are sent as headers and httpx
error texts carry only the URL, which holds none).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import httpx

from exporter import __version__
from exporter.schema import ScrapeErrorReason

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


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"Accept": ACCEPT, "User-Agent": f"infersight/{__version__}"},
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000),
        trust_env=False,  # an engine next to us is never reached through a proxy from the environment
    )


async def fetch(client: httpx.AsyncClient, url: str, *, timeout: float, max_bytes: int,
                credentials: Credentials = Credentials()) -> Payload:
    """GET ``url`` within ``timeout`` seconds (a slow drip included) and at most ``max_bytes``
    of decompressed body."""
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, timeout, max_bytes, credentials)
    except TimeoutError:
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None
    except httpx.TimeoutException:
        raise ScrapeError(ScrapeErrorReason.TIMEOUT, f"no complete answer within {timeout:.3g}s") from None
    except httpx.TooManyRedirects:
        raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.DecodingError as exc:
        raise ScrapeError(ScrapeErrorReason.PARSE, f"undecodable body: {exc}") from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:  # refused, DNS, reset, cut-off body
        raise ScrapeError(ScrapeErrorReason.CONNECT, f"{type(exc).__name__}: {exc}") from None


async def _fetch(client: httpx.AsyncClient, url: str, timeout: float, max_bytes: int,
                 credentials: Credentials) -> Payload:
    headers = {"Authorization": credentials.header} if credentials.header else {}
    async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        if not 200 <= response.status_code < 300:
            raise ScrapeError(ScrapeErrorReason.HTTP_STATUS, f"HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in response.headers:
            raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body of {declared} bytes exceeds {max_bytes}")
        chunks = []
        size = 0
        async for chunk in response.aiter_bytes():  # decompressed: a gzip bomb is cut off too
            size += len(chunk)
            if size > max_bytes:
                raise ScrapeError(ScrapeErrorReason.TOO_LARGE, f"body exceeds {max_bytes} bytes")
            chunks.append(chunk)
        content_type = response.headers.get("content-type", "")
    body = b"".join(chunks)
    try:
        text = body.decode(response.charset_encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise ScrapeError(ScrapeErrorReason.PARSE, "body is not valid text") from None
    return Payload(text, content_type.startswith("application/openmetrics-text"))
