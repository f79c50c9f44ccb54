"""Where the UI reads from: Prometheus (and Alertmanager), or the exporters scraped directly.

From ``INFERSIGHT_UI_*`` environment variables or a YAML file named by ``INFERSIGHT_UI_CONFIG``
(same keys, lower case), environment first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _urls(value: Any) -> list[str]:
    if isinstance(value, str):
        return [u.strip() for u in value.split(",") if u.strip()]
    return list(value or [])


class UISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERSIGHT_UI_", extra="forbid")

    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    # exporters' /metrics URLs, comma-separated in the environment; used when no Prometheus is set
    exporters: Annotated[list[str], NoDecode, BeforeValidator(_urls)] = []
    refresh_seconds: float = 15.0
    window: str = "5m"  # the comparison window
    slo_spec: Path | None = None  # default: the spec shipped with infersight (infersight.alerts)
    # Prometheus and Alertmanager reads: one deadline per data call (every query of a table at once)
    query_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # TLS: certificates are verified against the system's CAs, or only those in ca_file (PEM)
    ca_file: Path | None = None
    insecure_skip_verify: bool = False  # the explicit opt-out of certificate verification
    # Authorization sent to Prometheus and Alertmanager: a bearer token file, or basic auth
    bearer_token_file: Path | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: Path | None = None

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> UISettings:
        if self.ca_file and self.insecure_skip_verify:
            raise ValueError("ca_file and insecure_skip_verify exclude each other")
        if self.bearer_token_file and (self.basic_auth_username or self.basic_auth_password_file):
            raise ValueError("bearer_token_file and basic auth exclude each other")
        if bool(self.basic_auth_username) != bool(self.basic_auth_password_file):
            raise ValueError("basic auth needs both basic_auth_username and basic_auth_password_file")
        return self

    @property
    def source(self) -> str:
        if self.prometheus_url:
            return f"Prometheus at {self.prometheus_url}"
        if self.exporters:
            return f"{len(self.exporters)} exporter(s), scraped every {self.refresh_seconds:g} s"
        return "nothing configured"


class SettingsError(Exception):
    """The UI's settings cannot be used; the message says which and why (shown on the page)."""


def load_ui_settings() -> UISettings:
    path = os.environ.get("INFERSIGHT_UI_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            file_values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise SettingsError(f"INFERSIGHT_UI_CONFIG={path} could not be read: {e}") from None
        if not isinstance(file_values, dict):
            raise SettingsError(f"INFERSIGHT_UI_CONFIG={path} is not a mapping of settings")
    env = {k: v for k, v in file_values.items() if f"INFERSIGHT_UI_{str(k).upper()}" not in os.environ}
    try:
        return UISettings(**env)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
                             for error in e.errors())
        raise SettingsError(f"The UI settings are invalid: {problems}") from None
