"""infersight's web UI: ``infersight ui`` (streamlit runs this file). Compare engines live, cost per token, SLOs,
and the plan (replicas and cost at a traffic and SLO).

Read-only by design: nothing on these pages changes anything outside the browser session.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from infersight.dashboard.app_pages.common import show_error
from infersight.dashboard.settings import SettingsError, load_ui_settings

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="infersight", layout="wide")
# The product's UI, not a developer's: no "Deploy" toolbar, under `streamlit run` too. The option
# reaches the browser with the next run's session message: hence one rerun when it was not set yet.
if st.get_option("client.toolbarMode") != "viewer":
    st.set_option("client.toolbarMode", "viewer")
    st.rerun()
try:
    settings = load_ui_settings()
except SettingsError as e:  # a page of its own: which setting and why, no traceback
    show_error(str(e))
    st.stop()
st.session_state["settings"] = settings
st.sidebar.caption(f"Source: {settings.source}")
# Every page at its own URL (/compare, /live, ...), so a link to one can be shared. Streamlit serves
# its default page at / only: the default is a hidden page that goes on to /compare.
compare = st.Page(PAGES / "compare.py", title="Compare", url_path="compare")


def _home() -> None:
    st.switch_page(compare)


navigation = st.navigation([
    st.Page(_home, title="infersight", url_path="home", default=True, visibility="hidden"),
    compare,
    st.Page(PAGES / "live.py", title="Live", url_path="live"),
    st.Page(PAGES / "cost.py", title="Cost", url_path="cost"),
    st.Page(PAGES / "slos.py", title="SLOs", url_path="slos"),
    st.Page(PAGES / "plan.py", title="Plan", url_path="plan"),
])
navigation.run()
