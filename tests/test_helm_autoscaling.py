"""Autoscaling on the unified signals, rendered by the real Helm: the KEDA ScaledObject against
KEDA's published CRD, the HPA against the Kubernetes schemas, prometheus-adapter's rules against
its configuration format, for every engine example; the queries generated from the schema and the
TTFT SLO, never spelled in a template. tests/test_autoscaling_e2e.py runs them in a real Prometheus."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from infersight.tools import autoscaling
from infersight.alerts.slo_spec import load_spec
from infersight.exporter.schema import M
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CHART = REPO / "helm" / "infersight"
FIXTURES = REPO / "tests" / "fixtures" / "autoscaling"
EXAMPLES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "examples").glob("*.yaml"))}
NAMESPACE = "team-a"
RELEASE = "llm"
K8S_VERSION = "1.32.0"
QUERIES = yaml.safe_load((CHART / "files" / "autoscaling-queries.yaml").read_text())
# The keys KEDA's prometheus scaler reads from a trigger's metadata: prometheusMetadata in
# pkg/scalers/prometheus_scaler.go and authentication.Config's authModes (kedacore/keda@8b4f083).
KEDA_PROMETHEUS_KEYS = {"serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace",
                        "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner",
                        "authModes"}
# Each engine example's workload as the queries see it (engine, model); standalone names its target.
WORKLOADS = {
    "vllm": {"engine": "vllm", "model": "meta-llama/Llama-3.1-70B-Instruct"},
    "triton": {"engine": "triton", "model": "ensemble"},
    "nim": {"engine": "nim", "model": "meta/llama-3.1-70b-instruct"},
    "standalone": {"engine": "triton", "model": "ensemble",
                   "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "triton-b"}},
}


def render(values: dict) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return {Path(path).name: [d for d in yaml.safe_load_all(text) if d] for path, text in out.items()
            if path.endswith(".yaml")}


def render_error(values: dict) -> str:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError) as error:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(error.value)


def with_autoscaling(example: str, kind: str, **extra) -> dict:
    values = copy.deepcopy(EXAMPLES[example])
    workload = dict(WORKLOADS[example])
    values["autoscaling"] = {**workload, "keda": {"enabled": kind == "keda"}, "hpa": {"enabled": kind == "hpa"},
                             **extra}
    return values


def strict(schema: dict) -> dict:
    """The CRD schema as the API server applies it with strict field validation: an unknown field
    is an error (a structural schema prunes it otherwise, silently)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def keda_schema() -> dict:
    crd = yaml.safe_load((FIXTURES / "keda.sh_scaledobjects.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(version["schema"]["openAPIV3Schema"])


def validate_scaled_object(document: dict) -> None:
    jsonschema.validate(document, keda_schema())
    for trigger in document["spec"]["triggers"]:
        if trigger["type"] == "prometheus":
            assert set(trigger["metadata"]) <= KEDA_PROMETHEUS_KEYS, trigger["metadata"]


def matchers(example: str) -> str:
    w = WORKLOADS[example]
    return f'engine="{w["engine"]}",model="{w["model"]}",namespace="{NAMESPACE}"'


# --- the queries: generated from the schema and the TTFT SLO ---------------------------------------

def test_chart_queries_are_current() -> None:
    assert autoscaling.main(["--check"]) == 0, "helm/infersight/files/autoscaling-queries.yaml is stale: " \
                                                "run bash helm/sync-files.sh"


def test_a_stale_queries_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stale = tmp_path / "autoscaling-queries.yaml"
    stale.write_text(autoscaling.render().replace("0.99", "0.95"))
    assert autoscaling.main(["--check", "--out", str(stale)]) == 1
    assert capsys.readouterr().err == f"{stale} is stale: run bash helm/sync-files.sh\n"


def test_queries_come_from_the_schema_and_the_ttft_slo() -> None:
    [ttft] = [s for s in load_spec(REPO / "alerts" / "slos.yaml").slos if s.name == "ttft"]
    every = ["nim", "sglang", "tgi", "triton", "trtllm", "vllm"]
    triggers = QUERIES["triggers"]
    assert {name: (t["series"], t["metricsQuery"], t["externalMetric"], t["engines"])
            for name, t in triggers.items()} == {
        "queuePerReplica": (M.REQUESTS_WAITING.name, "avg(<<.Series>>{<<.LabelMatchers>>})",
                            "infersight_queue_per_replica", every),
        "kvCacheUsage": (M.KV_CACHE_USAGE_RATIO.name, "avg(<<.Series>>{<<.LabelMatchers>>})",
                         "infersight_kv_cache_usage_ratio", [e for e in every if e != "tgi"]),
        "ttftP99": (f"{M.TIME_TO_FIRST_TOKEN.name}_bucket",
                    f"histogram_quantile({ttft.objective}, sum by (le) (rate(<<.Series>>{{<<.LabelMatchers>>}}[2m])))",
                    "infersight_ttft_p99_seconds", [e for e in every if e != "tgi"]),
    }
    assert (triggers["ttftP99"]["slo"], triggers["ttftP99"]["sloThresholdSeconds"]) == ("ttft", 0.5)
    # The autoscaling templates spell no metric name: they read them from the generated file.
    for name in ("scaledobject.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml", "_helpers.tpl"):
        assert "llm_" not in (CHART / "templates" / name).read_text(), name


# --- off by default ----------------------------------------------------------------------------

@pytest.mark.parametrize("example", [None, *EXAMPLES])
def test_off_unless_an_example_enables_it(example: str | None) -> None:
    rendered = render(EXAMPLES[example] if example else {})
    enabled = {"vllm": "scaledobject.yaml", "nim": "hpa.yaml", "monitoring": "prometheus-adapter-rules.yaml"}
    for path in ("scaledobject.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml"):
        assert len(rendered[path]) == (1 if enabled.get(example) == path else 0), path
    if example not in ("vllm", "nim", "monitoring"):
        [deployment] = rendered["deployment.yaml"]
        assert "replicas" in deployment["spec"]


# --- KEDA: every engine example --------------------------------------------------------------

@pytest.mark.parametrize("example", WORKLOADS)
def test_scaled_object_for_every_engine_is_valid_keda(example: str) -> None:
    rendered = render(with_autoscaling(example, "keda"))
    [scaled] = rendered["scaledobject.yaml"]
    validate_scaled_object(scaled)
    assert rendered["hpa.yaml"] == []
    target = WORKLOADS[example].get("scaleTargetRef", {"apiVersion": "apps/v1", "kind": "Deployment",
                                                       "name": "llm-infersight"})
    url = "http://prometheus-operated.monitoring.svc:9090"
    m = matchers(example)
    assert scaled["spec"] == {
        "scaleTargetRef": target,
        "pollingInterval": 15, "cooldownPeriod": 300, "minReplicaCount": 1, "maxReplicaCount": 4,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 600,
                          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}}}},
        "triggers": [
            {"type": "prometheus", "name": "kvCacheUsage", "metricType": "Value", "metadata": {
                "serverAddress": url, "query": f"avg(llm_kv_cache_usage_ratio{{{m}}})", "threshold": "0.85"}},
            {"type": "prometheus", "name": "queuePerReplica", "metricType": "Value", "metadata": {
                "serverAddress": url, "query": f"avg(llm_requests_waiting{{{m}}})", "threshold": "4"}},
            {"type": "prometheus", "name": "ttftP99", "metricType": "Value", "metadata": {
                "serverAddress": url, "threshold": "0.5", "query": "histogram_quantile(0.99, sum by (le) "
                f"(rate(llm_time_to_first_token_seconds_bucket{{{m}}}[2m])))"}},
        ]}
    [deployment] = rendered["deployment.yaml"]
    # the autoscaler owns the replica count of this release's own Deployment, never of the exporter's
    assert ("replicas" in deployment["spec"]) == (example == "standalone")


def test_the_examples_scale_their_own_deployment() -> None:
    [scaled] = render(EXAMPLES["vllm"])["scaledobject.yaml"]
    validate_scaled_object(scaled)
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 6)
    assert scaled["spec"]["scaleTargetRef"]["name"] == "llm-infersight"
    assert {t["metadata"]["serverAddress"] for t in scaled["spec"]["triggers"]} == {
        "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"}
    [hpa] = render(EXAMPLES["nim"])["hpa.yaml"]
    kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"], hpa["spec"]["scaleTargetRef"]["name"]) == (
        1, 3, "llm-infersight")


def test_keda_thresholds_authentication_and_scale_to_zero() -> None:
    activation = {"type": "prometheus", "metadata": {
        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
        "query": 'sum(gateway_pending_requests{route="llama"})', "threshold": "1", "activationThreshold": "0"}}
    values = with_autoscaling("vllm", "keda", triggers={
        "queuePerReplica": {"threshold": 8}, "kvCacheUsage": {"enabled": False},
        "ttftP99": {"thresholdSeconds": 0.4}})
    values["autoscaling"]["keda"].update(scaleToZero=True, extraTriggers=[activation], authenticationRef="prom-auth",
                                         authModes="bearer")
    [scaled] = render(values)["scaledobject.yaml"]
    validate_scaled_object(scaled)
    assert scaled["spec"]["minReplicaCount"] == 0
    assert [(t.get("name"), t["metadata"].get("threshold"), t["metadata"].get("authModes"), t.get("authenticationRef"))
            for t in scaled["spec"]["triggers"]] == [
        ("queuePerReplica", "8", "bearer", {"name": "prom-auth"}), ("ttftP99", "0.4", "bearer", {"name": "prom-auth"}),
        (None, "1", None, None)]


def test_the_crd_check_is_not_vacuous() -> None:
    [scaled] = render(with_autoscaling("vllm", "keda"))["scaledobject.yaml"]
    scaled["spec"]["minReplicas"] = 1  # HPA's spelling, not KEDA's
    with pytest.raises(jsonschema.ValidationError, match="'minReplicas' was unexpected"):
        validate_scaled_object(scaled)


# --- HPA on external metrics, and prometheus-adapter's rules ------------------------------------

@pytest.mark.parametrize("example", WORKLOADS)
def test_hpa_for_every_engine_is_valid_kubernetes(example: str) -> None:
    rendered = render(with_autoscaling(example, "hpa"))
    [hpa] = rendered["hpa.yaml"]
    kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)
    assert rendered["scaledobject.yaml"] == []
    w = WORKLOADS[example]
    if "/" in w["model"]:
        # not a Kubernetes label value: In, which the adapter turns into model=~"...", "/" becoming "."
        selector = {"matchLabels": {"engine": w["engine"]},
                    "matchExpressions": [{"key": "model", "operator": "In", "values": [w["model"].replace("/", ".")]}]}
    else:
        selector = {"matchLabels": {"engine": w["engine"], "model": w["model"]}}
    assert hpa["spec"]["metrics"] == [
        {"type": "External", "external": {"metric": {"name": name, "selector": selector},
                                          "target": {"type": "Value", "value": value}}}
        for name, value in (("infersight_kv_cache_usage_ratio", "0.85"), ("infersight_queue_per_replica", "4"),
                            ("infersight_ttft_p99_seconds", "0.5"))]
    assert hpa["spec"]["scaleTargetRef"] == w.get("scaleTargetRef", {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                      "name": "llm-infersight"})
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_adapter_rules_follow_prometheus_adapters_config_format() -> None:
    [configmap] = render(EXAMPLES["monitoring"])["prometheus-adapter-rules.yaml"]
    kubernetes_validate.validate(configmap, K8S_VERSION, strict=True)
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    jsonschema.validate(config, yaml.safe_load((FIXTURES / "prometheus-adapter-config.schema.json").read_text()))
    assert config == {"rules": [], "externalRules": QUERIES["prometheusAdapter"]["externalRules"]}
    assert config["externalRules"][0] == {
        "seriesQuery": '{__name__="llm_requests_waiting",namespace!="",engine!="",model!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
        "name": {"matches": "^llm_requests_waiting$", "as": "infersight_queue_per_replica"},
        "metricsQuery": "avg(<<.Series>>{<<.LabelMatchers>>})"}
    # the HPA's metric names are the ones the rules serve
    [hpa] = render(EXAMPLES["nim"])["hpa.yaml"]
    assert sorted(m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]) == sorted(
        r["name"]["as"] for r in config["externalRules"])


def test_the_adapter_schema_is_not_vacuous() -> None:
    schema = yaml.safe_load((FIXTURES / "prometheus-adapter-config.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError, match="'metricQuery' was unexpected"):
        jsonschema.validate({"externalRules": [{"seriesQuery": "up", "metricQuery": "x"}]}, schema)


# --- refused values ---------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    (with_autoscaling("vllm", "keda", hpa={"enabled": True}),
     "autoscaling.keda.enabled and autoscaling.hpa.enabled: choose one; KEDA creates its own HPA and the two would "
     "fight over the replica count"),
    ({**EXAMPLES["vllm"], "autoscaling": {"keda": {"enabled": True}}},
     "autoscaling needs autoscaling.model: the served model name, the model label of the workload's series"),
    ({**EXAMPLES["standalone"], "autoscaling": {"model": "ensemble", "engine": "triton", "hpa": {"enabled": True}}},
     "autoscaling in standalone mode needs autoscaling.scaleTargetRef.name: the engine's Deployment or StatefulSet "
     "(this release's Deployment is the exporter)"),
    ({**EXAMPLES["standalone"],
      "autoscaling": {"model": "m", "scaleTargetRef": {"name": "x"}, "hpa": {"enabled": True}}},
     'autoscaling needs the workload\'s engine, not "auto": set autoscaling.engine (one of vllm, triton, nim, '
     'sglang, tgi, trtllm)'),
    ({"mode": "monitoring", "autoscaling": {"model": "m", "keda": {"enabled": True}}},
     "autoscaling in monitoring mode: enable it in the engine's release (sidecar or standalone), which knows the "
     "workload"),
    (with_autoscaling("vllm", "keda", engine="tgi"),
     "autoscaling.triggers.kvCacheUsage: tgi's exporter has no llm_kv_cache_usage_ratio; disable the trigger for "
     "this engine"),
    (with_autoscaling("vllm", "keda", keda={"enabled": True, "scaleToZero": True}),
     "autoscaling.keda.scaleToZero needs an activation trigger in autoscaling.keda.extraTriggers: at zero replicas "
     "no exporter reports a queue, KV cache or TTFT, so nothing would scale the workload up again"),
    (with_autoscaling("vllm", "hpa", keda={"scaleToZero": True}),
     "autoscaling.keda.scaleToZero needs KEDA (autoscaling.keda.enabled); an HPA keeps at least one replica"),
    (with_autoscaling("vllm", "keda", minReplicas=5, maxReplicas=3),
     "autoscaling.minReplicas=5 is above autoscaling.maxReplicas=3"),
    (with_autoscaling("vllm", "keda", triggers={t: {"enabled": False} for t in ("queuePerReplica", "kvCacheUsage",
                                                                                 "ttftP99")}),
     "autoscaling: every trigger is disabled; enable at least one of autoscaling.triggers"),
], ids=["both", "no-model", "standalone-no-target", "standalone-auto-engine", "monitoring", "tgi-kv",
        "zero-without-activation", "zero-with-hpa", "min-above-max", "no-trigger"])
def test_misleading_values_are_refused(values: dict, message: str) -> None:
    assert message in render_error(values)


@pytest.mark.parametrize(("autoscaling_values", "message"), [
    ({"minReplicas": 0}, "at '/autoscaling/minReplicas': minimum: got 0, want 1"),
    ({"triggers": {"kvCacheUsage": {"threshold": 1.5}}},
     "at '/autoscaling/triggers/kvCacheUsage/threshold': maximum: got 1.5, want 1"),
    ({"keda": {"enable": True}}, "at '/autoscaling/keda': additional properties 'enable' not allowed"),
])
def test_values_schema_documents_and_bounds_every_value(autoscaling_values: dict, message: str) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError) as error:
        chart.render({"autoscaling": autoscaling_values}, name=RELEASE, namespace=NAMESPACE)
    assert message in str(error.value)


def test_every_autoscaling_value_has_a_description() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    missing = []

    def walk(node: dict, path: str) -> None:
        if "description" not in node:
            missing.append(path)
        for key, child in node.get("properties", {}).items():
            if path.endswith("behavior"):
                continue  # Kubernetes' own HorizontalPodAutoscalerBehavior
            walk(child, f"{path}.{key}")

    walk(schema["properties"]["autoscaling"], "autoscaling")
    walk(schema["properties"]["prometheusAdapterRules"], "prometheusAdapterRules")
    assert missing == []
