"""Replicas in a real cluster, simulated: a real Prometheus scrapes two replicas of one vLLM
workload in each of two namespaces (a sidecar exporter per pod, its target named after the pod),
plus a replica still loading its model, with the `namespace` and `pod` target labels a
ServiceMonitor adds. The generated SLO rules and the cause alerts run in it (windows and `for`
divided by 60) and alert a real Alertmanager with the committed routing and inhibitions.

GPUs come both ways the chart supports: team-a's from dcgm-exporter's own series joined on pod,
team-b's from each exporter reading its node's dcgm-exporter with a device filter.

Proven here: per-pod and per-namespace series stay apart; every dashboard query runs, and
filtered to one namespace or one replica returns only that one; a model still loading pages
nobody; one replica down inhibits only its own alerts and its own workload's latency burns."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import yaml
from prometheus_client import Histogram

from infersight.alerts.slo_rules import generate
from infersight.alerts.slo_spec import duration_seconds, load_spec
from infersight.exporter.adapters.vllm import ITL_BUCKETS
from infersight.grafana.generate import DASHBOARDS, render
from tests.conftest import OWN_FIXTURES, REPO
from tests.engine_server import EngineServer
from tests.live_engine import MODEL, LiveEngine
from tests.processes import free_port, infersight_command, require_binary, running
from tests.test_e2e_alerting import Webhook, alertmanager_config

pytestmark = pytest.mark.e2e

TIME_SCALE = 60
MIN_FOR_SECONDS = 5  # five 1-s scrapes
START_GRACE_SECONDS = 300  # scaled rules: longer than this module runs, so the loading replica stays loading
PODS = (("team-a", "vllm-a-0"), ("team-a", "vllm-a-1"), ("team-b", "vllm-b-0"), ("team-b", "vllm-b-1"))
LOADING = ("team-a", "vllm-a-2")
# team-b's exporters read node 2's dcgm-exporter (the shared fixture's two GPUs), one GPU each.
TEAM_B_GPUS = {"vllm-b-0": "GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b", "vllm-b-1": "GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c"}
# Node 1's dcgm-exporter in Kubernetes mode, scraped by Prometheus itself (honorLabels: false).
NODE1_DCGM = "".join(
    f'{name}{{gpu="{i}",UUID="{uuid}",Hostname="gpu-node-1",exported_namespace="{ns}",exported_pod="{pod}"}} {value}\n'
    for name, per_gpu in (("DCGM_FI_DEV_GPU_UTIL", (71, 64, 0)), ("DCGM_FI_DEV_FB_USED", (60000, 50000, 0)),
                          ("DCGM_FI_DEV_FB_FREE", (21920, 31920, 81920)), ("DCGM_FI_DEV_POWER_USAGE", (300, 280, 60)))
    for i, (uuid, ns, pod, value) in enumerate(zip(("GPU-a0", "GPU-a1", "GPU-x"), ("team-a", "team-a", "ml"),
                                                   ("vllm-a-0", "vllm-a-1", "trainer"), per_gpu)))


def scale_hand_written_rules(text: str) -> str:
    """alerts/rules/llm-alerts.yml with windows and `for` divided by TIME_SCALE (as `infersight
    rules --time-scale` does for the generated ones) and the start grace set for this test."""
    def scaled(match: re.Match) -> str:
        seconds = duration_seconds(match[2]) // TIME_SCALE
        return f"{match[1]}{seconds}s{match[3]}"

    groups = yaml.safe_load(text)["groups"]
    for group in groups:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"(\[)(\d+[smhdw])(\])", scaled, rule["expr"])
            if "for" in rule:
                # The scrape interval is not scaled: keep `for` at least MIN_FOR_SECONDS so that, as in
                # production (2m = 8 scrapes at 15 s), one slow scrape on a loaded machine pages nobody.
                seconds = max(duration_seconds(rule["for"]) // TIME_SCALE, MIN_FOR_SECONDS)
                rule["for"] = f"{seconds}s"
            if rule.get("alert") == "LLMEngineTargetDown":
                rule["expr"] = rule["expr"].replace("[30s]", f"[{START_GRACE_SECONDS}s]").replace(
                    "< 1800", f"< {START_GRACE_SECONDS}")
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1_000_000)


@dataclass
class Stack:
    prometheus: str
    alertmanager: str
    webhook: Webhook
    engines: dict[str, LiveEngine]

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        assert response.status_code == 200, f"{expr}: {response.text}"
        return response.json()["data"]["result"]

    def wait(self, expr: str, predicate, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr}: condition not met in {timeout} s; last {result}")
            time.sleep(0.3)

    def alertmanager_alerts(self) -> list[dict]:
        return httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5).json()


def _add_tpot(engine: LiveEngine, stop: threading.Event) -> None:
    """The per-request TPOT histogram vLLM 0.11+ serves (LiveEngine has none), moving."""
    tpot = Histogram("vllm:request_time_per_output_token_seconds", "TPOT", ["engine", "model_name"],
                     buckets=ITL_BUCKETS, registry=engine.registry).labels("0", MODEL)

    def observe() -> None:
        while not stop.wait(0.1):
            for _ in range(20):
                tpot.observe(0.03)
    threading.Thread(target=observe, daemon=True).start()


def set_kv_usage(engine: LiveEngine, value: float) -> None:
    # LiveEngine keeps no handle on its KV gauge: reach it through the registry.
    engine.registry._names_to_collectors["vllm:kv_cache_usage_perc"].labels("0", MODEL).set(value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin, alertmanager_bin = require_binary("prometheus"), require_binary("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("replicas")
    (tmp / "slo-rules.yml").write_text(generate(load_spec(REPO / "alerts" / "slos.yaml"), time_scale=TIME_SCALE,
                                                interval="1s"))
    (tmp / "llm-alerts.yml").write_text(scale_hand_written_rules((REPO / "alerts/rules/llm-alerts.yml").read_text()))
    engines = {pod: LiveEngine() for _, pod in PODS}
    stop = threading.Event()
    for engine in engines.values():
        _add_tpot(engine, stop)
    node1, node2 = EngineServer(), EngineServer()
    node1.serve("/metrics", NODE1_DCGM)
    node2.serve("/metrics", (OWN_FIXTURES / "dcgm-exporter-4.5.metrics.txt").read_text())
    webhook = Webhook()
    ports = {pod: free_port() for _, pod in (*PODS, LOADING)}
    prometheus_port, am_port = free_port(), free_port()
    (tmp / "alertmanager.yml").write_text(alertmanager_config(webhook.port))
    scrape = [{"targets": [f"127.0.0.1:{ports[pod]}"], "labels": {"namespace": ns, "pod": pod}}
              for ns, pod in (*PODS, LOADING)]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "slo-rules.yml"), str(tmp / "llm-alerts.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [
            # what a ServiceMonitor makes of the sidecars: one target per pod, namespace and pod labels
            {"job_name": "vllm", "static_configs": scrape},
            {"job_name": "dcgm-exporter", "static_configs": [{"targets": [f"127.0.0.1:{node1.port}"], "labels": {
                "namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-node1"}}]},
        ]}))
    loading_engine = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens: the model is loading
    try:
        with ExitStack() as processes:
            for ns, pod in (*PODS, LOADING):
                url = engines[pod].url if pod in engines else loading_engine
                cmd = [*infersight_command(), "exporter", "--engine", "vllm", "--listen", f"127.0.0.1:{ports[pod]}",
                       "--target", f"{pod}={url}", "--gpu-type", "A100-80GB", "--gpu-count", "1"]
                if pod in TEAM_B_GPUS:
                    cmd += ["--gpu-source", "dcgm", "--dcgm-url", node2.url("/metrics"), "--gpu-device", TEAM_B_GPUS[pod]]
                processes.enter_context(running(cmd, f"http://127.0.0.1:{ports[pod]}/-/ready", log=tmp / f"{pod}.log"))
            processes.enter_context(running(
                [alertmanager_bin, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
                 f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                f"http://127.0.0.1:{am_port}/-/ready", log=tmp / "am.log"))
            processes.enter_context(running(
                [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'prom'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                f"http://127.0.0.1:{prometheus_port}/-/ready", log=tmp / "prom.log"))
            yield Stack(f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{am_port}", webhook, engines)
    finally:
        stop.set()
        for engine in engines.values():
            engine.close()
        for server in (node1, node2):
            server.close()
        webhook.close()


def by(result: list[dict], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in result}


def test_per_pod_and_per_namespace_series_stay_apart(stack: Stack) -> None:
    running_now = stack.wait("llm_requests_running", lambda r: len(r) == 4)
    print(f"llm_requests_running per replica: {by(running_now, 'namespace', 'pod', 'target')}")
    assert by(running_now, "namespace", "pod", "target") == {
        (ns, pod, pod): 12.0 for ns, pod in PODS}  # each replica its own target, named after its pod
    # One SLO per workload: the two replicas of a namespace summed, the namespaces apart.
    requests = stack.wait('slo:sli_requests:rate5m{slo="ttft"}', lambda r: len(r) == 2)
    assert sorted((r["metric"]["namespace"], r["metric"]["engine"], r["metric"]["model"]) for r in requests) == [
        ("team-a", "vllm", MODEL), ("team-b", "vllm", MODEL)]
    per_pod = by(stack.query('sum by (namespace) (rate(llm_time_to_first_token_seconds_count[5s]))'), "namespace")
    assert set(per_pod) == {("team-a",), ("team-b",)}
    errors = stack.wait('slo:sli_error:ratio_rate5m{slo="ttft"}', lambda r: len(r) == 2)
    assert by(errors, "namespace") == {("team-a",): 0.0, ("team-b",): 0.0}
    # GPUs: each pod its own, from either path (joined on pod, or the exporter's filtered source).
    joined = stack.wait("pod:llm_gpu_utilization_ratio:dcgm", lambda r: len(r) == 2)
    assert by(joined, "namespace", "pod", "target", "gpu") == {
        ("team-a", "vllm-a-0", "vllm-a-0", "GPU-a0"): 0.71, ("team-a", "vllm-a-1", "vllm-a-1", "GPU-a1"): 0.64}
    filtered = stack.wait("llm_gpu_utilization_ratio", lambda r: len(r) == 2)
    print(f"TTFT SLI error ratio per namespace: {by(errors, 'namespace')}; GPU utilization joined on pod: "
          f"{by(joined, 'pod', 'gpu')}, from the filtered source: {by(filtered, 'target', 'gpu')}")
    assert by(filtered, "namespace", "target", "gpu") == {
        ("team-b", "vllm-b-0", TEAM_B_GPUS["vllm-b-0"]): 0.71, ("team-b", "vllm-b-1", TEAM_B_GPUS["vllm-b-1"]): 0.64}


def test_a_model_still_loading_pages_nobody(stack: Stack) -> None:
    # The loading replica has been down for 12 scrapes: over twice LLMEngineTargetDown's `for` (5 s).
    stack.wait('count_over_time(llm_exporter_target_up{target="vllm-a-2"}[1m]) >= 12', lambda r: len(r) == 1)
    loading = by(stack.query('llm_exporter_target_up{target="vllm-a-2"}'), "namespace", "pod")
    alerts = stack.query('ALERTS{alertname=~"LLMEngineTargetDown|LLMWorkloadReplicaDown"}')
    print(f"the loading replica's target_up: {loading}; its down alerts: {alerts}")
    assert loading == {("team-a", "vllm-a-2"): 0.0}
    assert alerts == []
    assert [a["labels"]["alertname"] for a in stack.alertmanager_alerts()
            if a["labels"].get("severity") == "page"] == []
    assert [(a["labels"]["alertname"], a["labels"].get("namespace"), a["status"])
            for path, body in stack.webhook.received if path == "/pager" for a in body["alerts"]] == []


VARIABLES = ("datasource", "cluster", "namespace", "engine", "model", "target", "slo")


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for name, build in DASHBOARDS.items():
        board = json.loads(render(build))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{name}: {panel['title']}", target["expr"]))
    return out


def concrete(expr: str, **chosen: str) -> str:
    for variable in VARIABLES:
        expr = re.sub(rf"\${variable}\b", chosen.get(variable, ".*"), expr)
    return expr.replace("$__rate_interval", "15s").replace("$__range", "5m").replace("$__interval", "5s")


def test_every_dashboard_query_runs_and_keeps_namespaces_and_replicas_apart(stack: Stack) -> None:
    queries = panel_queries()
    deadline = time.monotonic() + 40
    while True:
        empty = [where for where, expr in queries if not stack.query(concrete(expr))]  # errors fail in query()
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert empty == []
    print(f"{len(queries)} panel queries, each with data; checked for namespace team-b and replica vllm-b-1 alone")
    leaks = []
    for where, expr in queries:
        one_namespace = stack.query(concrete(expr, namespace="team-b"))
        leaks += [f"{where}: {r['metric']}" for r in one_namespace if r["metric"].get("namespace", "team-b") != "team-b"]
        one_replica = stack.query(concrete(expr, target="vllm-b-1"))
        leaks += [f"{where}: {r['metric']}" for r in one_replica if r["metric"].get("target", "vllm-b-1") != "vllm-b-1"]
        if not one_namespace:
            leaks.append(f"{where}: empty for namespace team-b")
    assert leaks == []


def test_one_replica_down_inhibits_only_its_own_alerts(stack: Stack) -> None:
    # Both workloads get slow (TTFT 2 s, the SLO is 0.5 s) and their KV caches fill.
    for engine in stack.engines.values():
        engine.slow_ttft_seconds = 2.0
        set_kv_usage(engine, 0.95)

    def active(alertname: str) -> dict[tuple[str, str], str]:
        return {(a["labels"].get("namespace", ""), a["labels"].get("target", "")): a["status"]["state"]
                for a in stack.alertmanager_alerts() if a["labels"]["alertname"] == alertname}

    def wait_until(predicate, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout} s: {stack.alertmanager_alerts()}")
            time.sleep(0.2)

    wait_until(lambda: len(active("LLMKVCacheSaturated")) == 4 and {
        ns for (ns, _), state in active("LLMErrorBudgetBurn").items()} == {"team-a", "team-b"})
    assert set(active("LLMKVCacheSaturated").values()) == {"active"}

    stack.engines["vllm-a-0"].close()  # one replica of team-a goes down
    wait_until(lambda: ("team-a", "vllm-a-0") in active("LLMEngineTargetDown")
               and ("team-a", "") in active("LLMWorkloadReplicaDown"), timeout=30)
    alerts = stack.alertmanager_alerts()
    state = {(a["labels"]["alertname"], a["labels"].get("namespace", ""), a["labels"].get("target", ""),
              a["labels"].get("severity", ""), a["labels"].get("long_window", "")): a["status"]["state"]
             for a in alerts if a["labels"].get("slo", "ttft") == "ttft"}
    kv = {key[1:3]: value for key, value in state.items() if key[0] == "LLMKVCacheSaturated"}
    print("alert states after vllm-a-0 went down:\n" + "\n".join(f"  {key}: {value}" for key, value in sorted(state.items())))
    # Its own saturation alert (its 10-minute window still holds its last samples) is muted; its
    # peer in the same namespace and the other namespace's replicas keep alerting.
    assert kv == {("team-a", "vllm-a-0"): "suppressed", ("team-a", "vllm-a-1"): "active",
                  ("team-b", "vllm-b-0"): "active", ("team-b", "vllm-b-1"): "active"}
    # Its workload's latency burns are muted; the other namespace's, on the same engine and model, page.
    burns = {key[1:]: value for key, value in state.items() if key[0] == "LLMErrorBudgetBurn"}
    pages = {(ns, window): value for (ns, _, severity, window), value in burns.items() if severity == "page"}
    assert {ns: value for (ns, _), value in pages.items()} == {"team-a": "suppressed", "team-b": "active"}
    # The down replica pages; the loading one still does not; nothing inhibits the inhibitor.
    down = {key[1:3]: value for key, value in state.items() if key[0] == "LLMEngineTargetDown"}
    assert down == {("team-a", "vllm-a-0"): "active"}
    replica_down = [a for a in alerts if a["labels"]["alertname"] == "LLMWorkloadReplicaDown"]
    assert [a["labels"] for a in replica_down] == [{"alertname": "LLMWorkloadReplicaDown", "severity": "none",
                                                    "namespace": "team-a", "engine": "vllm", "model": MODEL}]
    # Notifications: the target-down page reached the pager, the inhibitor nobody.
    stack.webhook.wait_for(lambda path, body: path == "/pager" and any(
        a["labels"]["alertname"] == "LLMEngineTargetDown" and a["labels"]["target"] == "vllm-a-0"
        for a in body["alerts"]), timeout=20)
    assert not any(a["labels"]["alertname"] == "LLMWorkloadReplicaDown"
                   for _, body in stack.webhook.received for a in body["alerts"])
