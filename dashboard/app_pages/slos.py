"""SLOs: attainment, burn rate and error budget per SLO and engine; alerts firing now."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import connection, settings, show_error
from infersight.dashboard.transforms import SLO_FORMATS, display
from infersight.alerts.slo_spec import load_spec
from infersight.promapi import APIError

SLO_WINDOW = 30 * 86400


def span_text(seconds: float | None) -> str:
    """How much data a figure rests on, in the unit that reads best; the 30-d window when covered."""
    if seconds is None:
        return "n/a"
    if seconds >= SLO_WINDOW:
        return "30 d"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}" if unit == "min" else f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


s = settings()
st.title("SLOs")
spec = load_spec(s.slo_spec)
figures: list[data.SloFigure] = []
if s.prometheus_url:
    try:
        figures = data.slo_figures_prometheus(s.prometheus_url, spec, connection=connection(s))
        st.caption("From the recording rules (alerts/generated/slo-rules.yml): attainment and error budget over "
                   "the 30-d SLO window, or over the data Prometheus holds when that is shorter (\"over\"); burn "
                   "rate over 1 h.")
        short = [f.span_seconds for f in figures if f.span_seconds is not None and f.span_seconds < SLO_WINDOW]
        if short:
            st.warning(f"Prometheus holds {span_text(min(short))} of the 30-day SLO window: attainment and budget "
                       "are over that span, not 30 days.")
    except APIError as e:
        show_error(str(e))
elif s.exporters:
    history = data.get_history(tuple(s.exporters))
    errors = data.refresh(history, s.refresh_seconds)
    for url, why in errors.items():
        show_error(f"{url} unreachable ({why})")
    snapshots = list(history.snapshots)
    figures = data.slo_figures_embedded(snapshots, spec)
    span = snapshots[-1].time - snapshots[0].time if len(snapshots) > 1 else 0.0
    st.caption(f"From the exporters' scrape history ({span:.0f} s): attainment and burn rate over that span; "
               "the 30-day error budget needs Prometheus.")
else:
    show_error("No data source: set INFERSIGHT_UI_PROMETHEUS_URL or INFERSIGHT_UI_EXPORTERS.")

table = pd.DataFrame([{"SLO": f.slo, "cluster": f.cluster, "namespace": f.namespace, "engine": f.engine,
                       "model": f.model, "objective": f.objective, "attainment": f.attainment,
                       "over": span_text(f.span_seconds), "burn rate": f.burn_rate,
                       "budget remaining": f.budget_remaining}
                      for f in figures], columns=["SLO", "cluster", "namespace", "engine", "model", "objective",
                                                  "attainment", "over", "burn rate", "budget remaining"])
# Outside Kubernetes the rules carry no cluster or namespace: no empty columns then.
table = table.drop(columns=[c for c in ("cluster", "namespace") if not table[c].astype(bool).any()])
for column in ("objective", "attainment", "burn rate", "budget remaining"):
    table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
st.dataframe(display(table, SLO_FORMATS), hide_index=True, width="stretch")

st.subheader("Alerts firing")
alerts = data.firing_alerts(s.alertmanager_url, connection(s))
if alerts.error:
    show_error(alerts.error)
elif alerts.value is None:
    st.caption("Alertmanager not configured (INFERSIGHT_UI_ALERTMANAGER_URL).")
elif not alerts.value:
    st.success("No alerts firing.")
else:
    st.dataframe(pd.DataFrame([{"alert": a["labels"].get("alertname"), "severity": a["labels"].get("severity"),
                                "slo": a["labels"].get("slo"), "engine": a["labels"].get("engine"),
                                "since": a.get("startsAt"), "summary": a.get("annotations", {}).get("summary")}
                               for a in alerts.value]), hide_index=True, width="stretch")
