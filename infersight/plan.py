"""Capacity and cost plan: which engine to run, and what it costs, at a given traffic and SLO.

From a measured history of comparison rows (``infersight.compare``'s columns at successive
instants, each over the comparison window), per engine/model/target (a target is one replica):

- an instant *met the SLO* when both its TTFT and its ITL quantile (p99 by default) are at or
  under the thresholds; an instant without either figure did not;
- **goodput** (tokens/s): the highest output tokens/s at an instant that met the SLO;
- **goodput (req/s)** per replica = goodput / asked output tokens per request: requests of the
  asked shape one replica served per second while the SLO held;
- **replicas** = ceil(asked req/s / goodput req/s), at least 1;
- **$/h** = the target's ``hourly_cost_dollars`` (what its exporter says it costs), latest figure;
- **$/month** = replicas x $/h x 730 (``HOURS_PER_MONTH``);
- **$ per 1M output tokens** = replicas x $/h / (asked req/s x output tokens x 3600) x 1e6;
- **headroom** = replicas x goodput req/s / asked req/s - 1 (0.25: a quarter more traffic fits);
- **data span**: the first and last instant of the history used, and how many met the SLO.

Warnings: no instant met the SLO (no plan); the asked req/s is above the highest load measured on
one replica (the plan assumes replicas add capacity linearly); the asked prompt:output token mix
is far (over 2x) from the measured one (the goodput was measured on other requests).

``infersight plan`` prints these rows; the web UI's Plan page calls the same functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from infersight.compare import Row, RowKey, Snapshot, column_queries, embedded_rows
from infersight.exporter.cost import HOURS_PER_MONTH

if TYPE_CHECKING:
    from infersight.promapi import Reader

Points = Sequence[tuple[float, Sequence[Row]]]  # (unix time, comparison rows over the window before it)
QUANTILES = ("p99", "p50")
MIX_TOLERANCE = 2.0  # asked vs measured prompt:output ratio beyond which the plan warns
# The columns a plan reads (one range query each from Prometheus).
PLAN_COLUMNS = ("output_tokens_per_second", "input_tokens_per_second", "ttft_p50_seconds", "ttft_p99_seconds",
                "itl_p50_seconds", "itl_p99_seconds", "hourly_cost_dollars")
CLUSTER = "cluster"  # the external label of a multi-cluster store: targets are named cluster/target
# Columns that belong to a target, not a model row: put on every model row of the target.
TARGET_COLUMNS = ("gpu_utilization_ratio", "hourly_cost_dollars")


@dataclass(frozen=True)
class Traffic:
    requests_per_second: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if not (self.requests_per_second > 0 and self.prompt_tokens >= 0 and self.output_tokens > 0):
            raise ValueError("traffic needs requests/s > 0, prompt tokens >= 0 and output tokens > 0")


@dataclass(frozen=True)
class Objective:
    ttft_seconds: float
    itl_seconds: float
    quantile: str = "p99"

    def __post_init__(self) -> None:
        if self.quantile not in QUANTILES:
            raise ValueError(f"quantile must be one of {', '.join(QUANTILES)}")
        if not (self.ttft_seconds > 0 and self.itl_seconds > 0):
            raise ValueError("the TTFT and ITL thresholds must be > 0")

    def met(self, row: Row) -> bool:
        ttft, itl = row.get(f"ttft_{self.quantile}_seconds"), row.get(f"itl_{self.quantile}_seconds")
        return ttft is not None and itl is not None and ttft <= self.ttft_seconds and itl <= self.itl_seconds


@dataclass
class PlanRow:
    engine: str
    model: str
    target: str
    goodput_tokens_per_second: float | None
    goodput_requests_per_second: float | None
    max_measured_requests_per_second: float | None
    replicas: int | None
    hourly_cost_dollars: float | None
    monthly_cost_dollars: float | None
    cost_per_million_output_tokens_dollars: float | None
    headroom: float | None
    span_start: float | None
    span_end: float | None
    instants: int
    instants_met: int
    warnings: list[str] = field(default_factory=list)

    @property
    def span_seconds(self) -> float:
        return 0.0 if self.span_start is None or self.span_end is None else self.span_end - self.span_start


def plan(points: Points, traffic: Traffic, objective: Objective) -> list[PlanRow]:
    """One plan row per engine/model/target measured in ``points`` (sorted by engine, model, target)."""
    by_key: dict[RowKey, list[tuple[float, Row]]] = {}
    for at, rows in points:
        for row in rows:
            by_key.setdefault((str(row["engine"]), str(row["model"]), str(row["target"])), []).append((at, row))
    return [_plan_one(key, samples, traffic, objective) for key, samples in sorted(by_key.items())]


def _plan_one(key: RowKey, samples: list[tuple[float, Row]], traffic: Traffic, objective: Objective) -> PlanRow:
    def number(row: Row, column: str) -> float | None:
        value = row.get(column)
        return None if value is None or not math.isfinite(float(value)) else float(value)

    served = [(at, row) for at, row in samples if number(row, "output_tokens_per_second") is not None]
    met = [number(row, "output_tokens_per_second") for _, row in served if objective.met(row)]
    best = max(met, default=None)  # type: ignore[type-var]
    highest = max((number(row, "output_tokens_per_second") for _, row in served), default=None)  # type: ignore[type-var]
    hourly = next((number(row, "hourly_cost_dollars") for _, row in reversed(samples)
                   if number(row, "hourly_cost_dollars") is not None), None)
    times = [at for at, _ in samples]
    out = PlanRow(*key, goodput_tokens_per_second=best, goodput_requests_per_second=None,
                  max_measured_requests_per_second=None if highest is None else highest / traffic.output_tokens,
                  replicas=None, hourly_cost_dollars=hourly, monthly_cost_dollars=None,
                  cost_per_million_output_tokens_dollars=None, headroom=None,
                  span_start=min(times, default=None), span_end=max(times, default=None), instants=len(samples),
                  instants_met=len(met))
    if not best:
        out.warnings.append("no measured instant met the SLO: no plan")
        return out
    rps = best / traffic.output_tokens
    out.goodput_requests_per_second = rps
    out.replicas = max(1, math.ceil(traffic.requests_per_second / rps - 1e-9))
    out.headroom = out.replicas * rps / traffic.requests_per_second - 1
    if hourly is not None:
        out.monthly_cost_dollars = out.replicas * hourly * HOURS_PER_MONTH
        out.cost_per_million_output_tokens_dollars = (out.replicas * hourly / (
            traffic.requests_per_second * traffic.output_tokens * 3600) * 1e6)
    else:
        out.warnings.append("the exporter reports no hourly cost: no $ figures")
    if out.max_measured_requests_per_second is not None and traffic.requests_per_second > \
            out.max_measured_requests_per_second:
        out.warnings.append(f"the asked {traffic.requests_per_second:g} req/s is above the highest load measured on "
                            f"one replica ({out.max_measured_requests_per_second:.3g} req/s): the plan assumes "
                            "replicas add capacity linearly")
    measured = _mix(served)
    asked = traffic.prompt_tokens / traffic.output_tokens
    if measured is not None and asked > 0 and max(asked / measured, measured / asked) > MIX_TOLERANCE:
        out.warnings.append(f"the asked prompt:output mix ({asked:.2g}) is far from the measured one ({measured:.2g}):"
                            " the goodput was measured on other requests")
    return out


def _mix(served: Sequence[tuple[float, Row]]) -> float | None:
    """Measured prompt tokens per output token over the history (None without prompt figures)."""
    prompt = sum(float(r["input_tokens_per_second"] or 0) for _, r in served if r.get("input_tokens_per_second"))
    output = sum(float(r["output_tokens_per_second"] or 0) for _, r in served if r.get("input_tokens_per_second"))
    return prompt / output if prompt > 0 and output > 0 else None


# --- the histories a plan reads ---------------------------------------------------------------------------

def embedded_points(snapshots: Sequence[Snapshot], window_seconds: float, step_seconds: float,
                    rows: Callable[[Sequence[Snapshot]], list[Row]] = embedded_rows) -> list[tuple[float, list[Row]]]:
    """Comparison rows at every ``step_seconds`` of a scrape history, each over the
    ``window_seconds`` before it (``rows``: the UI passes a cached ``embedded_rows``)."""
    points: list[tuple[float, list[Row]]] = []
    next_at = -math.inf
    start = 0
    for i, snapshot in enumerate(snapshots):
        if snapshot.time < next_at:
            continue
        while snapshots[start].time < snapshot.time - window_seconds:
            start += 1
        found = rows(snapshots[start:i + 1])
        if found:  # the step counts from the first point: a window of one scrape has none
            points.append((snapshot.time, found))
            next_at = snapshot.time + step_seconds
    return points


def prometheus_points(reader: Reader, url: str, window: str, start: float, end: float, step_seconds: float,
                      columns: Sequence[str], timeout: float) -> list[tuple[float, list[Row]]]:
    """The same columns from Prometheus range queries (``infersight.compare.column_queries``), all
    within one deadline. Raises ``infersight.promapi.APIError``."""
    queries = column_queries(window)
    answers = reader.query_range(url, {c: queries[c] for c in columns}, start=start, end=end, step=step_seconds,
                                 timeout=timeout)
    by_time: dict[float, dict[tuple[str, ...], Row]] = {}
    # Target columns last: they go on the rows the model columns made.
    for column in sorted(columns, key=lambda c: c in TARGET_COLUMNS):
        for series in answers[column]:
            labels = dict(series.labels)
            if labels.get(CLUSTER):  # a store fed by several clusters: same-named targets kept apart
                labels["target"] = f'{labels[CLUSTER]}/{labels.get("target", "")}'
            for at, value in series.points:
                keys = [(labels.get("engine", ""), labels.get("model", ""), labels.get("target", ""))]
                if column in TARGET_COLUMNS:
                    keys = [k for k in by_time.get(at, {}) if k[0] == labels.get("engine")
                            and k[2] == labels.get("target")]
                for key in keys:
                    row = by_time.setdefault(at, {}).setdefault(
                        key, {"engine": key[0], "model": key[1], "target": key[2]})
                    row[column] = None if math.isnan(value) or math.isinf(value) else value
    return [(at, list(rows.values())) for at, rows in sorted(by_time.items())]


# --- output -----------------------------------------------------------------------------------------------

def span_text(seconds: float) -> str:
    """A data span as read: seconds under a minute, minutes under an hour, then hours."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def to_json(rows: Sequence[PlanRow], traffic: Traffic, objective: Objective) -> str:
    return json.dumps({"traffic": asdict(traffic), "slo": asdict(objective),
                       "plans": [asdict(r) for r in rows]}, indent=2) + "\n"


def _f(value: float | None, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def to_table(rows: Sequence[PlanRow], traffic: Traffic, objective: Objective) -> str:
    head = (f"Traffic {traffic.requests_per_second:g} req/s, {traffic.prompt_tokens} prompt + "
            f"{traffic.output_tokens} output tokens; SLO TTFT {objective.quantile} <= {objective.ttft_seconds:g} s, "
            f"ITL {objective.quantile} <= {objective.itl_seconds:g} s\n")
    titles = ("engine", "model", "target", "goodput req/s", "replicas", "$/h", "$/month", "$/1M output", "headroom",
              "data span", "instants met")
    cells = [titles] + [(r.engine, r.model, r.target, _f(r.goodput_requests_per_second, "{:.3g}"),
                         _f(r.replicas, "{:d}"), _f(r.hourly_cost_dollars, "${:.2f}"),
                         _f(r.monthly_cost_dollars, "${:,.0f}"),
                         _f(r.cost_per_million_output_tokens_dollars, "${:.2f}"), _f(r.headroom, "{:.0%}"),
                         span_text(r.span_seconds), f"{r.instants_met}/{r.instants}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    notes = [f"{r.engine}/{r.model}/{r.target}: {w}" for r in rows for w in r.warnings]
    return head + "\n".join(lines) + "\n" + "".join(f"warning: {n}\n" for n in notes)


def default_objective(thresholds: Mapping[str, float]) -> Objective:
    """The SLO spec's TTFT and ITL thresholds (``thresholds``: histogram name -> seconds)."""
    from infersight.exporter.schema import M

    return Objective(thresholds.get(M.TIME_TO_FIRST_TOKEN.name, 1.0), thresholds.get(M.INTER_TOKEN_LATENCY.name, 0.1))
