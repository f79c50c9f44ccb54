"""Live: time series per engine, refreshed every interval."""

from __future__ import annotations

import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import comparison, connection, selectors, settings, show_error
from infersight.dashboard.charts import LIVE_PANELS, line
from infersight.dashboard.transforms import series_frame

RANGES = {"15 minutes": 900, "1 hour": 3600, "6 hours": 21600}

s = settings()
st.title("Live")
chosen = selectors(comparison(s).value or [])
keys = {(r["engine"], r["model"], r["target"]) for r in chosen}
span = st.selectbox("Range", list(RANGES), index=0)
step = RANGES[span] / 120  # at most 120 points per series


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
    columns = st.columns(2)
    for i, (column, title, unit) in enumerate(LIVE_PANELS):
        if frame[column].isna().all():
            columns[i % 2].markdown(f"**{title}**: n/a (no engine shown exports it)")
        else:
            columns[i % 2].plotly_chart(line(frame, column, title, unit), width="stretch")


panels()
