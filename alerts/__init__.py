"""SLOs and alerts: the spec (slos.yaml), its loader, the rule generator, and the files Prometheus
and Alertmanager load (generated/, rules/, alertmanager.yml). The files ship inside the package,
so an installed infersight finds them with importlib.resources, not through a checkout's paths.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

SPEC = "slos.yaml"
GENERATED_RULES = "generated/slo-rules.yml"
ALERT_RULES = "rules/llm-alerts.yml"
ALERTMANAGER_CONFIG = "alertmanager.yml"


def packaged(name: str) -> Traversable:
    """A file shipped with ``infersight.alerts`` (one of the names above)."""
    return resources.files(__name__).joinpath(name)
