"""The parts import one way (tools -> UI/compare -> exporter -> schema), and the sidecar starts
without the UI's or the simulator's libraries."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from infersight.tools import architecture
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_import_graph_is_one_way_and_the_committed_graph_is_fresh() -> None:
    found = architecture.edges(REPO)
    assert architecture.violations(found) == []
    # Regenerate with: python -m infersight.tools.architecture
    assert architecture.main(["--repo", str(REPO), "--check"]) == 0


def test_a_forbidden_arrow_is_reported() -> None:
    found = {("exporter", "ui"): ["infersight.exporter.x -> infersight.dashboard.y"],
             ("ui", "exporter"): ["infersight.dashboard.a -> infersight.exporter.b"]}
    assert architecture.violations(found) == ["infersight.exporter.x -> infersight.dashboard.y"]


def test_cli_imports_only_the_schema_at_module_level() -> None:
    tree = ast.parse((REPO / "infersight" / "cli.py").read_text())
    top = sorted({node.module for node in tree.body if isinstance(node, ast.ImportFrom)} |
                 {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names})
    assert top == ["__future__", "argparse", "infersight", "infersight.exporter.schema", "logging", "pathlib",
                   "signal", "sys", "typing"]


def test_the_exporter_loads_no_ui_or_simulator_library() -> None:
    # What `infersight exporter` imports before it serves: the CLI, settings, the server and scraper.
    probe = ("import sys, infersight.cli as c; c.main.__code__; "
             "import infersight.exporter.server, infersight.exporter.scraper, infersight.exporter.settings; "
             "heavy = ('pandas', 'plotly', 'streamlit', 'starlette', 'numpy', 'pyarrow', 'infersight.simulator', "
             "'infersight.dashboard', 'infersight.tools', 'infersight.compare', 'grafana_foundation_sdk', "
             "'opentelemetry', 'google.protobuf'); "
             "print(sorted(m for m in sys.modules if m.startswith(heavy)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
