"""infersight's web UI: ``infersight ui`` (streamlit runs this file). Compare engines live, cost per token, SLOs.

Read-only by design: nothing on these pages changes anything outside the browser session.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from infersight.dashboard.app_pages.common import show_error
from infersight.dashboard.settings import SettingsError, load_ui_settings

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="infersight", layout="wide")
try:
    settings = load_ui_settings()
except SettingsError as e:  # a page of its own: which setting and why, no traceback
    show_error(str(e))
    st.stop()
st.session_state["settings"] = settings
st.sidebar.caption(f"Source: {settings.source}")
navigation = st.navigation([
    st.Page(PAGES / "compare.py", title="Compare", default=True),
    st.Page(PAGES / "live.py", title="Live"),
    st.Page(PAGES / "cost.py", title="Cost"),
    st.Page(PAGES / "slos.py", title="SLOs"),
])
navigation.run()
