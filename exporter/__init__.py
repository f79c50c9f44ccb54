"""The sidecar exporter: scrape LLM engines, normalize their metrics into one schema, serve them.

Imports nothing from the UI, the simulator, the generators or the tools (a test holds it to that).
"""
