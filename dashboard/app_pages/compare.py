"""Compare: the `infersight compare` table, best values highlighted, bar charts, CSV."""

from __future__ import annotations

import streamlit as st

from infersight.dashboard.app_pages.common import comparison, selectors, settings, show_error
from infersight.dashboard.charts import bar
from infersight.dashboard.transforms import COMPARE_FORMATS, best_per_column, display, rows_frame
from infersight.compare import to_csv

s = settings()
st.title("Compare engines")
result = comparison(s)
if result.error:
    show_error(result.error)
rows = selectors(result.value or [])
frame = rows_frame(rows)
best = best_per_column(frame)
st.caption(f"Over the last {s.window} · rates per second · percentiles by histogram_quantile · "
           "best value per column in green · n/a: the engine exports no such signal")


def highlight(column):
    position = best.get(column.name)
    return ["background-color: #c6efce" if i == position else "" for i in range(len(column))]


st.dataframe(display(frame, COMPARE_FORMATS).style.apply(highlight), hide_index=True, width="stretch")
st.download_button("Download CSV", to_csv(rows), file_name="infersight-compare.csv", mime="text/csv")
if rows:
    throughput, latency, dollars, joules = st.columns(4)
    throughput.plotly_chart(bar(frame, "output tok/s", "Output tokens/s"), width="stretch")
    latency.plotly_chart(bar(frame, "TTFT p99 (s)", "TTFT p99 (s)"), width="stretch")
    dollars.plotly_chart(bar(frame, "$/1M output", "$ per 1M output tokens"), width="stretch")
    joules.plotly_chart(bar(frame, "J/1M output", "GPU joules per 1M output tokens"), width="stretch")
