"""Grafana dashboards as code: committed JSON is a fresh generation, every panel is complete and
follows the conventions of grafana/generate.py. Every panel's PromQL runs against a real
Prometheus scraping replicas in two namespaces in tests/test_replicas_e2e.py."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from infersight.exporter.schema import BY_NAME
from infersight.grafana.generate import DASHBOARDS, outline, render
from tests.conftest import REPO

BOARDS = REPO / "grafana" / "dashboards"
VARIABLES = ("datasource", "cluster", "namespace", "engine", "model", "target")


def boards() -> dict[str, dict]:
    return {name: json.loads((BOARDS / name).read_text()) for name in DASHBOARDS}


def panels() -> list[tuple[str, dict]]:
    return [(name, panel) for name, board in boards().items() for panel in board["panels"] if panel["type"] != "row"]


def queries() -> list[tuple[str, dict, str]]:
    return [(f"{name}: {panel['title']}", panel, target["expr"]) for name, panel in panels()
            for target in panel.get("targets", [])]


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_committed_dashboards_are_a_fresh_generation(name: str) -> None:
    # Regenerate with: infersight dashboards
    assert (BOARDS / name).read_text() == render(DASHBOARDS[name])
    assert sorted(p.name for p in BOARDS.glob("*.json")) == sorted(DASHBOARDS)


def test_every_panel_is_complete() -> None:
    for name, panel in panels():
        where = f"{name}: {panel['title']}"
        if panel["type"] == "text":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["unit"] and defaults["thresholds"]["steps"], where
        assert panel["targets"], where
        # the description names the metrics (or recording rules) the panel reads
        assert re.search(r"\bllm_[a-z_]+|slo:[a-z_:]+|ALERTS", panel["description"]), where


def test_every_query_filters_on_the_variables_and_keeps_the_workload() -> None:
    for where, panel, expr in queries():
        if expr == 'slo:objective:ratio{slo=~"$slo"}':  # a constant per SLO, no workload
            continue
        for variable in ("cluster", "namespace", "engine"):
            assert f'{variable}=~"${variable}"' in expr, where
        for group in re.findall(r"\b(?:sum|avg|max|min|count) by \(([^)]*)\)", expr):
            labels = [label.strip() for label in group.split(",")]
            assert labels[:2] in (["cluster", "namespace"], ["slo", "severity"]) or labels == ["le"], f"{where}: {group}"


def test_ratios_are_guarded_and_on_zero_to_one_axes() -> None:
    for where, panel, expr in queries():
        if re.search(r"\) / \(|\)\s*/\s*on \(", expr):
            assert "> 0)" in expr, where  # idle reads "No traffic", not NaN
    for name, panel in panels():
        defaults = panel["fieldConfig"]["defaults"] if panel["type"] == "timeseries" else {}
        if defaults.get("unit") == "percentunit" and "budget" not in panel["title"].lower():
            assert (defaults["min"], defaults["max"]) == (0, 1), f"{name}: {panel['title']}"


def test_latency_percentiles_come_with_their_mean() -> None:
    # Triton core's +Inf-only histograms give NaN quantiles; the mean from _sum/_count is real.
    for name, panel in panels():
        exprs = [t["expr"] for t in panel.get("targets", [])]
        quantiled = {m for e in exprs for m in re.findall(r"histogram_quantile\([^,]+, sum by \([^)]*\) \(rate\((\w+)_bucket", e)}
        if panel["type"] == "timeseries":
            assert quantiled <= {m for e in exprs for m in re.findall(r"rate\((\w+)_sum", e)}, f"{name}: {panel['title']}"


def test_heatmaps_are_per_engine_rates_shown_as_exported() -> None:
    heatmaps = [panel for _, panel in panels() if panel["type"] == "heatmap"]
    assert len(heatmaps) == 2
    for panel in heatmaps:
        assert (panel["repeat"], panel["options"]["calculate"], panel["targets"][0]["format"]) == (
            "engine", False, "heatmap")
        assert panel["targets"][0]["expr"].startswith("sum by (le) (rate(") and "increase(" not in panel["targets"][0]["expr"]


def test_saturation_takes_the_fullest_replica() -> None:
    kv = [expr for where, _, expr in queries() if "llm_kv_cache_usage_ratio" in expr and "min / mean / max" not in where]
    assert kv and all(expr.startswith("max") for expr in kv)


def test_cost_follows_the_model_filter() -> None:
    [cost] = [expr for where, _, expr in queries() if where.endswith("$ per 1M output tokens")]
    assert cost.count('model=~"$model"') == 2 and "llm_hourly_cost_dollars" in cost
    assert cost.count("and on (cluster, namespace, engine, target) group by") == 2


def test_burn_rate_panel_shows_every_window_and_the_alert_factors() -> None:
    [burn] = [panel for name, panel in panels() if panel["title"] == "Burn rate by window"]
    assert [t["legendFormat"].split()[0] for t in burn["targets"]] == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert [s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 1, 3, 6, 14.4]
    assert burn["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}
    [budget] = [panel for name, panel in panels() if panel["title"] == "Error budget remaining over time"]
    assert budget["fieldConfig"]["defaults"]["thresholds"]["steps"][:2] == [{"color": "red", "value": None},
                                                                             {"color": "orange", "value": 0}]


def test_stats_read_no_traffic_when_idle() -> None:
    for name, panel in panels():
        if panel["type"] == "stat":
            assert panel["fieldConfig"]["defaults"]["noValue"] == "No traffic", panel["title"]
            assert panel["fieldConfig"]["defaults"]["mappings"][0]["options"]["match"] == "null+nan", panel["title"]


def test_variables_chain_and_links() -> None:
    for name, board in boards().items():
        variables = board["templating"]["list"]
        assert [v["name"] for v in variables][:6] == list(VARIABLES), name
        for i, variable in enumerate(variables[1:6], start=1):
            assert (variable["includeAll"], variable["multi"], variable["allValue"]) == (True, True, ".*"), name
            for earlier in VARIABLES[1:i]:  # chained: each query filters on the variables before it
                if earlier != "model" or variable["name"] == "target":
                    assert f'{earlier}=~"${earlier}"' in variable["query"], (name, variable["name"])
        assert board["links"][0]["tags"] == ["infersight"] and board["tags"] == ["infersight"]
        assert board["graphTooltip"] == 1  # shared crosshair


def test_dashboards_read_only_schema_names_and_recording_rules_that_exist() -> None:
    rules = [r for path in ("alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml")
             for g in yaml.safe_load((REPO / path).read_text())["groups"] for r in g["rules"]]
    records = {r["record"] for r in rules if "record" in r}
    text = "".join((BOARDS / name).read_text() for name in DASHBOARDS)
    assert set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", text)) <= records
    names = {n for n in re.findall(r"(?<![:\w])llm_[a-z0-9_]+", text)}
    parts = {n for m in BY_NAME for n in (m, m + "_bucket", m + "_count", m + "_sum")}
    assert names <= parts, names - parts


def test_instances_board_links_each_replica_to_the_detail_board() -> None:
    [replicas] = [panel for name, panel in panels() if panel["title"] == "Replicas"]
    [link_override] = [o for o in replicas["fieldConfig"]["overrides"] if o["matcher"]["options"] == "target"]
    assert link_override["properties"][0]["value"][0]["url"] == (
        "/d/infersight-detail?var-namespace=${__data.fields.namespace}&var-target=${__data.fields.target}"
        "&${__url_time_range}")


def test_docs_list_every_boards_rows_and_panels() -> None:
    docs = (REPO / "README.md").read_text()
    assert outline() in docs, "README.md's Grafana section is stale: paste infersight.grafana.generate.outline()"
