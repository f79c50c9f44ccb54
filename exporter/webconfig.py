"""TLS and basic auth for the exporter's own endpoint, from a web config file in the Prometheus
exporter-toolkit format (the same file node_exporter takes with --web.config.file):

    tls_server_config:
      cert_file: /etc/infersight/tls.crt
      key_file: /etc/infersight/tls.key
      # client_auth_type: RequireAndVerifyClientCert
      # client_ca_file: /etc/infersight/ca.crt
      # min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash, e.g. htpasswd -nBC 10 "" | tr -d ':\\n'

Relative paths are relative to the file. Only /metrics is protected: /-/healthy and /-/ready say
nothing about the engines, and Kubernetes probes cannot send credentials.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import itertools
import ssl
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


class TlsServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path
    key_file: Path
    client_auth_type: Literal[tuple(_CLIENT_AUTH)] = "NoClientCert"  # type: ignore[valid-type]
    client_ca_file: Path | None = None
    min_version: Literal[tuple(_TLS_VERSIONS)] = "TLS12"  # type: ignore[valid-type]


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = {}

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
                raise ValueError(f"{user}: not a bcrypt hash (e.g. htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        return users


class WebConfigError(Exception):
    pass


def load_web_config(path: Path) -> WebConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        config = WebConfig.model_validate(data)
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise WebConfigError(f"{path}: {problems}") from None
    tls = config.tls_server_config
    if tls is not None:  # resolve relative paths, then prove the files load
        base = path.parent
        tls = tls.model_copy(update={
            "cert_file": base / tls.cert_file, "key_file": base / tls.key_file,
            "client_ca_file": base / tls.client_ca_file if tls.client_ca_file else None})
        config = config.model_copy(update={"tls_server_config": tls})
        try:
            ssl_context(config)
        except WebConfigError as exc:
            raise WebConfigError(f"{path}: {exc}") from None
    return config


def ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    tls = config.tls_server_config
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"tls_server_config: cannot load certificate or key: {exc}") from None
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


# Basic auth under attack (docs/reliability.md, "Attacks"). bcrypt costs tens of milliseconds of a
# core per check, on purpose: an unauthenticated client must not be able to spend the exporter's
# cores with it, nor make a valid credential wait behind its own checks.
BCRYPT_THREADS = 1  # one check at a time
BCRYPT_REST_RATIO = 3  # after a check of t seconds, none for 3 t: bcrypt takes a quarter of a core at most
MAX_WAITING_CHECKS = 8  # credentials waiting for the bcrypt thread; 429 beyond (see BasicAuth.check)
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; Go's bcrypt refuses longer passwords, so do we
ACCEPTED_KEPT = 1024  # credentials that passed, by digest: later requests with them cost no bcrypt
FAILED_KEPT = 4096  # credentials that failed, by digest: a repeated bad one costs no bcrypt
SOURCES_KEPT = 4096  # failure counts of client addresses, which order the waiting checks

UNAUTHORIZED = 401
TOO_MANY_REQUESTS = 429


def _remember(kept: OrderedDict, key: object, limit: int, value: object = None) -> None:
    kept[key] = value
    kept.move_to_end(key)
    if len(kept) > limit:
        kept.popitem(last=False)


def source_of(client: str | None) -> str:
    """The address a client's checks are counted against: its IP, or its /64 for IPv6 (what one
    host is usually given)."""
    if not client:
        return ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return client


@dataclass(eq=False)
class _Check:
    """A credential waiting for (or in) the bcrypt thread; requests presenting it share its result."""
    digest: bytes
    user: str
    password: bytes
    source: str
    order: int
    result: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes, with bcrypt's cost bounded:

    - a credential that passed, or failed, before is answered from memory (by the SHA-256 of the
      decoded ``user:password``, a bounded cache of each kind): repeating one costs no bcrypt;
    - a header that is not Basic, does not decode, or carries a password of more than 72 bytes
      is refused without bcrypt (401);
    - the rest is checked by bcrypt on its own thread (``BCRYPT_THREADS``), one credential at a
      time, each check followed by a rest three times as long (a quarter of a core at most, under
      any flood); requests presenting the same credential meanwhile share the check;
    - one client address has at most one credential waiting: another from it is answered 429 at
      once; at most ``MAX_WAITING_CHECKS`` wait, and the next in line is the one whose address
      has failed least (a new Prometheus before an address that has been guessing), which may
      push the waiting check of the address that failed most out (429).

    So a valid credential not seen before, from an address that has not been guessing, waits
    for at most the check that is running, its rest and its own check (5 checks' time, about
    0.3 s at cost 10), whatever the number of guessers."""

    def __init__(self, users: dict[str, str]):
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._failures: OrderedDict[str, int] = OrderedDict()  # by source
        self._checks: dict[bytes, _Check] = {}  # waiting or running, by digest
        self._by_source: dict[str, _Check] = {}  # the same checks, by the source that brought them
        self._waiting: list[_Check] = []
        self._orders = itertools.count()
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._decoy = b""
        if users:  # bcrypt is imported only where it is used (0.4 MiB of a sidecar's memory otherwise)
            import bcrypt

            self._checkpw = bcrypt.checkpw
            # Unknown users are checked against this, so timing does not reveal which users exist.
            self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(10))
            self._executor = ThreadPoolExecutor(BCRYPT_THREADS, thread_name_prefix="bcrypt")

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    async def check(self, header: str | None, client: str | None = None) -> int:
        """200 if ``header`` carries a valid credential, else 401, or 429 where the check was not
        made (this client address already has one waiting, or too many are waiting). On the
        exporter's loop; bcrypt runs on its own thread."""
        if not self._users:
            return 200
        credential = _decode(header)
        if credential is None:
            return UNAUTHORIZED
        raw, user, password = credential
        digest = hashlib.sha256(raw).digest()
        source = source_of(client)
        if digest in self._accepted:
            self._accepted.move_to_end(digest)
            return 200
        if digest in self._failed or len(password) > MAX_PASSWORD_BYTES:
            self._failed_once(source)
            return UNAUTHORIZED
        check = self._checks.get(digest)
        if check is None:
            check = self._enqueue(digest, user, password, source)
            if check is None:
                return TOO_MANY_REQUESTS
        verdict = await asyncio.shield(check.result)
        return TOO_MANY_REQUESTS if verdict is None else 200 if verdict else UNAUTHORIZED

    def _enqueue(self, digest: bytes, user: str, password: bytes, source: str) -> _Check | None:
        if source in self._by_source:  # a second credential at once: guessing (Prometheus sends one)
            self._failed_once(source)
            return None
        check = _Check(digest, user, password, source, next(self._orders))
        if len(self._waiting) >= MAX_WAITING_CHECKS:
            worst = max(self._waiting, key=self._rank)
            if self._rank(worst) <= self._rank(check):
                self._failed_once(source)
                return None
            self._waiting.remove(worst)
            self._forget(worst)
            worst.result.set_result(None)
            self._failed_once(worst.source)
        self._checks[digest] = self._by_source[source] = check
        self._waiting.append(check)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())
        return check

    def _rank(self, check: _Check) -> tuple[int, int]:
        """The order of the waiting checks: fewest failures of their source first, then oldest."""
        return self._failures.get(check.source, 0), check.order

    def _forget(self, check: _Check) -> None:
        del self._checks[check.digest]
        del self._by_source[check.source]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            check = min(self._waiting, key=self._rank)
            self._waiting.remove(check)
            started = loop.time()
            try:
                ok = await loop.run_in_executor(self._executor, self._verify, check.user, check.password)
            except Exception:  # noqa: BLE001 (a refusal, whatever bcrypt objects to)
                ok = False
            took = loop.time() - started
            self._forget(check)
            if ok:
                _remember(self._accepted, check.digest, ACCEPTED_KEPT)
                self._failures.pop(check.source, None)
            else:
                _remember(self._failed, check.digest, FAILED_KEPT)
                self._failed_once(check.source)
            check.result.set_result(ok)
            await asyncio.sleep(took * BCRYPT_REST_RATIO)

    def _verify(self, user: str, password: bytes) -> bool:
        hashed = self._users.get(user)
        return self._checkpw(password, hashed or self._decoy) and hashed is not None

    def _failed_once(self, source: str) -> None:
        _remember(self._failures, source, SOURCES_KEPT, self._failures.get(source, 0) + 1)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _decode(header: str | None) -> tuple[bytes, str, bytes] | None:
    """(``user:password`` as sent, the user, the password) of a Basic Authorization header."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
        user, colon, password = raw.partition(b":")
        if not colon:
            return None
        return raw, user.decode("utf-8"), password
    except (ValueError, UnicodeDecodeError):
        return None
