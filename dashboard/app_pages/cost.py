"""Cost: $ per 1M tokens now and at the best throughput seen within the TTFT SLO; monthly, yearly.

$/h is what each target's exporter reports it costs, the figure Compare shows too. The dated GPU
price table is a what-if: it prices the engines only when the user turns it on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import comparison, connection, selectors, settings, show_error
from infersight.dashboard.charts import bar
from infersight.dashboard.transforms import COST_FORMATS, best_throughput_within_slo, cost_table, display, series_frame
from infersight.exporter.cost import GPU_PRICES, HOURS_PER_MONTH
from infersight.exporter.schema import M
from infersight.alerts.slo_spec import load_spec

s = settings()
st.title("Cost per token")
result = comparison(s)
if result.error:
    show_error(result.error)
rows = selectors(result.value or [])
engines = sorted({str(r["engine"]) for r in rows})

table_slot, chart_slot = st.container(), st.container()
with st.container(border=True):
    st.subheader("What-if pricing")
    st.caption("Not what the exporters report: dated public GPU list prices and licences you can edit "
               "(this session only), to see what the engines would cost at other prices.")
    what_if_on = st.toggle("Price the engines from this what-if instead of their exporters", value=False,
                           key="what-if")
    prices = pd.DataFrame([{"GPU": name, "$/GPU-hour": p.dollars_per_hour, "vendor": p.vendor, "as of": p.as_of}
                           for name, p in GPU_PRICES.items()])
    prices = st.data_editor(prices, hide_index=True, width="stretch", key="prices")
    left, middle, right = st.columns(3)
    gpu = left.selectbox("GPU type", list(prices["GPU"]), index=list(prices["GPU"]).index("A100-80GB"))
    listed = float(prices.loc[prices["GPU"] == gpu, "$/GPU-hour"].iloc[0])
    gpu_count = middle.number_input("GPUs per engine", min_value=1, value=2, step=1)
    gpu_hourly = right.number_input("$ per GPU-hour", min_value=0.0, value=listed, step=0.01, format="%.4f")
    what_if = {}
    for engine in engines:
        licence = st.number_input(f"{engine} licence, $ per month", min_value=0.0,
                                  value=4500.0 if engine == "nim" else 0.0, step=100.0, key=f"lic-{engine}")
        what_if[engine] = int(gpu_count) * float(gpu_hourly) + licence / HOURS_PER_MONTH

spec = load_spec(s.slo_spec)
ttft = next((slo.sli.latency.threshold_seconds for slo in spec.slos
             if slo.sli.latency and slo.sli.latency.histogram == M.TIME_TO_FIRST_TOKEN.name), None)
history = data.timeseries(s.prometheus_url, s.exporters, s.window, 6 * 3600, 180.0,
                          s.refresh_seconds, connection(s))
best = best_throughput_within_slo(series_frame(history.value or []), ttft) if ttft else {}
table = cost_table(rows, best, what_if if what_if_on else None)
with table_slot:
    if what_if_on:
        st.warning("What-if: $/h below comes from the what-if pricing, not from the exporters.")
    else:
        st.caption(f"$/h: what each target's exporter reports it costs ({M.HOURLY_COST_DOLLARS.name}), as on "
                   f"Compare; n/a where an exporter has no cost configured. A month is {HOURS_PER_MONTH} hours.")
    st.dataframe(display(table, COST_FORMATS), hide_index=True, width="stretch")
    if ttft:
        st.caption(f"Best throughput: the highest output tokens/s over the last 6 h at instants whose TTFT p99 "
                   f"was within the SLO's {ttft:g} s.")
with chart_slot:
    if rows:
        left, right = st.columns(2)
        left.plotly_chart(bar(table, "$/1M output now", "$ per 1M output tokens now"), width="stretch")
        right.plotly_chart(bar(table, "$/month", "$ per month"), width="stretch")
