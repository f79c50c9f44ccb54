"""Plotly figures for the pages (no data access, no Streamlit).

An engine has one colour on every chart of every page (``engine_colour``): a fixed palette for the
engines the exporter knows, a stable hash of the name for any other, never plotly's order of
appearance (which changes with the data shown)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go

from infersight.exporter.schema import Engine

LIVE_PANELS = (
    ("output_tokens_per_second", "Output tokens/s", ""),
    ("ttft_p50_seconds", "TTFT p50", "s"), ("ttft_p99_seconds", "TTFT p99", "s"),
    ("itl_p50_seconds", "ITL p50", "s"), ("kv_cache_usage_ratio", "KV-cache usage", "%"),
    ("requests_waiting", "Queue length", ""), ("gpu_utilization_ratio", "GPU utilization", "%"),
    ("prefill_p50_seconds", "Prefill time p50", "s"), ("decode_p50_seconds", "Decode time p50", "s"),
    ("spec_decode_acceptance_ratio", "Speculative decoding acceptance", "%"),
    ("prompt_tokens_cached_ratio", "Prompt tokens from cache", "%"),
    ("requests_waiting_deferred", "Requests waiting, deferred", ""),
    ("admission_rejections_per_second", "Admission rejections/s", ""),
    ("engine_awake_ratio", "Ranks awake", "%"),
)

# Distinct under the common colour-vision deficiencies (Okabe-Ito), one per known engine.
ENGINE_COLOURS = {
    Engine.VLLM.value: "#0072B2", Engine.TRITON.value: "#E69F00", Engine.NIM.value: "#009E73",
    Engine.SGLANG.value: "#CC79A7", Engine.TGI.value: "#D55E00", Engine.TRTLLM.value: "#56B4E9",
}
_OTHER_COLOURS = ("#7F7F7F", "#8C564B", "#BCBD22", "#17BECF", "#9467BD", "#F0E442")
# Series of one engine (several models or targets) share its colour and differ by dash.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
ALERT_FILL = "rgba(214, 39, 40, 0.12)"
_LAYOUT = {"height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def engine_colour(engine: str) -> str:
    """The engine's colour: the same for a name in every process and session."""
    if engine in ENGINE_COLOURS:
        return ENGINE_COLOURS[engine]
    digest = hashlib.sha256(engine.encode()).digest()
    return _OTHER_COLOURS[digest[0] % len(_OTHER_COLOURS)]


def colour_map(engines: Iterable[str]) -> dict[str, str]:
    return {str(e): engine_colour(str(e)) for e in engines}


def bar(frame: pd.DataFrame, column: str, title: str, label: str = "engine") -> go.Figure:
    """One bar per row, coloured by its engine (``label`` names the bar; several targets of an
    engine are several bars of its colour)."""
    data = frame.dropna(subset=[column])
    figure = go.Figure()
    for engine, group in data.groupby("engine", sort=True):
        figure.add_bar(x=list(group[label]), y=list(group[column]), name=str(engine),
                       marker_color=engine_colour(str(engine)),
                       customdata=list(zip(group["model"], group["target"], strict=True)),
                       hovertemplate="%{x}: %{y:.4g}<br>model %{customdata[0]}<br>target %{customdata[1]}"
                                     "<extra></extra>")
    figure.update_layout(title=title, showlegend=False, **_LAYOUT)
    return figure


def line(series: pd.DataFrame, column: str, title: str, unit: str,
         alerts: Sequence[tuple[pd.Timestamp, pd.Timestamp, str]] = ()) -> go.Figure:
    """One line per engine/model/target in its engine's colour; ``alerts`` (start, end, name) are
    shaded spans with the alert's name: the alerts that fired over the range."""
    data = series.dropna(subset=[column])
    figure = go.Figure()
    dash_of: dict[str, int] = {}
    for name, group in data.groupby("series", sort=True):
        engine = str(group["engine"].iloc[0])
        dash = DASHES[dash_of.setdefault(engine, 0) % len(DASHES)]
        dash_of[engine] += 1
        figure.add_scatter(x=list(group["time"]), y=list(group[column]), mode="lines", name=str(name),
                           line={"color": engine_colour(engine), "dash": dash})
    for start, end, alert in alerts:
        figure.add_vrect(x0=start, x1=end, fillcolor=ALERT_FILL, line_width=0, layer="below",
                         annotation_text=alert, annotation_position="top left",
                         annotation_font_size=10, annotation_font_color="#d62728")
    # The legend under the plot: long model names beside it would squeeze the plot to a sliver.
    figure.update_layout(title=title, legend={"title_text": "", "orientation": "h", "yanchor": "top", "y": -0.15,
                                              "xanchor": "left", "x": 0},
                         yaxis_title=unit or None, xaxis_title=None, **{**_LAYOUT, "height": 360})
    figure.update_xaxes(tickformat="%H:%M")  # no date line under the times: the legend sits there
    if unit == "%":
        figure.update_yaxes(tickformat=".0%", title=None)
    return figure
