"""SLOs: attainment, burn rate and error budget per SLO and engine; alerts firing now."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.app_pages.common import connection, settings, show_error
from infersight.dashboard.transforms import SLO_FORMATS, display
from infersight.alerts.slo_spec import load_spec
from infersight.promapi import APIError

s = settings()
st.title("SLOs")
spec = load_spec(s.slo_spec)
figures: list[data.SloFigure] = []
if s.prometheus_url:
    try:
        figures = data.slo_figures_prometheus(s.prometheus_url, spec, connection=connection(s))
        st.caption("From the recording rules (alerts/generated/slo-rules.yml): attainment over 30 d, burn rate "
                   "over 1 h, error budget remaining.")
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
                       "burn rate": f.burn_rate, "budget remaining": f.budget_remaining}
                      for f in figures], columns=["SLO", "cluster", "namespace", "engine", "model", "objective",
                                                  "attainment", "burn rate", "budget remaining"])
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
