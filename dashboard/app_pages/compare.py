"""Compare: headline figures with their change over the window, the `infersight compare` table,
best values highlighted, bar charts in each engine's colour, CSV."""

from __future__ import annotations

import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import comparison, connection, selectors, settings, show_error
from infersight.dashboard.charts import bar
from infersight.dashboard.transforms import COMPARE_FORMATS, best_per_column, display, headlines, rows_frame, fmt
from infersight.compare import parse_duration, to_csv

HEADLINE_COLUMNS = ("output_tokens_per_second", "ttft_p99_seconds")

s = settings()
st.title("Compare engines")
result = comparison(s)
if result.error:
    show_error(result.error)
rows = selectors(result.value or [])
frame = rows_frame(rows)
best = best_per_column(frame)

if rows:
    # The change over the window: now against the comparison one window ago (or the oldest point kept).
    window = parse_duration(s.window)
    before = data.timeseries(s.prometheus_url, s.exporters, s.window, window, window / 10, s.refresh_seconds,
                             connection(s), HEADLINE_COLUMNS).value or []
    cards = headlines(rows, before[0][1] if len(before) >= 2 else [])  # one point: nothing earlier yet
    for column, card in zip(st.columns(len(cards)), cards, strict=True):
        column.metric(f'{card["name"]} output tok/s', fmt(card["throughput"], "{:.0f}"),
                      None if card["throughput_change"] is None else f'{card["throughput_change"]:+.0f}')
        column.metric(f'{card["name"]} TTFT p99', fmt(card["ttft"], "{:.3f} s"),
                      None if card["ttft_change"] is None else f'{card["ttft_change"]:+.3f} s', delta_color="inverse")
    st.caption(f"Change: now against the same figure {s.window} earlier (its oldest point when the history "
               "is shorter).")

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
