"""Pure transforms from comparison rows and histories to the tables the pages show (pandas)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from infersight.compare import COLUMNS, Row
from infersight.exporter.cost import HOURS_PER_MONTH

# Displayed columns: (row key, title, better: "low" | "high" | None)
TABLE = (
    ("engine", "engine", None), ("model", "model", None), ("target", "target", None),
    ("output_tokens_per_second", "output tok/s", "high"), ("ttft_p50_seconds", "TTFT p50 (s)", "low"),
    ("ttft_p99_seconds", "TTFT p99 (s)", "low"), ("itl_p50_seconds", "ITL p50 (s)", "low"),
    ("e2e_p99_seconds", "e2e p99 (s)", "low"), ("kv_cache_usage_ratio", "KV cache", None),
    ("gpu_utilization_ratio", "GPU util", None), ("requests_waiting", "queue", "low"),
    ("error_ratio", "error ratio", "low"), ("hourly_cost_dollars", "$/h", "low"),
    ("cost_per_million_output_tokens_dollars", "$/1M output", "low"),
    ("energy_per_million_output_tokens_joules", "J/1M output", "low"),
    ("cost_per_million_tokens_dollars", "$/1M tokens", "low"),
)


def rows_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The comparison as a frame with display titles; a missing signal stays missing (NaN)."""
    frame = pd.DataFrame([{title: row.get(key) for key, title, _ in TABLE} for row in rows],
                         columns=[title for _, title, _ in TABLE])
    for _, title, better in TABLE[3:]:
        frame[title] = pd.to_numeric(frame[title], errors="coerce").astype("float64")
    return frame


def best_per_column(frame: pd.DataFrame) -> dict[str, int]:
    """Row position of the best value of each ranked column (ties: the first)."""
    best: dict[str, int] = {}
    for _, title, better in TABLE:
        if better is None or frame.empty or frame[title].isna().all():
            continue
        series = frame[title]
        best[title] = int(series.idxmin() if better == "low" else series.idxmax())
    return best


def select(rows: Sequence[Row], engines: Sequence[str], models: Sequence[str], targets: Sequence[str]) -> list[Row]:
    return [r for r in rows if (not engines or r["engine"] in engines) and (not models or r["model"] in models)
            and (not targets or r["target"] in targets)]


def cost_per_million(hourly: float | None, tokens_per_second: float | None) -> float | None:
    if not tokens_per_second or tokens_per_second <= 0 or hourly is None:
        return None
    return hourly / (tokens_per_second * 3600) * 1e6


def cost_table(rows: Sequence[Row], best_throughput: dict[str, float | None],
               what_if: dict[str, float] | None = None) -> pd.DataFrame:
    """Per engine row: $/h as the target's exporter reports it (``hourly_cost_dollars``), or, when
    ``what_if`` (engine -> $/h) is given, the user's what-if figure; $/1M output tokens now (and the
    GPUs' joules per 1M, measured) and at the best throughput seen while the TTFT SLO held, and the
    monthly and yearly cost (730 h a month)."""
    records = []
    for row in rows:
        if what_if is None:
            hourly, source = row.get("hourly_cost_dollars"), "exporter"
        else:
            hourly, source = what_if.get(str(row["engine"])), "what-if"
        output = row.get("output_tokens_per_second")
        best = best_throughput.get(f'{row["engine"]}/{row["model"]}/{row["target"]}')
        monthly = None if hourly is None else hourly * HOURS_PER_MONTH
        records.append({
            "engine": row["engine"], "model": row["model"], "target": row["target"], "priced by": source,
            "$/h": hourly, "output tok/s now": output,
            "$/1M output now": cost_per_million(hourly, output),  # type: ignore[arg-type]
            "J/1M output now": row.get("energy_per_million_output_tokens_joules"),  # the GPUs' measured energy
            "best tok/s within TTFT SLO": best, "$/1M output at best": cost_per_million(hourly, best),  # type: ignore[arg-type]
            "$/month": monthly, "$/year": None if monthly is None else monthly * 12,
        })
    frame = pd.DataFrame(records, columns=["engine", "model", "target", "priced by", "$/h", "output tok/s now",
                                           "$/1M output now", "J/1M output now", "best tok/s within TTFT SLO",
                                           "$/1M output at best", "$/month", "$/year"])
    for column in frame.columns[4:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def series_frame(points: Sequence[tuple[float, Sequence[Row]]]) -> pd.DataFrame:
    """Long frame (time, engine/model/target, every comparison column) from rows per instant."""
    records = []
    for at, rows in points:
        for row in rows:
            records.append({"time": pd.Timestamp(at, unit="s", tz="UTC"),
                            "series": f'{row["engine"]} {row["model"]} {row["target"]}',
                            **{c: row.get(c) for c in COLUMNS}})
    frame = pd.DataFrame(records, columns=["time", "series", *COLUMNS])
    for column in COLUMNS[3:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def best_throughput_within_slo(series: pd.DataFrame, ttft_threshold: float) -> dict[str, float | None]:
    """Highest output tokens/s per engine/model/target at instants whose TTFT p99 met the threshold."""
    out: dict[str, float | None] = {}
    if series.empty:
        return out
    for (engine, model, target), group in series.groupby(["engine", "model", "target"]):
        ok = group[group["ttft_p99_seconds"] <= ttft_threshold]["output_tokens_per_second"].dropna()
        out[f"{engine}/{model}/{target}"] = float(ok.max()) if not ok.empty else None
    return out


def fmt(value: float | None, spec: str = "{:.3g}") -> str:
    """A figure for display: "n/a" when the engine has no such signal, never a zero."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return spec.format(value)


COMPARE_FORMATS = {"output tok/s": "{:.0f}", "TTFT p50 (s)": "{:.3f}", "TTFT p99 (s)": "{:.3f}",
                   "ITL p50 (s)": "{:.4f}", "e2e p99 (s)": "{:.2f}", "KV cache": "{:.0%}", "GPU util": "{:.0%}",
                   "queue": "{:.1f}", "error ratio": "{:.2%}", "$/h": "${:.2f}", "$/1M output": "${:.2f}",
                   "J/1M output": "{:,.0f}", "$/1M tokens": "${:.2f}"}


def display(frame: pd.DataFrame, formats: dict[str, str]) -> pd.DataFrame:
    """Figures as the page shows them: formatted text, "n/a" for a missing signal (Streamlit's
    grid would print None)."""
    out = frame.copy()
    for column, spec in formats.items():
        out[column] = [fmt(v, spec) for v in frame[column]]
    return out
COST_FORMATS = {"$/h": "${:.2f}", "output tok/s now": "{:.0f}", "$/1M output now": "${:.2f}",
                "J/1M output now": "{:,.0f}",
                "best tok/s within TTFT SLO": "{:.0f}", "$/1M output at best": "${:.2f}", "$/month": "${:,.0f}",
                "$/year": "${:,.0f}"}
SLO_FORMATS = {"objective": "{:.2%}", "attainment": "{:.3%}", "burn rate": "{:.2f}x", "budget remaining": "{:.1%}"}


def headlines(rows: Sequence[Row], before: Sequence[Row]) -> list[dict[str, object]]:
    """Per engine/model/target: throughput and TTFT p99 now and their change since ``before`` (the
    rows at the window's start; None where there is no earlier figure). Named by engine, with the
    target where an engine has several."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["engine"])] = counts.get(str(row["engine"]), 0) + 1
    earlier = {(r["engine"], r["model"], r["target"]): r for r in before}
    out = []
    for row in rows:
        old = earlier.get((row["engine"], row["model"], row["target"]), {})

        def change(column: str) -> float | None:
            now, then = row.get(column), old.get(column)
            return None if now is None or then is None else float(now) - float(then)  # type: ignore[arg-type]

        name = str(row["engine"]) if counts[str(row["engine"])] == 1 else f'{row["engine"]} {row["target"]}'
        out.append({"name": name, "throughput": row.get("output_tokens_per_second"),
                    "throughput_change": change("output_tokens_per_second"), "ttft": row.get("ttft_p99_seconds"),
                    "ttft_change": change("ttft_p99_seconds")})
    return out
