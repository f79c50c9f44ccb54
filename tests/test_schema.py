"""The schema's naming rules, the adapter tables' shape, and where names may be spelled."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from infersight.exporter.adapters import ADAPTERS, DCGM
from infersight.exporter.schema import CATALOGUE, ENGINE_SIGNALS, Combine, Kind, Label, UnifiedMetric, check_catalogue, schema_table
from tests.conftest import GOLDEN, REPO
from tests.processes import require_binary

ADAPTER_FILES = sorted((REPO / "exporter" / "adapters").glob("*.py"))


def test_the_catalogue_follows_the_naming_rules() -> None:
    assert check_catalogue() == []


@pytest.mark.parametrize(("metric", "problem"), [
    (UnifiedMetric("vllm:kv", Kind.GAUGE, "", ()), "vllm:kv: must be llm_ + lower snake_case, no colons"),
    (UnifiedMetric("llm_tokens", Kind.COUNTER, "", ()), "llm_tokens: counters, and only counters, end in _total"),
    (UnifiedMetric("llm_x_total", Kind.GAUGE, "", ()), "llm_x_total: counters, and only counters, end in _total"),
    (UnifiedMetric("llm_kv_perc", Kind.GAUGE, "", ()), "llm_kv_perc: use base units and _ratio"),
    (UnifiedMetric("llm_ttft_ms", Kind.HISTOGRAM, "", ()), "llm_ttft_ms: histograms here measure time and end in _seconds"),
    (UnifiedMetric("llm_power_watts", Kind.GAUGE, "", (), Combine.MEAN), "llm_power_watts: only ratios are averaged"),
])
def test_naming_violations_are_caught(metric: UnifiedMetric, problem: str) -> None:
    assert problem in check_catalogue((metric,))


def test_every_row_feeds_a_catalogued_engine_signal() -> None:
    for adapter in [*ADAPTERS.values(), DCGM]:
        for row in adapter.rows:
            assert row.metric in ENGINE_SIGNALS, row


def test_averaged_metrics_have_a_single_part() -> None:
    # Parts add up; adding averages would be wrong.
    for adapter in [*ADAPTERS.values(), DCGM]:
        for row in adapter.rows:
            if row.metric.combine is Combine.MEAN:
                assert row.part == "", row


def test_outcome_metrics_say_how_to_get_an_outcome() -> None:
    for adapter in ADAPTERS.values():
        for row in adapter.rows:
            assert (Label.OUTCOME in row.metric.labels) == (row.outcome is not None or row.outcomes is not None), row


def _rows_with_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line, metric attribute, part) of every Row(...) literal in an adapter file."""
    rows = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Row":
            metric = ast.unparse(node.args[0])
            part = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "part"), "")
            rows.append((node.lineno, metric, part))
    return rows


@pytest.mark.parametrize("path", ADAPTER_FILES, ids=lambda p: p.name)
def test_every_alias_row_says_which_versions_need_it(path: Path) -> None:
    lines = path.read_text().splitlines()
    seen: set[tuple[str, str]] = set()
    for lineno, metric, part in _rows_with_lines(path):
        if (metric, part) in seen:  # a second row for the same metric and part: an alias
            own, above = lines[lineno - 1], lines[lineno - 2].strip()
            assert "#" in own or above.startswith("#"), f"{path.name}:{lineno}: alias row without a comment"
        seen.add((metric, part))


def test_unified_names_are_spelled_only_in_the_schema() -> None:
    spelled = re.compile(r"""["']llm_[a-z0-9_]+""")
    offenders = []
    for package in ("exporter", "dashboard", "simulator", "alerts", "grafana", "infersight"):
        for path in (REPO / package).rglob("*.py"):
            if path.name != "schema.py" and spelled.search(path.read_text()):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_readme_schema_table_is_the_catalogue() -> None:
    # Regenerate with: python -m infersight.exporter.schema
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- schema-table:start -->\n", 1)[1].split("<!-- schema-table:end -->", 1)[0]
    assert table.strip() == schema_table()
    assert len(schema_table().splitlines()) == len(CATALOGUE) + 2


def test_golden_outputs_pass_promtool_lint() -> None:
    promtool = require_binary("promtool")
    for path in sorted(GOLDEN.rglob("*.prom")):
        result = subprocess.run([promtool, "check", "metrics"], input=path.read_bytes(), capture_output=True,
                                timeout=60)
        assert (result.returncode, result.stdout + result.stderr) == (0, b""), path.name
