"""Grafana dashboards as code: committed JSON is a fresh generation, every panel is complete, and
every panel's PromQL returns data from a real Prometheus scraping the exporter."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from infersight.grafana.generate import DASHBOARDS, render
from infersight.alerts.slo_rules import generate
from infersight.alerts.slo_spec import load_spec
from tests.conftest import OWN_FIXTURES, REPO
from tests.engine_server import EngineServer
from tests.live_engine import LiveEngine
from tests.processes import free_port, infersight_command, require_binary, running

BOARDS = REPO / "grafana" / "dashboards"
VARIABLES = ("datasource", "namespace", "engine", "model", "target")


def panels() -> list[tuple[str, dict]]:
    return [(name, panel) for name in DASHBOARDS for panel in json.loads((BOARDS / name).read_text())["panels"]
            if panel["type"] != "row"]


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_committed_dashboards_are_a_fresh_generation(name: str) -> None:
    # Regenerate with: infersight dashboards
    assert (BOARDS / name).read_text() == render(DASHBOARDS[name])


def test_every_panel_is_complete() -> None:
    for name, panel in panels():
        where = f"{name}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        assert panel["targets"], where
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'engine=~"$engine"' in expr, where
            if " / " in expr and "/ 3600" not in expr.split(" / ")[0]:
                assert "> 0)" in expr or "/ 0.01" in expr or "slo:" in expr, where  # ratios guarded


def test_variables_and_links() -> None:
    for name in DASHBOARDS:
        board = json.loads((BOARDS / name).read_text())
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[:5] == list(VARIABLES), name
        for variable in board["templating"]["list"][1:]:
            assert (variable["includeAll"], variable["multi"], variable["allValue"]) == (True, True, ".*"), name
        assert board["links"][0]["tags"] == ["infersight"] and board["tags"] == ["infersight"]


def _query(prometheus: str, expr: str) -> list[dict]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert response.status_code == 200, f"{expr}: {response.text}"
    return response.json()["data"]["result"]


@pytest.mark.e2e
def test_every_panel_query_returns_data_from_a_real_prometheus(tmp_path: Path) -> None:
    prometheus_bin = require_binary("prometheus")
    engine, gpus = LiveEngine(), EngineServer()
    gpus.serve("/metrics", (OWN_FIXTURES / "dcgm-exporter-4.5.metrics.txt").read_text())
    rules = tmp_path / "slo-rules.yml"
    rules.write_text(generate(load_spec(REPO / "alerts" / "slos.yaml"), time_scale=60, interval="1s"))
    exporter_port, prometheus_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(f"""\
global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: [{rules}, {REPO / "alerts" / "rules" / "llm-alerts.yml"}]
scrape_configs:
  - job_name: infersight
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
""")
    exporter_cmd = [*infersight_command(), "exporter", "--engine", "vllm", "--listen", f"127.0.0.1:{exporter_port}",
                    "--target", f"vllm-a={engine.url}", "--gpu-source", "dcgm", "--dcgm-url", gpus.url("/metrics"),
                    "--gpu-type", "A100-80GB", "--gpu-count", "2"]
    prometheus_cmd = [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                      f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"]
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    queries = [(f"{name}: {panel['title']}", target["expr"]) for name, panel in panels() for target in panel["targets"]]
    empty: list[str] = []
    try:
        with running(exporter_cmd, f"http://127.0.0.1:{exporter_port}/-/ready", log=tmp_path / "exporter.log"), \
             running(prometheus_cmd, f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"):
            deadline = time.monotonic() + 40
            while True:
                time.sleep(2)
                empty = []
                for where, expr in queries:
                    concrete = re.sub(r"\$(datasource|namespace|engine|model|target|slo)\b", ".*", expr)
                    concrete = concrete.replace("$__rate_interval", "15s")
                    if not _query(prometheus, concrete):  # a query error fails inside _query
                        empty.append(where)
                if not empty or time.monotonic() > deadline:
                    break
    finally:
        engine.close()
        gpus.close()
    assert empty == []
