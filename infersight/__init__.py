"""infersight: observability and SLOs for LLM serving engines.

One import namespace over the repository's folders (see docs/architecture.md):
``infersight.exporter`` (exporter/, the sidecar), ``infersight.alerts`` (alerts/, SLO spec and rule
generator), ``infersight.grafana`` (grafana/, dashboards as code), ``infersight.dashboard``
(dashboard/, the web UI), ``infersight.simulator`` (simulator/), and here the CLI, the comparison
engine (``compare``, ``quantile``) and the tools (``tools``: demo, validate, bench, replay).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("infersight")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
