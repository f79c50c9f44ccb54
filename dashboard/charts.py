"""Plotly figures for the pages (no data access, no Streamlit)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

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


def bar(frame: pd.DataFrame, column: str, title: str) -> go.Figure:
    data = frame.dropna(subset=[column])
    figure = px.bar(data, x="engine", y=column, color="engine", hover_data=["model", "target"], title=title)
    figure.update_layout(showlegend=False, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def line(series: pd.DataFrame, column: str, title: str, unit: str) -> go.Figure:
    data = series.dropna(subset=[column])
    figure = px.line(data, x="time", y=column, color="series", title=title)
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend_title_text="",
                         yaxis_title=unit or None, xaxis_title=None)
    if unit == "%":
        figure.update_yaxes(tickformat=".0%", title=None)
    return figure
