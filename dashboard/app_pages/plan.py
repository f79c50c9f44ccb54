"""Plan: which engine to run and what it costs at the user's traffic and SLO, from the measured
history (``infersight.plan``, the functions ``infersight plan`` uses)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import infersight.plan as plan
from infersight.dashboard import data
from infersight.dashboard.app_pages.common import connection, settings, show_error
from infersight.dashboard.charts import bar
from infersight.dashboard.transforms import display
from infersight.exporter.cost import HOURS_PER_MONTH
from infersight.exporter.schema import M
from infersight.alerts.slo_spec import load_spec

RANGES = {"1 hour": 3600, "6 hours": 21600}
FORMATS = {"goodput tok/s": "{:.0f}", "goodput req/s": "{:.3g}", "replicas": "{:.0f}", "$/h": "${:.2f}",
           "$/month": "${:,.0f}", "$/1M output": "${:.2f}", "headroom": "{:.0%}"}

s = settings()
st.title("Plan")
st.caption("Which engine, how many replicas and what it costs at your traffic and SLO, from what was measured.")
spec = load_spec(s.slo_spec)
thresholds = {slo.sli.latency.histogram: slo.sli.latency.threshold_seconds for slo in spec.slos if slo.sli.latency}
default = plan.default_objective(thresholds)



def asked(name: str, fallback: float) -> float:
    """An input's starting value: the URL's (``/plan?rps=20&ttft=0.8``, so a plan can be shared) or
    ``fallback``."""
    try:
        return float(st.query_params[name])
    except (KeyError, ValueError):
        return fallback


traffic_box, slo_box = st.columns(2)
with traffic_box.container(border=True):
    st.markdown("**Traffic**")
    rps = st.number_input("Requests per second", min_value=0.001, value=asked("rps", 10.0), step=1.0, key="plan-rps")
    prompt_tokens = st.number_input("Prompt tokens per request", min_value=0, value=int(asked("prompt", 512)), step=64,
                                    key="plan-prompt")
    output_tokens = st.number_input("Output tokens per request", min_value=1, value=int(asked("output", 256)),
                                    step=32, key="plan-output")
with slo_box.container(border=True):
    st.markdown("**SLO**")
    quantile = st.selectbox("Quantile", plan.QUANTILES, key="plan-quantile",
                            index=plan.QUANTILES.index(st.query_params.get("quantile", "p99"))
                            if st.query_params.get("quantile") in plan.QUANTILES else 0)
    ttft = st.number_input("TTFT threshold, s", min_value=0.001, value=asked("ttft", default.ttft_seconds), step=0.05,
                           format="%.3f", key="plan-ttft")
    itl = st.number_input("ITL threshold, s", min_value=0.0001, value=asked("itl", default.itl_seconds), step=0.005,
                          format="%.4f", key="plan-itl")
span = st.selectbox("Measured history", list(RANGES), index=0, key="plan-range")

st.query_params.update({"rps": f"{rps:g}", "prompt": str(prompt_tokens), "output": str(output_tokens),
                        "ttft": f"{ttft:g}", "itl": f"{itl:g}", "quantile": quantile})  # the link to this plan
traffic = plan.Traffic(float(rps), int(prompt_tokens), int(output_tokens))
objective = plan.Objective(float(ttft), float(itl), quantile)
history = data.timeseries(s.prometheus_url, s.exporters, s.window, RANGES[span], RANGES[span] / 240,
                          s.refresh_seconds, connection(s), plan.PLAN_COLUMNS)
if history.error:
    show_error(history.error)
rows = plan.plan(history.value or [], traffic, objective)
if not rows:
    st.info("No measured history yet: the first point comes after two scrapes.")
    st.stop()

frame = pd.DataFrame([{
    "engine": r.engine, "model": r.model, "target": r.target, "goodput tok/s": r.goodput_tokens_per_second,
    "goodput req/s": r.goodput_requests_per_second, "replicas": r.replicas, "$/h": r.hourly_cost_dollars,
    "$/month": r.monthly_cost_dollars, "$/1M output": r.cost_per_million_output_tokens_dollars,
    "headroom": r.headroom,
    "data span": (f"{pd.Timestamp(r.span_start, unit='s', tz='UTC'):%H:%M}–"
                  f"{pd.Timestamp(r.span_end, unit='s', tz='UTC'):%H:%M} UTC ({plan.span_text(r.span_seconds)})"
                  if r.span_start is not None else "n/a"),
    "instants within SLO": f"{r.instants_met} of {r.instants}"} for r in rows])
for column in FORMATS:
    frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
st.dataframe(display(frame, FORMATS), hide_index=True, width="stretch")
for r in rows:
    for warning in r.warnings:
        st.warning(f"{r.engine} {r.model} {r.target}: {warning}")
st.caption(f"Goodput: the highest output tokens/s at an instant (each over the last {s.window}) whose TTFT and ITL "
           f"{quantile} were within the SLO, divided by the output tokens per request. Replicas = ceil(req/s ÷ "
           f"goodput req/s); $/h: what the target's exporter reports ({M.HOURLY_COST_DOLLARS.name}); $/month = "
           f"replicas × $/h × {HOURS_PER_MONTH}; headroom = replicas × goodput ÷ req/s − 1.")
if frame["$/month"].notna().any():
    left, right = st.columns(2)
    left.plotly_chart(bar(frame, "$/month", "$ per month at this traffic"), width="stretch")
    right.plotly_chart(bar(frame, "replicas", "Replicas needed"), width="stretch")
