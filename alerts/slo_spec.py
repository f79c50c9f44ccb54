"""The SLO spec (alerts/slos.yaml): a small, validated, Sloth/OpenSLO-shaped description of what
"good" means for LLM serving, from which ``infersight rules`` generates Prometheus rules."""

from __future__ import annotations

import re
from importlib.abc import Traversable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infersight.exporter.schema import BY_NAME, Kind, Label

_DURATION = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration such as 5m, 1h30m or 30d."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r} (e.g. 5m, 6h, 30d)")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencySli(_Strict):
    """Good events: observations of ``histogram`` at or below ``threshold_seconds``."""

    histogram: str
    threshold_seconds: Annotated[float, Field(gt=0)]

    @field_validator("histogram")
    @classmethod
    def _a_schema_histogram(cls, name: str) -> str:
        metric = BY_NAME.get(name)
        if metric is None or metric.kind is not Kind.HISTOGRAM or Label.MODEL not in metric.labels:
            choices = ", ".join(m.name for m in BY_NAME.values() if m.kind is Kind.HISTOGRAM)
            raise ValueError(f"not a histogram of the schema; one of {choices}")
        return name


class AvailabilitySli(_Strict):
    """Good events: finished requests with outcome=success; bad: outcome=error. Aborted requests
    (the client gave up) count as neither."""


class Sli(_Strict):
    latency: LatencySli | None = None
    availability: AvailabilitySli | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Sli:
        if (self.latency is None) == (self.availability is None):
            raise ValueError("give exactly one of latency and availability")
        return self


class Alerting(_Strict):
    page: bool = True  # fast burns (14.4x over 1h/5m, 6x over 6h/30m) page
    ticket: bool = True  # slow burns (3x over 1d/2h, 1x over 3d/6h) open a ticket


class Slo(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    description: str = ""
    objective: Annotated[float, Field(gt=0, lt=1)]
    window: Literal["7d", "28d", "30d"] = "30d"
    sli: Sli
    # Regex matchers on the schema's engine and model labels, e.g. {engine: "vllm|nim"}.
    selector: dict[Literal["engine", "model"], str] = {}
    alerting: Alerting = Alerting()

    @field_validator("selector")
    @classmethod
    def _valid_regexes(cls, selector: dict[str, str]) -> dict[str, str]:
        for label, pattern in selector.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: invalid regex: {exc}") from None
        return selector


class SloSpec(_Strict):
    version: Literal[1]
    slos: list[Slo]

    @model_validator(mode="after")
    def _unique(self) -> SloSpec:
        names = [s.name for s in self.slos]
        if len(names) != len(set(names)):
            raise ValueError("SLO names must be unique")
        return self


class SpecError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_spec(path: Path | Traversable | None = None) -> SloSpec:
    """The spec at ``path``; by default the one shipped with infersight (alerts/slos.yaml)."""
    if path is None:
        from infersight.alerts import SPEC, packaged

        path = packaged(SPEC)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError([f"{path}: {exc}"]) from None
    try:
        return SloSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                         for e in exc.errors()]) from None
