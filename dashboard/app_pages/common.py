"""What every page shares: the settings, the engine/model/target selectors, cached data calls."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.settings import UISettings, load_ui_settings
from infersight.dashboard.transforms import select
from infersight.compare import Row


def settings() -> UISettings:
    if "settings" not in st.session_state:
        st.session_state["settings"] = load_ui_settings()
    return st.session_state["settings"]


def comparison(s: UISettings) -> data.Result:
    # Cached for one refresh interval: every page and rerun inside it shows the same figures.
    return _cached_comparison(s.prometheus_url, tuple(s.exporters), s.window, s.refresh_seconds)


@st.cache_data(ttl=5, show_spinner=False)
def _cached_comparison(prometheus_url: str | None, exporters: tuple[str, ...], window: str,
                       refresh_seconds: float) -> data.Result:
    return data.comparison(prometheus_url, exporters, window, refresh_seconds)


def selectors(rows: Sequence[Row]) -> list[Row]:
    """Sidebar multiselects for engine, model and target (empty = all)."""
    engines = st.sidebar.multiselect("Engine", sorted({str(r["engine"]) for r in rows}), key="engines")
    models = st.sidebar.multiselect("Model", sorted({str(r["model"]) for r in rows}), key="models")
    targets = st.sidebar.multiselect("Target", sorted({str(r["target"]) for r in rows}), key="targets")
    return select(rows, engines, models, targets)
