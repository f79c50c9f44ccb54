"""What every page shares: the settings, the engine/model/target selectors, cached data calls, errors."""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st

from infersight.dashboard import data
from infersight.dashboard.settings import SettingsError, UISettings, load_ui_settings
from infersight.dashboard.transforms import select
from infersight.compare import Row

# The characters that would turn a message into links, images, code, maths or colour directives
# (Streamlit renders st.error as Markdown; HTML it escapes itself): error messages quote servers'
# answers, which must show as text. Emphasis is left alone: at worst a word is in italics.
_MARKDOWN = re.compile(r"([\\`\[\]$])")


def plain(text: str) -> str:
    """``text`` escaped so that ``st.error`` and friends show it as written."""
    return _MARKDOWN.sub(r"\\\1", text)


def show_error(message: str) -> None:
    st.error(plain(message))


def settings() -> UISettings:
    if "settings" not in st.session_state:
        try:
            st.session_state["settings"] = load_ui_settings()
        except SettingsError as e:
            show_error(str(e))
            st.stop()
    return st.session_state["settings"]


def connection(s: UISettings) -> data.Connection:
    return data.Connection.of(s)


def comparison(s: UISettings) -> data.Result:
    # Cached for one refresh interval: every page and rerun inside it shows the same figures.
    return _cached_comparison(s.prometheus_url, tuple(s.exporters), s.window, s.refresh_seconds, connection(s))


@st.cache_data(ttl=5, show_spinner=False)
def _cached_comparison(prometheus_url: str | None, exporters: tuple[str, ...], window: str,
                       refresh_seconds: float, connection: data.Connection) -> data.Result:
    return data.comparison(prometheus_url, exporters, window, refresh_seconds, connection)


def selectors(rows: Sequence[Row]) -> list[Row]:
    """Sidebar multiselects for engine, model and target (empty = all)."""
    engines = st.sidebar.multiselect("Engine", sorted({str(r["engine"]) for r in rows}), key="engines")
    models = st.sidebar.multiselect("Model", sorted({str(r["model"]) for r in rows}), key="models")
    targets = st.sidebar.multiselect("Target", sorted({str(r["target"]) for r in rows}), key="targets")
    return select(rows, engines, models, targets)
