"""The Helm chart, rendered by the real Helm (v4 Go SDK through helm-python-sdk): lint, every
example, the manifests against the Kubernetes schemas, and the rules and dashboards it ships
equal to the generated ones."""

from __future__ import annotations

import json
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from infersight.exporter.settings import load_settings
from tests.conftest import REPO

CHART = REPO / "helm" / "infersight"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
K8S_VERSION = "1.32.0"


def render(values: dict) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="demo", namespace="llm")
    return {Path(path).name: [d for d in yaml.safe_load_all(text) if d] for path, text in out.items()
            if path.endswith(".yaml")}


def example(name: str) -> dict:
    return yaml.safe_load((CHART / "examples" / f"{name}.yaml").read_text())


def test_lint_is_clean() -> None:
    assert helm.lint(str(CHART)) == {"total_charts_linted": 1, "messages": [], "errors": []}


@pytest.mark.parametrize("path", [None, *EXAMPLES], ids=["defaults", *[p.stem for p in EXAMPLES]])
def test_every_manifest_is_valid_kubernetes(path: Path | None) -> None:
    values = yaml.safe_load(path.read_text()) if path else {}
    documents = [d for docs in render(values).values() for d in docs]
    kinds = sorted(d["kind"] for d in documents)
    for document in documents:
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            # prometheus-operator CRDs are not in the Kubernetes schemas: check their shape.
            assert document["apiVersion"] == "monitoring.coreos.com/v1"
            assert document["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule")
            assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
            continue
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert "Deployment" in kinds and "Service" in kinds and "ConfigMap" in kinds


def test_vllm_example_runs_the_sidecar_beside_the_engine() -> None:
    [deployment] = render(example("vllm"))["deployment.yaml"]
    engine, exporter = deployment["spec"]["template"]["spec"]["containers"]
    assert engine["args"] == ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "2",
                              "--port", "8000"]
    assert engine["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert exporter["image"] == "ghcr.io/infersight/infersight:0.1.0"
    assert exporter["args"] == ["exporter", "--config", "/etc/infersight/exporter.yaml"]
    assert exporter["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                           "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 65532}
    assert exporter["readinessProbe"] == {"httpGet": {"path": "/-/ready", "port": "metrics"}, "periodSeconds": 10}
    assert exporter["livenessProbe"] == {"httpGet": {"path": "/-/healthy", "port": "metrics"}, "periodSeconds": 20}
    assert exporter["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                     "requests": {"cpu": "50m", "memory": "64Mi"}}


@pytest.mark.parametrize(("name", "targets"), [
    ("vllm", [("vllm", "http://127.0.0.1:8000/metrics", "vllm")]),
    ("triton", [("triton", "http://127.0.0.1:8002/metrics", "triton")]),
    ("nim", [("nim", "http://127.0.0.1:8000/v1/metrics", "nim")]),
    ("standalone", [("vllm-a", "http://vllm-a.llm.svc:8000/metrics", "vllm"),
                    ("triton-b", "http://triton-b.llm.svc:8002/metrics", "triton"),
                    ("nim-c", "http://nim-c.llm.svc:8000/v1/metrics", "nim")]),
])
def test_rendered_exporter_config_is_loaded_by_the_exporter(name: str, targets: list, tmp_path) -> None:
    [configmap] = render(example(name))["configmap.yaml"]
    config = yaml.safe_load(configmap["data"]["exporter.yaml"])
    settings = load_settings(config)
    resolved = [settings.resolved(t) for t in settings.targets]
    assert [(t.name, str(t.config.url), t.engine) for t in resolved] == targets
    assert settings.listen == "0.0.0.0:9400"


def test_nim_cost_includes_the_licence() -> None:
    [configmap] = render(example("nim"))["configmap.yaml"]
    assert yaml.safe_load(configmap["data"]["exporter.yaml"])["cost"] == {
        "gpu_count": 2, "gpu_type": "A100-80GB", "gpu_hourly_dollars": 3.25, "licence_monthly_dollars": 4500}


def test_prometheus_rule_holds_exactly_the_rules_in_alerts() -> None:
    [rule] = render({})["prometheusrule.yaml"]
    expected = []
    for path in ("alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml"):
        expected += yaml.safe_load((REPO / path).read_text())["groups"]
    assert rule["spec"]["groups"] == expected


def test_dashboard_configmaps_hold_exactly_the_generated_dashboards() -> None:
    maps = render({})["dashboards.yaml"]
    shipped = {name: json.loads(text) for m in maps for name, text in m["data"].items()}
    generated = {p.name: json.loads(p.read_text()) for p in (REPO / "grafana" / "dashboards").glob("*.json")}
    assert shipped == generated
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)


def test_monitors_carry_the_release_label_for_kube_prometheus_stack() -> None:
    [monitor] = render(example("vllm"))["servicemonitor.yaml"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                             "scrapeTimeout": "10s"}]
    [pod_monitor] = render({"podMonitor": {"enabled": True}})["podmonitor.yaml"]
    assert pod_monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]


def test_network_policy_limits_ingress_to_prometheus_and_egress_to_engines_and_dns() -> None:
    assert render({})["networkpolicy.yaml"] == []  # off by default
    [policy] = render(example("standalone"))["networkpolicy.yaml"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "prometheus"}}}], "ports": [{"port": 9400, "protocol": "TCP"}]}]
    assert spec["egress"] == [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llm"}}, "podSelector": {}}],
         "ports": [{"port": 8000, "protocol": "TCP"}, {"port": 8002, "protocol": "TCP"}]},
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]


def test_standalone_pod_is_hardened_and_mounts_the_token_from_a_secret() -> None:
    [deployment] = render(example("standalone"))["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"fsGroup": 65532, "runAsGroup": 65532, "runAsNonRoot": True,
                                      "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    assert [c["name"] for c in pod["containers"]] == ["infersight-exporter"]
    assert pod["volumes"][1] == {"name": "infersight-engine-token", "secret": {
        "secretName": "engine-token", "items": [{"key": "token", "path": "engine-token"}]}}


def test_alertmanager_secret_routes_pages_and_tickets_to_the_configured_receivers() -> None:
    [secret] = render(example("standalone"))["alertmanager-secret.yaml"]
    config = yaml.safe_load(secret["stringData"]["alertmanager.yaml"])
    urls = sorted(h["url"] for r in config["receivers"] for h in r.get("webhook_configs", []))
    assert urls == ["http://pager.example:9095/pager", "http://tickets.example:9095/ticket"]


def test_values_schema_rejects_a_string_port() -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as error:
        chart.render({"exporter": {"port": "ninety-four-hundred"}}, name="demo", namespace="llm")
    assert "at '/exporter/port': got string, want integer" in str(error.value)


@pytest.mark.parametrize("source", ["alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml",
                                    "alerts/alertmanager.yml", *[f"grafana/dashboards/{p.name}" for p in
                                                                 sorted((REPO / "grafana/dashboards").glob("*.json"))]])
def test_chart_copies_are_current(source: str) -> None:
    copy = CHART / "files" / (source.split("/")[-1] if not source.startswith("grafana") else
                              f"dashboards/{source.split('/')[-1]}")
    assert copy.read_bytes() == (REPO / source).read_bytes(), f"{copy} is stale: run helm/sync-files.sh"
