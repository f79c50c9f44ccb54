"""Live: time series per engine, refreshed every interval; alerts that fired over the range shaded."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import comparison, connection, selectors, settings, show_error
from infersight.dashboard.charts import LIVE_PANELS, line
from infersight.dashboard.transforms import series_frame
from infersight.promapi import APIError

RANGES = {"15 minutes": 900, "1 hour": 3600, "6 hours": 21600}

s = settings()
st.title("Live")
chosen = selectors(comparison(s).value or [])
keys = {(r["engine"], r["model"], r["target"]) for r in chosen}
span = st.selectbox("Range", list(RANGES), index=0)
step = RANGES[span] / 120  # at most 120 points per series


def firing(engines: set[str]) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """Alerts that fired over the range, for the engines shown (and those naming no engine): only
    Prometheus keeps them (its ALERTS series)."""
    if not s.prometheus_url:
        return []
    try:
        spans = data.alert_spans(s.prometheus_url, RANGES[span], step, connection(s))
    except APIError as e:
        show_error(str(e))
        return []
    shown = [a for a in spans if not a.engine or a.engine in engines]
    if shown:
        st.caption("Shaded: alerts firing (" + ", ".join(sorted({f"{a.name} {a.engine}".strip() for a in shown}))
                   + ").")
    return [(pd.Timestamp(a.start, unit="s", tz="UTC"), pd.Timestamp(a.end, unit="s", tz="UTC"),
             f"{a.name} {a.engine}".strip()) for a in shown]


@st.fragment(run_every=s.refresh_seconds)
def panels() -> None:
    result = data.timeseries(s.prometheus_url, s.exporters, s.window, RANGES[span], step, s.refresh_seconds,
                             connection(s))
    if result.error:
        show_error(result.error)
    frame = series_frame(result.value or [])
    frame = frame[[(e, m, t) in keys for e, m, t in zip(frame["engine"], frame["model"], frame["target"],
                                                           strict=True)]]
    if frame.empty:
        st.info("No points yet: the first comes after two scrapes.")
        return
    alerts = firing({str(e) for e in frame["engine"]})
    columns = st.columns(2)
    for i, (column, title, unit) in enumerate(LIVE_PANELS):
        if frame[column].isna().all():
            columns[i % 2].markdown(f"**{title}**: n/a (no engine shown exports it)")
        else:
            columns[i % 2].plotly_chart(line(frame, column, title, unit, alerts), width="stretch")


panels()
