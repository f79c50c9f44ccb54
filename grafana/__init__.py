"""Grafana dashboards generated as code (``generate``) from the schema and the SLO rule names; the
generated JSON ships in ``dashboards/``, read with importlib.resources."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def packaged_dashboards() -> Traversable:
    """The folder of generated dashboards shipped with the package."""
    return resources.files(__name__).joinpath("dashboards")
