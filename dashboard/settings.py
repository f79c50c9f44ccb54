"""Where the UI reads from: Prometheus (and Alertmanager), or the exporters scraped directly.

From ``INFERSIGHT_UI_*`` environment variables or a YAML file named by ``INFERSIGHT_UI_CONFIG``
(same keys, lower case), environment first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator
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

    @property
    def source(self) -> str:
        if self.prometheus_url:
            return f"Prometheus at {self.prometheus_url}"
        if self.exporters:
            return f"{len(self.exporters)} exporter(s), scraped every {self.refresh_seconds:g} s"
        return "nothing configured"


def load_ui_settings() -> UISettings:
    path = os.environ.get("INFERSIGHT_UI_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        file_values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    env = {k: v for k, v in file_values.items() if f"INFERSIGHT_UI_{k.upper()}" not in os.environ}
    return UISettings(**env)
