"""The exporter's configuration: one typed, strict model fed by flags, env vars and a YAML file.

Precedence: command-line flags > ``INFERSIGHT_*`` environment variables > the YAML file >
defaults. Nothing else in the exporter reads the environment.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from infersight.exporter.cost import GPU_PRICES
from infersight.exporter.schema import Engine, GpuSource

EngineChoice = Engine | Literal["auto"]
_yaml_data: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("yaml_data", default=None)


FiniteNonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _readable_secret_file(path: Path | None, empty_is_error: bool = False) -> Path | None:
    """A credentials file must be readable (as UTF-8) when the configuration is loaded, so that a
    wrong path or mode fails ``--check-config`` and the start, not every scrape. It is still read
    again at every scrape (mounted secrets rotate). Its content is never echoed."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if empty_is_error and not text.strip():
        raise ValueError(f"{path} is empty")
    return path


class BasicAuth(_Strict):
    username: str
    password: SecretStr | None = None  # prefer password_file, or INFERSIGHT_BASIC_AUTH__PASSWORD
    password_file: Path | None = None

    @field_validator("password_file")
    @classmethod
    def _password_file_readable(cls, path: Path | None) -> Path | None:
        return _readable_secret_file(path)

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password and password_file")
        return self


class Auth(_Strict):
    """Credentials for a protected engine endpoint. Never logged, never exported."""

    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None

    @field_validator("bearer_token_file")
    @classmethod
    def _token_file_readable(cls, path: Path | None) -> Path | None:
        return _readable_secret_file(path, empty_is_error=True)

    @model_validator(mode="after")
    def _one_method(self) -> Auth:
        methods = [self.bearer_token is not None, self.bearer_token_file is not None, self.basic_auth is not None]
        if sum(methods) > 1:
            raise ValueError("give only one of bearer_token, bearer_token_file and basic_auth")
        return self

    @property
    def configured(self) -> bool:
        return self.bearer_token is not None or self.bearer_token_file is not None or self.basic_auth is not None


class GpuConfig(_Strict):
    source: GpuSource = GpuSource.NONE
    dcgm_url: HttpUrl | None = None  # dcgm-exporter's /metrics, for source=dcgm
    # Which GPUs belong to this target: UUIDs or indices. Empty: every GPU the source reports.
    devices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _dcgm_needs_url(self) -> GpuConfig:
        if self.source is GpuSource.DCGM and self.dcgm_url is None:
            raise ValueError("gpu.source=dcgm needs gpu.dcgm_url")
        return self


class CostConfig(_Strict):
    gpu_type: str | None = None  # a key of exporter/gpu_prices.yaml, for its dated default price
    gpu_count: PositiveInt = 1
    gpu_hourly_dollars: FiniteNonNegative | None = None  # overrides the gpu_type price
    licence_monthly_dollars: FiniteNonNegative = 0.0  # e.g. NVIDIA AI Enterprise; a month is 730 h

    @model_validator(mode="after")
    def _known_price(self) -> CostConfig:
        if self.gpu_hourly_dollars is None and self.gpu_type is not None and self.gpu_type not in GPU_PRICES:
            known = ", ".join(sorted(GPU_PRICES))
            raise ValueError(f"unknown gpu_type {self.gpu_type!r}: give gpu_hourly_dollars or one of {known}")
        return self

    @property
    def configured(self) -> bool:
        return self.gpu_type is not None or self.gpu_hourly_dollars is not None or self.licence_monthly_dollars > 0


class TargetConfig(_Strict):
    url: HttpUrl  # never holds user:password@ (it becomes auth, see _userinfo_to_auth)
    name: str | None = None  # the target label; default host:port
    engine: EngineChoice | None = None  # default: the top-level engine
    model: str | None = None  # model label for engines whose metrics name none (TGI)
    auth: Auth | None = None  # default: the top-level auth
    gpu: GpuConfig | None = None  # default: the top-level gpu
    cost: CostConfig | None = None  # default: the top-level cost
    _auth_from_url: bool = PrivateAttr(default=False)  # auth is the URL's user:password

    @model_validator(mode="wrap")
    @classmethod
    def _userinfo_to_auth(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> TargetConfig:
        """Accept ``URL`` or ``NAME=URL``, as on the command line. A URL's ``user:password@``
        becomes this target's basic auth and is removed from the URL, so that it reaches neither
        the target label, nor --check-config, logs, errors, nor the Host header."""
        if isinstance(value, str):
            name, sep, url = value.partition("=")
            value = {"name": name, "url": url} if sep and "://" not in name else {"url": value}
        from_url = False
        if isinstance(value, dict) and value.get("url") is not None:
            url, credentials = split_userinfo(str(value["url"]))
            if url != str(value["url"]):
                value = {**value, "url": url}
            if credentials is not None:
                if value.get("auth") is not None:
                    raise ValueError("the URL holds user:password and auth is given too: give one "
                                     "(the URL's user:password is this target's basic auth)")
                username, password = credentials
                value["auth"] = {"basic_auth": {"username": username, "password": password}}
                from_url = True
        target = handler(value)
        if from_url:
            target._auth_from_url = True
        return target

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return urlsplit(str(self.url)).netloc.rpartition("@")[2]  # host:port (never user:password@)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


def read_otlp_headers(path: Path) -> dict[str, str]:
    """The OTLP push's extra headers: one ``Name: value`` per line, blank lines and ``#`` comments
    skipped. Errors name the file and line, never a value."""
    _readable_secret_file(path, empty_is_error=True)
    headers = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.fullmatch(name) or not value or any(c in value for c in "\r\n\0"):
            raise ValueError(f"{path}:{number}: expected 'Name: value'")
        headers[name] = value
    return headers


class OtlpConfig(_Strict):
    """Push the unified metrics to an OpenTelemetry collector (OTLP/HTTP, protobuf): the [otlp]
    extra, exporter/otlp.py, docs/opentelemetry.md."""

    endpoint: HttpUrl  # the full URL, e.g. http://collector:4318/v1/metrics
    interval_seconds: Annotated[float, Field(ge=1, le=86400, allow_inf_nan=False)] = 60.0
    timeout_seconds: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = 10.0
    # "Name: value" lines (e.g. Authorization: Bearer ...), read again at every push; never logged.
    headers_file: Path | None = None

    @field_validator("headers_file")
    @classmethod
    def _headers_file_readable(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_otlp_headers(path)
        return path

    @model_validator(mode="after")
    def _extra_installed(self) -> OtlpConfig:
        import importlib.util

        # Found, not loaded (only the empty parent packages are): the SDK loads when pushing starts.
        for module in ("opentelemetry.sdk.metrics", "opentelemetry.exporter.otlp.proto.http"):
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                raise ValueError(f"OTLP export needs the otlp extra ({module} is missing): "
                                 "pip install 'infersight[otlp]'")
        return self


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without ``user:password@``, and the (percent-decoded) user and password if any."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    stripped = urlunsplit(parts._replace(netloc=hostport))
    if not userinfo:
        return stripped, None
    username, _, password = userinfo.partition(":")
    return stripped, (unquote(username), unquote(password))


def redact_url(url: str) -> str:
    """``url`` as it may be shown (check-config, logs, errors): without ``user:password@``, the
    values of its query parameters replaced by ``***`` (a token may travel there), no fragment."""
    parts = urlsplit(url)
    query = "&".join(f"{name}=***" if sep else "***"
                      for name, sep, _ in (item.partition("=") for item in parts.query.split("&")))
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=query if parts.query else "",
                                     fragment=""))


_HOST_NAME = re.compile(r"(?!-)[\w-]{1,63}(?<!-)(\.(?!-)[\w-]{1,63}(?<!-))*\.?", re.ASCII)


def _listen_address(value: str) -> str:
    """``HOST:PORT``: HOST empty (every interface), an IPv4 or IPv6 address (``[::]``) or a host
    name. Whether it can be bound (in use, not this machine's address, unknown name) is known only
    where the exporter runs: ``infersight exporter`` says so in one line when it starts."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:9400")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare:
        return value
    try:
        ipaddress.ip_address(bare)
        return value
    except ValueError:
        pass
    if ":" in bare or bare != host or not _HOST_NAME.fullmatch(bare) or bare.rstrip(".").replace(".", "").isdigit():
        raise ValueError(f"{host!r} is not an IP address or host name (expected HOST:PORT, e.g. 0.0.0.0:9400)")
    return value


# Client certificate checks that verify the certificate: without client_ca_file nothing can verify.
_VERIFYING_CLIENT_AUTH = ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")


class Settings(BaseSettings):
    """Everything ``infersight exporter`` needs (README, "The exporter"; examples/exporter.yaml)."""

    model_config = SettingsConfigDict(
        env_prefix="INFERSIGHT_", env_nested_delimiter="__", extra="forbid", frozen=True)

    engine: EngineChoice = "auto"
    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    listen: str = "0.0.0.0:9400"
    scrape_timeout_seconds: float = 10.0
    max_body_bytes: PositiveInt = 32 * 1024 * 1024
    max_models: PositiveInt = 100  # per target; the series of further models are dropped and counted
    max_gpus: PositiveInt = 64  # per target (8 GPUs a node is the common case); further GPUs' series likewise
    # A series with a label value copied from the engine (model, GPU) longer than this is dropped and counted.
    max_label_bytes: Annotated[int, Field(ge=64)] = 1024
    # Each engine's cache of known series (exporter.parse.SeriesCache) starts over beyond this estimate.
    max_cache_bytes: Annotated[int, Field(ge=1024 * 1024)] = 64 * 1024 * 1024
    auth: Auth = Auth()
    gpu: GpuConfig = GpuConfig()
    cost: CostConfig = CostConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    web_config_file: Path | None = None  # TLS and basic auth for /metrics (exporter-toolkit format)
    otlp: OtlpConfig | None = None  # also push the unified metrics over OTLP (docs/opentelemetry.md)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _listen_address(value)

    @field_validator("scrape_timeout_seconds")
    @classmethod
    def _finite_timeout(cls, value: float) -> float:
        # inf or NaN would never end a scrape: /metrics would never answer.
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a finite number > 0")
        return value

    @field_validator("web_config_file")
    @classmethod
    def _web_config_loads(cls, path: Path | None) -> Path | None:
        if path is not None:
            from infersight.exporter.webconfig import WebConfigError, load_web_config

            try:
                web = load_web_config(path)
            except WebConfigError as exc:
                raise ValueError(str(exc)) from None
            except UnicodeDecodeError:
                raise ValueError(f"{path}: not UTF-8 text") from None
            tls = web.tls_server_config
            if tls is not None and tls.client_auth_type in _VERIFYING_CLIENT_AUTH and tls.client_ca_file is None:
                raise ValueError(f"{path}: tls_server_config: client_auth_type {tls.client_auth_type} needs "
                                 "client_ca_file (the CA that signed the client certificates)")
        return path

    @model_validator(mode="after")
    def _one_source_of_credentials(self) -> Settings:
        if self.auth.configured:
            for target in self.targets:
                if target._auth_from_url:
                    raise ValueError(f"target {target.label}: the URL holds user:password and auth is configured "
                                     "too (top-level auth): give one (the URL's user:password is this target's "
                                     "basic auth)")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [t.label for t in self.targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique; repeated: {', '.join(duplicates)} (set name=)")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls), _YamlSource(settings_cls)

    def resolved(self, target: TargetConfig) -> ResolvedTarget:
        return ResolvedTarget(
            config=target,
            name=target.label,
            engine=target.engine or self.engine,
            auth=target.auth if target.auth is not None else self.auth,
            gpu=target.gpu if target.gpu is not None else self.gpu,
            cost=target.cost if target.cost is not None else self.cost,
        )


class ResolvedTarget(_Strict):
    """A target with the top-level defaults applied."""

    config: TargetConfig
    name: str
    engine: EngineChoice
    auth: Auth
    gpu: GpuConfig
    cost: CostConfig

    @property
    def url(self) -> str:
        return str(self.config.url)


class _EnvJSONError(ValueError):
    """An ``INFERSIGHT_*`` variable of a structured setting does not hold JSON."""

    def __init__(self, key: str, value: str, error: json.JSONDecodeError):
        super().__init__(error.msg)
        self.key, self.value, self.error = key, value, error

    def variable(self) -> str:
        """The variable's name as set: the one whose value this is, for this key."""
        key = self.key.lower()
        for name, value in sorted(os.environ.items()):
            lowered = name.lower()
            if value == self.value and lowered.startswith("infersight_") and (
                    lowered == f"infersight_{key}" or lowered.endswith(f"__{key}")):
                return name
        return f"INFERSIGHT_{self.key.upper()}"


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, whose JSON errors name the variable."""

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except json.JSONDecodeError as exc:
            raise _EnvJSONError(field_name, value, exc) from None


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get() or {})


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists ``location: message`` lines."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"]
                          ) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid YAML: nested too deeply"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level"])
    return data


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Build Settings from command-line ``flags`` (unset ones omitted), env vars and the YAML file.

    Raises ConfigError with one line per problem; secrets are never echoed.
    """
    data = _read_yaml(config_file) if config_file else {}
    token = _yaml_data.set(data)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError([_describe(error, config_file) for error in exc.errors()]) from None
    except SettingsError as exc:  # an INFERSIGHT_* variable that cannot be decoded
        cause = exc.__cause__
        if isinstance(cause, _EnvJSONError):
            e = cause.error
            raise ConfigError([f"{cause.variable()}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"]
                              ) from None
        raise ConfigError([str(exc)]) from None
    finally:
        _yaml_data.reset(token)


def _describe(error: Any, config_file: Path | None) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    prefix = f"{config_file}: " if config_file else ""
    return f"{prefix}{location or '(top level)'}: {message}"
