"""A small reader of the Prometheus HTTP API (``/api/v1/query``, ``/api/v1/query_range``) and of
Alertmanager's ``/api/v2/alerts``, on httpx. ``infersight compare --prometheus`` and the web UI
share it.

- One deadline per call, over everything the call does: connecting, TLS, every query of it (they
  run concurrently), every byte of every answer. httpx's own timeouts are per socket operation (a
  server that sends a byte every 2 s never trips a 10 s read timeout), so each call runs on the
  reader's event loop under ``asyncio.timeout``, which cancels whatever is still waiting.
  No retries: a failed call fails once, and the next refresh asks again.
- Certificates are verified (the system's CAs, or only those of ``ca_file``, as Prometheus'
  ``tls_config.ca_file`` does); ``insecure_skip_verify`` is the explicit opt-out.
- Optional ``Authorization``: a bearer token file, or basic auth (user name and password file);
  the files are read at each call, so a rotated token is picked up.
- Every failure is one ``APIError`` whose message names the URL (without credentials or query
  string) and the reason. Answers are checked: a value that is not a number, a body that is not
  JSON or not the documented shape, or an answer over ``max_answer_bytes`` is a reason too.

Nothing here imports the UI; the comparison engine and the UI import this.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import math
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import httpx

MAX_ANSWER_BYTES = 32 * 2**20
ERROR_TYPES = frozenset({"bad_data", "timeout", "canceled", "execution", "internal", "unavailable", "not_found"})

T = TypeVar("T")
_CALL: contextvars.ContextVar[tuple[float, float]] = contextvars.ContextVar("infersight_promapi_call")
_CONNECT_SLACK = 0.05  # seconds: connecting gives up this much before the call's deadline


def _late(timeout: float) -> str:
    return f"no complete answer within {timeout:g} s"


class APIError(Exception):
    """A Prometheus or Alertmanager call failed; ``str()`` says where (no credentials) and why."""

    def __init__(self, source: str, url: str, reason: str, verb: str = "could not be queried"):
        self.source, self.url, self.reason = source, redact(url), reason
        super().__init__(f"{source} at {self.url} {verb}: {reason}")


class _Failure(Exception):
    """A reason, raised inside a call; the call turns it into an ``APIError``."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def redact(url: str) -> str:
    """The URL as messages show it: no user name, password, query string or fragment."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _printable(text: str, limit: int = 200) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class Reader:
    """One HTTP client (connection pool, TLS context) for every call; safe to share between threads.

    Close it (or use it as a context manager): it owns an event loop thread."""

    def __init__(self, *, ca_file: str | Path | None = None, insecure_skip_verify: bool = False,
                 bearer_token_file: str | Path | None = None, basic_auth_username: str | None = None,
                 basic_auth_password_file: str | Path | None = None, max_answer_bytes: int = MAX_ANSWER_BYTES):
        if bearer_token_file and (basic_auth_username or basic_auth_password_file):
            raise ValueError("bearer_token_file and basic auth exclude each other")
        if bool(basic_auth_username) != bool(basic_auth_password_file):
            raise ValueError("basic auth needs both basic_auth_username and basic_auth_password_file")
        self.bearer_token_file = Path(bearer_token_file) if bearer_token_file else None
        self.basic_auth_username = basic_auth_username
        self.basic_auth_password_file = Path(basic_auth_password_file) if basic_auth_password_file else None
        self.max_answer_bytes = max_answer_bytes
        # A CA file that cannot be loaded is the reason every call gives, not a crash at start.
        self._setup_error: str | None = None
        verify: ssl.SSLContext | bool
        if insecure_skip_verify:
            verify = False
        else:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            except (OSError, ssl.SSLError) as e:
                self._setup_error = f"the CA file {ca_file} could not be loaded ({_os_reason(e)})"
                verify = False  # never used: every call fails with the reason above
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="infersight-promapi", daemon=True)
        self._thread.start()
        self._client = self._submit(self._make_client(verify)).result()
        self._closed = False

    async def _make_client(self, verify: ssl.SSLContext | bool) -> httpx.AsyncClient:
        from infersight import __version__

        # No per-operation timeouts: the call's deadline (asyncio.timeout) bounds everything at once.
        return httpx.AsyncClient(verify=verify, trust_env=False, follow_redirects=False, timeout=None,
                                 limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
                                 headers={"Accept": "application/json", "User-Agent": f"infersight/{__version__}"})

    def _submit(self, coroutine: Awaitable[T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._submit(self._client.aclose()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the calls -----------------------------------------------------------------------------------

    def query(self, url: str, queries: Mapping[str, str], *, timeout: float, at: float | None = None
              ) -> dict[str, list[Sample]]:
        """Instant queries (``/api/v1/query``), all within ``timeout`` seconds: name -> vector."""
        def one(name: str, headers: dict[str, str]) -> Awaitable[list[Sample]]:
            params = {"query": queries[name], "timeout": f"{timeout:g}"}
            if at is not None:
                params["time"] = f"{at:.3f}"
            return self._api(url, "/api/v1/query", params, headers, "vector", _vector)
        return self._run("Prometheus", url, timeout, lambda h: self._all(queries, one, h))

    def query_range(self, url: str, queries: Mapping[str, str], *, start: float, end: float, step: float,
                    timeout: float) -> dict[str, list[Series]]:
        """Range queries (``/api/v1/query_range``), all within ``timeout`` seconds: name -> matrix."""
        def one(name: str, headers: dict[str, str]) -> Awaitable[list[Series]]:
            params = {"query": queries[name], "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}",
                      "timeout": f"{timeout:g}"}
            return self._api(url, "/api/v1/query_range", params, headers, "matrix", _matrix)
        return self._run("Prometheus", url, timeout, lambda h: self._all(queries, one, h))

    def alerts(self, url: str, *, timeout: float) -> list[dict[str, Any]]:
        """Alertmanager's active alerts (``/api/v2/alerts?active=true``) within ``timeout`` seconds."""
        async def call(headers: dict[str, str]) -> list[dict[str, Any]]:
            status, document = await self._get(url, "/api/v2/alerts", {"active": "true"}, headers)
            if status != 200:
                raise _Failure(_status_text(status))
            return _alerts(document)
        return self._run("Alertmanager", url, timeout, call, verb="could not be read")

    # --- machinery -----------------------------------------------------------------------------------

    def _run(self, source: str, url: str, timeout: float, call: Callable[[dict[str, str]], Awaitable[T]],
             verb: str = "could not be queried") -> T:
        if self._closed:
            raise RuntimeError("the reader is closed")
        if self._setup_error:
            raise APIError(source, url, self._setup_error, verb)
        try:
            headers = self._auth_headers()
        except _Failure as e:
            raise APIError(source, url, str(e), verb) from None

        async def bounded() -> T:
            _CALL.set((asyncio.get_running_loop().time() + timeout, timeout))
            try:
                async with asyncio.timeout(timeout):
                    return await call(headers)
            except TimeoutError:
                raise _Failure(_late(timeout)) from None

        future = self._submit(bounded())
        try:
            # The loop enforces the deadline; this wait only guards against a wedged loop.
            return future.result(timeout=timeout + 5)
        except _Failure as e:
            raise APIError(source, url, str(e), verb) from None
        except FutureTimeout:
            future.cancel()
            raise APIError(source, url, _late(timeout), verb) from None

    def _auth_headers(self) -> dict[str, str]:
        try:
            if self.bearer_token_file:
                return {"Authorization": f"Bearer {self.bearer_token_file.read_text(encoding='utf-8').strip()}"}
            if self.basic_auth_username and self.basic_auth_password_file:
                password = self.basic_auth_password_file.read_text(encoding="utf-8").strip()
                pair = f"{self.basic_auth_username}:{password}".encode()
                return {"Authorization": f"Basic {base64.b64encode(pair).decode('ascii')}"}
        except (OSError, UnicodeDecodeError) as e:
            which = self.bearer_token_file or self.basic_auth_password_file
            raise _Failure(f"the credentials file {which} could not be read ({_os_reason(e)})") from None
        return {}

    @staticmethod
    async def _all(queries: Mapping[str, str], one: Callable[[str, dict[str, str]], Awaitable[T]],
                   headers: dict[str, str]) -> dict[str, T]:
        """Every query at once; the first failure (in the queries' order) is the call's reason.
        The others are let finish rather than cancelled: httpcore leaves the socket of a TLS
        handshake it is cancelled in to the garbage collector. Only the deadline cancels."""
        answers = await asyncio.gather(*(one(name, headers) for name in queries), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return dict(zip(queries, answers, strict=True))  # type: ignore[arg-type]

    async def _api(self, url: str, path: str, params: dict[str, str], headers: dict[str, str], result_type: str,
                   parse: Callable[[Any], T]) -> T:
        status, document = await self._get(url, path, params, headers)
        if not isinstance(document, dict):
            raise _Failure(_status_text(status) if status != 200 else "unexpected answer: not a JSON object")
        if document.get("status") != "success" or status != 200:
            error_type = document.get("errorType")
            error = document.get("error")
            detail = " ".join(filter(None, [
                f"{error_type}:" if isinstance(error_type, str) and error_type in ERROR_TYPES else None,
                _printable(error) if isinstance(error, str) else None]))
            prefix = _status_text(status) if status != 200 else "Prometheus answered an error"
            raise _Failure(f"{prefix}: {detail}" if detail else prefix)
        data = document.get("data")
        if not isinstance(data, dict) or data.get("resultType") != result_type:
            got = data.get("resultType") if isinstance(data, dict) else None
            raise _Failure(f"unexpected answer: expected a {result_type}, got "
                           f"{_printable(got, 20) if isinstance(got, str) else 'no result type'}")
        return parse(data.get("result"))

    async def _get(self, url: str, path: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        """GET ``url + path``; the status and the decoded JSON (None for a non-2xx answer that is not JSON)."""
        body = bytearray()
        deadline, timeout = _CALL.get()
        # The call's deadline bounds this request; connecting (TCP and the TLS handshake) gets its own
        # timeout just before it, because httpcore, cancelled inside a handshake, leaves that socket
        # to the garbage collector, whereas its own connect timeout closes it.
        connect = max(deadline - asyncio.get_running_loop().time() - _CONNECT_SLACK, 0.001)
        try:
            async with self._client.stream("GET", url.rstrip("/") + path, params=params, headers=headers,
                                           timeout=httpx.Timeout(None, connect=connect)) as response:
                status = response.status_code
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_answer_bytes:
                        raise _Failure(f"the answer is larger than {self.max_answer_bytes:,} bytes")
        except httpx.TimeoutException:
            raise _Failure(_late(timeout)) from None
        except httpx.HTTPError as e:
            raise _Failure(_transport_reason(e)) from None
        try:
            return status, json.loads(body)
        except (ValueError, RecursionError) as e:
            if not 200 <= status < 300:
                return status, None
            if isinstance(e, json.JSONDecodeError):
                raise _Failure(f"the answer is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
            if isinstance(e, UnicodeDecodeError):
                raise _Failure("the answer is not JSON (not UTF-8)") from None
            raise _Failure("the answer is not JSON (nested too deeply)" if isinstance(e, RecursionError)
                           else f"the answer is not JSON ({_printable(str(e), 80)})") from None


# --- answers --------------------------------------------------------------------------------------------

def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metric.items()):
        raise _Failure("unexpected answer: series labels are not strings")
    return metric


def _number(value: Any) -> float:
    """A sample value: Prometheus sends it as a string ("1.5", "NaN", "+Inf")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    shown = _printable(json.dumps(value), 40)
    raise _Failure(f"unexpected answer: the sample value {shown} is not a number")


def _time(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _Failure(f"unexpected answer: the timestamp {_printable(json.dumps(value), 40)} is not a number")


def _pair(point: Any) -> tuple[float, float]:
    if not isinstance(point, list) or len(point) != 2:
        raise _Failure("unexpected answer: a sample is not a [time, value] pair")
    return _time(point[0]), _number(point[1])


def _vector(result: Any) -> list[Sample]:
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise _Failure("unexpected answer: the vector is not a list of series")
    return [Sample(_labels(r.get("metric")), _pair(r.get("value"))[1]) for r in result]


def _matrix(result: Any) -> list[Series]:
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise _Failure("unexpected answer: the matrix is not a list of series")
    out = []
    for r in result:
        values = r.get("values")
        if not isinstance(values, list):
            raise _Failure("unexpected answer: a series has no list of values")
        out.append(Series(_labels(r.get("metric")), tuple(_pair(p) for p in values)))
    return out


def _alerts(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, list) or not all(
            isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in document):
        raise _Failure("unexpected answer: not a list of alerts with labels")
    return document


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _os_reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):  # "[X509: ...] what (_ssl.c:4149)": the source line says nothing
        return re.sub(r" \(_ssl\.c:\d+\)$", "", str(e))
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _transport_reason(e: httpx.HTTPError) -> str:
    """What went wrong under httpx, in words: the innermost cause says most."""
    causes: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and seen not in causes:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message})"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        if isinstance(cause, socket.gaierror):
            return f"the host name could not be resolved ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
            return "connection reset"
    if isinstance(e, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return _printable(str(e))
    if isinstance(e, httpx.RemoteProtocolError):
        return f"not an HTTP answer ({_printable(str(e), 120)})"
    inner = causes[-1]
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return _printable(str(e) or type(e).__name__)
