"""The Helm chart, rendered by the real Helm (v4 Go SDK through helm-python-sdk): lint, every
example, the manifests against the Kubernetes schemas, and the rules and dashboards it ships
equal to the generated ones."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from tests.processes import infersight_command

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


KINDS = {
    "sidecar": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"],
    "standalone": ["AlertmanagerConfig", "ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service",
                   "ServiceAccount", "ServiceMonitor"],
    # one ConfigMap per dashboard
    "monitoring": ["ConfigMap"] * len(list((REPO / "grafana" / "dashboards").glob("*.json"))) + ["PrometheusRule"],
}
# What an example enables beyond its mode's defaults (tests/test_helm_autoscaling.py checks these).
EXAMPLE_KINDS = {"vllm": ["ScaledObject"], "nim": ["HorizontalPodAutoscaler"],
                 "monitoring": ["ConfigMap"]}  # prometheus-adapter's rules


@pytest.mark.parametrize("path", [None, *EXAMPLES], ids=["defaults", *[p.stem for p in EXAMPLES]])
def test_every_manifest_is_valid_kubernetes(path: Path | None) -> None:
    values = yaml.safe_load(path.read_text()) if path else {}
    documents = [d for docs in render(values).values() for d in docs]
    kinds = sorted(d["kind"] for d in documents)
    for document in documents:
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            # prometheus-operator CRDs are not in the Kubernetes schemas: check their shape.
            assert (document["apiVersion"], document["kind"]) in (
                ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor"),
                ("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"))
            assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
            continue
        if document["apiVersion"] == "keda.sh/v1alpha1":
            continue  # validated against KEDA's CRD in tests/test_helm_autoscaling.py
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert kinds == sorted(KINDS[values.get("mode", "sidecar")] + EXAMPLE_KINDS.get(path.stem if path else "", []))


def test_vllm_example_runs_the_sidecar_beside_the_engine() -> None:
    [deployment] = render(example("vllm"))["deployment.yaml"]
    engine, exporter = deployment["spec"]["template"]["spec"]["containers"]
    assert engine["args"] == ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "2",
                              "--port", "8000"]
    assert engine["resources"] == {"requests": {"cpu": "8", "memory": "64Gi"},
                                   "limits": {"nvidia.com/gpu": 2, "memory": "96Gi"}}
    assert exporter["image"] == "ghcr.io/infersight/infersight:0.1.0"
    assert exporter["args"] == ["exporter", "--config", "/etc/infersight/exporter.yaml",
                                "--target", "$(POD_NAME)=http://127.0.0.1:8000/metrics"]
    assert exporter["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                           "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 65532,
                                           "runAsGroup": 65532}
    assert exporter["readinessProbe"] == {"httpGet": {"path": "/-/ready", "port": "metrics"}, "periodSeconds": 10}
    assert exporter["livenessProbe"] == {"httpGet": {"path": "/-/healthy", "port": "metrics"}, "periodSeconds": 20}
    assert exporter["resources"] == {"limits": {"cpu": "500m", "memory": "384Mi"},
                                     "requests": {"cpu": "50m", "memory": "64Mi"}}


def test_exporter_image_can_be_pinned_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    [deployment] = render({"exporter": {"image": {"digest": digest}}})["deployment.yaml"]
    exporter = deployment["spec"]["template"]["spec"]["containers"][1]
    assert exporter["image"] == f"ghcr.io/infersight/infersight:0.1.0@{digest}"


def exporter_invocation(name: str, pod: str, host_ip: str = "10.0.0.7") -> tuple[dict, list[str]]:
    """The rendered ConfigMap and the exporter's arguments as the kubelet runs them: $(VAR)
    expanded from the container's downward-API environment."""
    rendered = render(example(name))
    [configmap], [deployment] = rendered["configmap.yaml"], rendered["deployment.yaml"]
    exporter = deployment["spec"]["template"]["spec"]["containers"][-1]
    env = {"POD_NAME": pod, "HOST_IP": host_ip}
    declared = {e["name"] for e in exporter.get("env", [])}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m[1]] if m[1] in declared else m[0], a) for a in exporter["args"]]
    return yaml.safe_load(configmap["data"]["exporter.yaml"]), args


@pytest.mark.parametrize(("name", "expected"), [
    ("vllm", ["ok: target vllm-70b-0 engine=vllm url=http://127.0.0.1:8000/metrics gpu=none auth=no"]),
    ("triton", ["ok: target vllm-70b-0 engine=triton url=http://127.0.0.1:8002/metrics gpu=engine auth=no"]),
    ("nim", ["ok: target vllm-70b-0 engine=nim url=http://127.0.0.1:8000/v1/metrics gpu=dcgm auth=no"]),
    ("standalone", ["ok: target vllm-a engine=vllm url=http://vllm-a.llm.svc:8000/metrics gpu=none auth=yes",
                    "ok: target triton-b engine=triton url=http://triton-b.llm.svc:8002/metrics gpu=engine auth=yes",
                    "ok: target nim-c engine=nim url=http://nim-c.llm.svc:8000/v1/metrics gpu=none auth=yes"]),
])
def test_rendered_exporter_invocation_is_accepted_by_the_exporter(name: str, expected: list[str], tmp_path) -> None:
    # The real CLI with the rendered ConfigMap and arguments (the bearer token file made up).
    config, args = exporter_invocation(name, pod="vllm-70b-0")
    if "auth" in config:
        token = tmp_path / "engine-token"
        token.write_text("secret")
        config["auth"]["bearer_token_file"] = str(token)
    path = tmp_path / "exporter.yaml"
    path.write_text(yaml.safe_dump(config))
    args[args.index("--config") + 1] = str(path)
    result = subprocess.run([*infersight_command(), *args, "--check-config"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == expected
    assert config["listen"] == "0.0.0.0:9400"
    # the label-dimension and cache caps reach the exporter (docs/reliability.md, "Attacks")
    assert (config["max_models"], config["max_gpus"], config["max_label_bytes"], config["max_cache_bytes"]) == (
        100, 64, 1024, 64 * 2**20)


def test_nim_cost_includes_the_licence() -> None:
    [configmap] = render(example("nim"))["configmap.yaml"]
    assert yaml.safe_load(configmap["data"]["exporter.yaml"])["cost"] == {
        "gpu_count": 8, "gpu_type": "H100-80GB-SXM", "licence_monthly_dollars": 4500}


def test_prometheus_rule_holds_exactly_the_rules_in_alerts() -> None:
    [rule] = render({"mode": "monitoring"})["prometheusrule.yaml"]
    expected = []
    for path in ("alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml"):
        expected += yaml.safe_load((REPO / path).read_text())["groups"]
    assert rule["spec"]["groups"] == expected


def test_dashboard_configmaps_hold_exactly_the_generated_dashboards() -> None:
    maps = render({"mode": "monitoring"})["dashboards.yaml"]
    shipped = {name: json.loads(text) for m in maps for name, text in m["data"].items()}
    generated = {p.name: json.loads(p.read_text()) for p in (REPO / "grafana" / "dashboards").glob("*.json")}
    assert shipped == generated
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)


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
    assert pod["securityContext"] == {"fsGroup": 65532, "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    assert [c["name"] for c in pod["containers"]] == ["infersight-exporter"]
    assert pod["volumes"][1] == {"name": "infersight-engine-token", "secret": {
        "secretName": "engine-token", "items": [{"key": "token", "path": "engine-token"}]}}


def test_alertmanager_config_is_the_committed_routing_in_the_operators_shape() -> None:
    [config] = render(example("standalone"))["alertmanagerconfig.yaml"]
    source = yaml.safe_load((REPO / "alerts" / "alertmanager.yml").read_text())

    def matchers(strings: list[str]) -> list[dict]:
        return [dict(zip(("name", "matchType", "value"), re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', m).groups()))
                for m in strings]

    route = source["route"]
    assert config["spec"] == {
        "route": {"receiver": "ticket", "groupBy": route["group_by"], "groupWait": "30s", "groupInterval": "5m",
                  "repeatInterval": "4h",
                  "routes": [{"receiver": r["receiver"], "matchers": matchers(r["matchers"]),
                              **({"repeatInterval": r["repeat_interval"]} if "repeat_interval" in r else {})}
                             for r in route["routes"]]},
        "receivers": [{"name": "null"},
                      {"name": "pager", "webhookConfigs": [{"url": "http://pager.example:9095/pager",
                                                            "sendResolved": True}]},
                      {"name": "ticket", "webhookConfigs": [{"url": "http://tickets.example:9095/ticket",
                                                             "sendResolved": True}]}],
        "inhibitRules": [{"sourceMatch": matchers(r["source_matchers"]), "targetMatch": matchers(r["target_matchers"]),
                          "equal": r["equal"]} for r in source["inhibit_rules"]],
    }
    assert config["spec"]["route"]["groupBy"] == ["alertname", "slo", "cluster", "namespace", "engine", "model"]


def test_values_schema_rejects_a_string_port() -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as error:
        chart.render({"exporter": {"port": "ninety-four-hundred"}}, name="demo", namespace="llm")
    assert "at '/exporter/port': got string, want integer" in str(error.value)


def test_values_schema_is_strict() -> None:
    # a misspelt key fails instead of being ignored
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as error:
        chart.render({"engine": {"replica": 2}}, name="demo", namespace="llm")
    assert "at '/engine': additional properties 'replica' not allowed" in str(error.value)


@pytest.mark.parametrize("source", ["alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml",
                                    "alerts/alertmanager.yml", *[f"grafana/dashboards/{p.name}" for p in
                                                                 sorted((REPO / "grafana/dashboards").glob("*.json"))]])
def test_chart_copies_are_current(source: str) -> None:
    copy = CHART / "files" / (source.split("/")[-1] if not source.startswith("grafana") else
                              f"dashboards/{source.split('/')[-1]}")
    assert copy.read_bytes() == (REPO / source).read_bytes(), f"{copy} is stale: run helm/sync-files.sh"
