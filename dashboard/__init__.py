"""The Streamlit web UI: Compare, Live, Cost, SLOs and Plan pages over Prometheus or the exporters."""
