"""The Streamlit dashboard comparing engines live. Not built yet (see the open dashboard issue)."""
