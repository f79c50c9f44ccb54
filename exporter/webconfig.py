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

import base64
import hashlib
import ssl
import threading
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


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes. bcrypt is slow on purpose (tens of
    milliseconds), so a header that passed once is remembered by its digest."""

    def __init__(self, users: dict[str, str]):
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._accepted: set[bytes] = set()
        self._lock = threading.Lock()
        self._decoy = b""
        if users:  # bcrypt is imported only where it is used (0.4 MiB of a sidecar's memory otherwise)
            import bcrypt

            self._checkpw = bcrypt.checkpw
            # Unknown users are checked against this, so timing does not reveal which users exist.
            self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(10))

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allows_known(self, header: str | None) -> bool:
        """Whether ``header`` passed before (no bcrypt): a cheap check for every request."""
        if not self._users or not header:
            return not self._users
        digest = hashlib.sha256(header.encode()).digest()
        with self._lock:
            return digest in self._accepted

    def allows(self, header: str | None) -> bool:
        if not self._users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        digest = hashlib.sha256(header.encode()).digest()
        with self._lock:
            if digest in self._accepted:
                return True
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if not self._checkpw(password.encode(), hashed or self._decoy) or hashed is None:
            return False
        with self._lock:
            if len(self._accepted) > 1000:
                self._accepted.clear()
            self._accepted.add(digest)
        return True
