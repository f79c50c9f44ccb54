"""Every example of the Helm chart, rendered by the real Helm, holds the properties an SRE relies
on in a real cluster: one target per replica, the release label on all three objects
kube-prometheus-stack selects, engine probes and rollout settings for slow model loads, a PDB,
Pod Security "restricted", a node-local and filtered GPU source, a model cache and /dev/shm, no
double scraping, rules and dashboards once per cluster, NOTES that say what to check."""

from __future__ import annotations

import json
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from infersight.exporter.settings import load_settings
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CHART = REPO / "helm" / "infersight"
EXAMPLES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "examples").glob("*.yaml"))}
SIDECAR = ("nim", "triton", "vllm")  # the GPU examples
WORKLOADS = (*SIDECAR, "standalone")
RELEASE = "vllm-70b"
CHART_LABELS = {"app.kubernetes.io/name": "infersight", "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/version": "0.1.0", "app.kubernetes.io/managed-by": "Helm",
                "helm.sh/chart": "infersight-0.1.0"}
SELECTOR = {"app.kubernetes.io/name": "infersight", "app.kubernetes.io/instance": RELEASE}


def render_text(values: dict, name: str = RELEASE) -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=name, namespace="team-a")
    return {Path(path).name: text for path, text in out.items()}


def render(values: dict, name: str = RELEASE) -> dict[str, list[dict]]:
    return {path: [d for d in yaml.safe_load_all(text) if d] for path, text in render_text(values, name).items()
            if path.endswith(".yaml")}


def render_error(values: dict) -> str:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmError) as error:
        chart.render(values, name=RELEASE, namespace="team-a")
    return str(error.value)


def with_values(name: str, **overrides) -> dict:
    values = yaml.safe_load(yaml.safe_dump(EXAMPLES[name]))
    for dotted, value in overrides.items():
        node = values
        *path, last = dotted.split("__")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return values


def pod(rendered: dict[str, list[dict]]) -> dict:
    [deployment] = rendered["deployment.yaml"]
    return deployment["spec"]["template"]["spec"]


def container(rendered: dict[str, list[dict]], name: str) -> dict:
    return next(c for c in pod(rendered)["containers"] if c["name"] == name)


# --- labels kube-prometheus-stack selects on -----------------------------------------------------

@pytest.mark.parametrize("name", WORKLOADS)
def test_monitor_label_reaches_servicemonitor_and_podmonitor(name: str) -> None:
    expected = {**CHART_LABELS, "release": "kube-prometheus-stack"}
    [monitor] = render(EXAMPLES[name])["servicemonitor.yaml"]
    assert monitor["metadata"]["labels"] == expected
    rendered = render(with_values(name, serviceMonitor__enabled=False, podMonitor__enabled=True))
    [pod_monitor] = rendered["podmonitor.yaml"]
    assert rendered["servicemonitor.yaml"] == []
    assert pod_monitor["metadata"]["labels"] == expected
    assert pod_monitor["spec"] == {
        "selector": {"matchLabels": SELECTOR},
        "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]}
    assert monitor["spec"] == {
        "selector": {"matchLabels": SELECTOR},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]}


def test_monitor_label_reaches_the_prometheus_rule_and_the_alertmanager_config() -> None:
    [rule] = render(EXAMPLES["monitoring"])["prometheusrule.yaml"]
    assert rule["metadata"]["labels"] == {**CHART_LABELS, "release": "kube-prometheus-stack"}
    [config] = render(EXAMPLES["standalone"])["alertmanagerconfig.yaml"]
    assert config["metadata"]["labels"] == {**CHART_LABELS, "release": "kube-prometheus-stack"}


def test_notes_print_what_to_check() -> None:
    notes = render_text(EXAMPLES["vllm"])["NOTES.txt"]
    assert notes.splitlines() == [
        "",
        "infersight (sidecar): http://vllm-70b-infersight.team-a:9400/metrics",
        "  Every replica is its own target: target = the pod's name. Check:",
        '    llm_exporter_target_up{namespace="team-a",target=~"vllm-70b-infersight-.*"}',
        "  The exporter reads its ConfigMap at start: an exporter-only change applies at the next rollout.",
        "  GPU metrics: exporter.gpu.source is none. GPU panels and the LLMSchedulerStalled page need",
        "  dcgm-exporter scraped by Prometheus (joined on pod by the pod:llm_gpu_*:dcgm rules); without",
        "  it LLMSchedulerStalled can never fire.",
        "",
        "What to check so that Prometheus scrapes this and its alerts fire:",
        '  ServiceMonitor vllm-70b-infersight labels: {"app.kubernetes.io/instance":"vllm-70b",'
        '"app.kubernetes.io/managed-by":"Helm","app.kubernetes.io/name":"infersight","app.kubernetes.io/version":'
        '"0.1.0","helm.sh/chart":"infersight-0.1.0","release":"kube-prometheus-stack"}',
        "  Each must match your Prometheus' (or Alertmanager's) selectors:",
        "    kubectl get prometheus -A -o jsonpath='{range .items[*]}{.metadata.name}: "
        "serviceMonitorSelector={.spec.serviceMonitorSelector} podMonitorSelector={.spec.podMonitorSelector} "
        "ruleSelector={.spec.ruleSelector}{\"\\n\"}{end}'",
        "    kubectl get alertmanager -A -o jsonpath='{range .items[*]}{.metadata.name}: "
        "alertmanagerConfigSelector={.spec.alertmanagerConfigSelector}{\"\\n\"}{end}'",
        "  Alerts and dashboards are not part of this release: install them once per cluster with",
        "  mode=monitoring (examples/monitoring.yaml).",
    ]
    unlabelled = render_text(with_values("monitoring", monitorLabels={}))["NOTES.txt"].splitlines()
    assert unlabelled[-2:] == [
        "  monitorLabels is empty: kube-prometheus-stack selects only objects labelled release=<its release>",
        "  (unless its *SelectorNilUsesHelmValues are false). Set --set monitorLabels.release=<release>."]


# --- one target per replica ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "url"), [("vllm", "http://127.0.0.1:8000/metrics"),
                                           ("triton", "http://127.0.0.1:8002/metrics"),
                                           ("nim", "http://127.0.0.1:8000/v1/metrics")])
def test_each_replica_is_its_own_target(name: str, url: str) -> None:
    rendered = render(EXAMPLES[name])
    exporter = container(rendered, "infersight-exporter")
    assert exporter["args"][3:5] == ["--target", f"$(POD_NAME)={url}"]
    assert exporter["env"][0] == {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    [configmap] = rendered["configmap.yaml"]
    config = yaml.safe_load(configmap["data"]["exporter.yaml"])
    assert "targets" not in config  # never one shared name for every replica
    # Two pods of the Deployment: the exporter's own loader gives each its own target label.
    pods = ["vllm-70b-infersight-7d9c-abcde", "vllm-70b-infersight-7d9c-fghij"]
    loaded = [load_settings({"targets": [f"{pod_name}={url}"]}, None) for pod_name in pods]
    assert [s.resolved(s.targets[0]).name for s in loaded] == pods


# --- probes and rollouts for slow model loads ----------------------------------------------------

@pytest.mark.parametrize(("name", "live", "ready"), [("vllm", "/health", "/health"),
                                                     ("triton", "/v2/health/live", "/v2/health/ready"),
                                                     ("nim", "/v1/health/live", "/v1/health/ready")])
def test_engine_has_startup_liveness_and_readiness_probes(name: str, live: str, ready: str) -> None:
    rendered = render(EXAMPLES[name])
    engine = container(rendered, "engine")
    assert engine["startupProbe"] == {"httpGet": {"path": ready if name != "vllm" else live, "port": "http"},
                                      "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 180}
    assert engine["livenessProbe"] == {"httpGet": {"path": live, "port": "http"}, "periodSeconds": 10,
                                       "timeoutSeconds": 5, "failureThreshold": 3}
    assert engine["readinessProbe"] == {"httpGet": {"path": ready, "port": "http"}, "periodSeconds": 5,
                                        "timeoutSeconds": 5, "failureThreshold": 2}
    assert engine["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}
    [deployment] = rendered["deployment.yaml"]
    assert deployment["spec"]["progressDeadlineSeconds"] == 3600
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert pod(rendered)["terminationGracePeriodSeconds"] == 120


def test_rollout_settings_are_configurable() -> None:
    rendered = render(with_values("vllm", engine__progressDeadlineSeconds=7200, engine__preStopSleepSeconds=0,
                                  engine__terminationGracePeriodSeconds=300,
                                  engine__strategy={"type": "Recreate"}))
    [deployment] = rendered["deployment.yaml"]
    assert (deployment["spec"]["progressDeadlineSeconds"], deployment["spec"]["strategy"]) == (7200, {"type": "Recreate"})
    assert pod(rendered)["terminationGracePeriodSeconds"] == 300
    assert "lifecycle" not in container(rendered, "engine")


# --- disruption, security, identity --------------------------------------------------------------

@pytest.mark.parametrize("name", WORKLOADS)
def test_pod_disruption_budget_covers_the_pods(name: str) -> None:
    [pdb] = render(EXAMPLES[name])["pdb.yaml"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(spec: dict) -> list[str]:
    """What the Pod Security Standard "restricted" (Kubernetes 1.32) refuses in a pod spec."""
    problems = [key for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for volume in spec.get("volumes", []):
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(set(volume) - {'name'})}")
    pod_context = spec.get("securityContext", {})
    for c in spec["containers"] + spec.get("initContainers", []):
        context, name = c.get("securityContext", {}), c["name"]
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities must drop ALL")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if any(port.get("hostPort") for port in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


@pytest.mark.parametrize("name", WORKLOADS)
def test_pod_security_restricted_admits_every_example(name: str) -> None:
    spec = pod(render(EXAMPLES[name]))
    assert restricted_violations(spec) == []
    assert spec["securityContext"] == {"runAsNonRoot": True, "fsGroup": 65532,
                                       "seccompProfile": {"type": "RuntimeDefault"}}  # pod-level, both modes
    assert (spec["automountServiceAccountToken"], spec["serviceAccountName"]) == (False, "vllm-70b-infersight")


def test_restricted_check_refuses_a_root_engine() -> None:
    # The engine's securityContext is the operator's to set; the check is not vacuous.
    spec = pod(render(with_values("vllm", engine__securityContext={"runAsUser": 0, "allowPrivilegeEscalation": True,
                                                                   "capabilities": {"add": ["SYS_ADMIN"]}})))
    assert restricted_violations(spec) == ["engine: allowPrivilegeEscalation must be false",
                                           "engine: capabilities must drop ALL", "engine: runAsUser 0"]


def test_service_account_mounts_no_token() -> None:
    [account] = render(EXAMPLES["vllm"])["serviceaccount.yaml"]
    assert (account["metadata"]["name"], account["automountServiceAccountToken"]) == ("vllm-70b-infersight", False)


def test_scheduling_settings_reach_the_pod() -> None:
    spread = EXAMPLES["vllm"]["topologySpreadConstraints"]
    spec = pod(render(with_values("vllm", priorityClassName="llm-serving", runtimeClassName="nvidia",
                                  affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                      "nodeSelectorTerms": [{"matchExpressions": [{
                                          "key": "nvidia.com/gpu.product", "operator": "In",
                                          "values": ["NVIDIA-A100-SXM4-80GB"]}]}]}}})))
    assert (spec["priorityClassName"], spec["runtimeClassName"]) == ("llm-serving", "nvidia")
    assert spec["topologySpreadConstraints"] == spread
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert list(spec["affinity"]) == ["nodeAffinity"]


# --- GPUs: the pod's own, from its own node -----------------------------------------------------

def test_nim_reads_its_nodes_dcgm_exporter_with_the_host_ip_from_the_downward_api() -> None:
    rendered = render(EXAMPLES["nim"])
    exporter = container(rendered, "infersight-exporter")
    assert exporter["args"][5:] == ["--dcgm-url", "http://$(HOST_IP):9400/metrics"]
    assert exporter["env"][1] == {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
    [configmap] = rendered["configmap.yaml"]
    assert yaml.safe_load(configmap["data"]["exporter.yaml"])["gpu"] == {"source": "dcgm"}  # wholeNode: all of them


def test_a_sidecar_with_dcgm_gets_its_device_filter(tmp_path: Path) -> None:
    devices = ["GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b", "GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c"]
    rendered = render(with_values("nim", exporter__gpu={"source": "dcgm", "devices": devices}))
    [configmap] = rendered["configmap.yaml"]
    config = yaml.safe_load(configmap["data"]["exporter.yaml"])
    assert config["gpu"] == {"source": "dcgm", "devices": devices}
    # The exporter merges the ConfigMap with the container's --dcgm-url (the kubelet expands HOST_IP).
    path = tmp_path / "exporter.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings({"targets": ["nim-0=http://127.0.0.1:8000/v1/metrics"],
                              "gpu": {"dcgm_url": "http://10.0.0.7:9400/metrics"}}, path)
    gpu = settings.resolved(settings.targets[0]).gpu
    assert (str(gpu.dcgm_url), gpu.devices) == ("http://10.0.0.7:9400/metrics", tuple(devices))


@pytest.mark.parametrize(("gpu", "message"), [
    ({"source": "dcgm", "dcgmUrl": "http://nvidia-dcgm-exporter.gpu-operator.svc:9400/metrics", "wholeNode": True},
     "exporter.gpu.dcgmUrl=http://nvidia-dcgm-exporter.gpu-operator.svc:9400/metrics: a cluster Service answers with "
     "a random node's GPUs; leave it empty for the node's own dcgm-exporter (http://$(HOST_IP):9400/metrics), or set "
     "dcgmNodeLocal: true for a Service with internalTrafficPolicy: Local"),
    ({"source": "dcgm"},
     "exporter.gpu.source=dcgm in sidecar mode needs a device filter: exporter.gpu.devices (this pod's GPU UUIDs), "
     "or wholeNode: true when each pod holds every GPU of its node; otherwise use source: none and dcgm-exporter's "
     "own series joined on pod"),
    ({"source": "nvml"},
     "exporter.gpu.source=nvml in sidecar mode: the exporter's container holds no GPU; use engine (Triton), dcgm "
     "(node-local) or none (dcgm-exporter joined on pod)"),
])
def test_a_sidecar_never_reads_another_nodes_gpus(gpu: dict, message: str) -> None:
    assert message in render_error(with_values("vllm", exporter__gpu=gpu))


def test_a_node_local_dcgm_service_is_accepted_when_declared() -> None:
    url = "http://dcgm-local.gpu-operator.svc:9400/metrics"
    rendered = render(with_values("vllm", exporter__gpu={"source": "dcgm", "dcgmUrl": url, "dcgmNodeLocal": True,
                                                         "wholeNode": True}))
    assert container(rendered, "infersight-exporter")["args"][5:] == ["--dcgm-url", url]


def test_examples_without_a_gpu_source_say_what_they_lose() -> None:
    text = (CHART / "examples" / "vllm.yaml").read_text()
    assert "LLMSchedulerStalled (queue growing on idle GPUs) can never fire" in text.replace("\n  # ", " ")
    assert "LLMSchedulerStalled (queue growing on idle GPUs) can never fire" in (
        (CHART / "values.yaml").read_text().replace("\n    #         ", " "))


# --- model cache and shared memory --------------------------------------------------------------

@pytest.mark.parametrize(("name", "claim", "mount", "shm"), [
    ("vllm", "llama-70b-cache", "/models-cache", "16Gi"), ("triton", "triton-model-repository", "/models", "8Gi"),
    ("nim", "nim-cache", "/opt/nim/.cache", "32Gi")])
def test_every_gpu_example_has_shm_a_model_cache_and_cpu_memory_requests(name: str, claim: str, mount: str,
                                                                         shm: str) -> None:
    rendered = render(EXAMPLES[name])
    volumes = {v["name"]: v for v in pod(rendered)["volumes"]}
    assert volumes["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == claim
    engine = container(rendered, "engine")
    mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert (mounts["shm"], mounts["model-cache"]) == ("/dev/shm", mount)
    assert set(engine["resources"]["requests"]) == {"cpu", "memory"}


# --- no double counting ---------------------------------------------------------------------------

def test_service_monitor_and_pod_monitor_together_are_refused() -> None:
    assert ("serviceMonitor.enabled and podMonitor.enabled: choose one; both would scrape every pod twice and "
            "double every series") in render_error(with_values("vllm", podMonitor__enabled=True))


def test_standalone_with_more_than_one_replica_is_refused() -> None:
    assert ("exporter.replicas=2 in standalone mode: every replica scrapes every target, so each series would be "
            "reported 2 times; use 1 (or one release per group of targets)") in render_error(
        with_values("standalone", exporter__replicas=2))


# --- exporter changes and the GPU engine ---------------------------------------------------------

def test_an_exporter_only_change_does_not_restart_the_engine() -> None:
    before = render(EXAMPLES["vllm"])["deployment.yaml"][0]["spec"]["template"]
    after = render(with_values("vllm", exporter__logLevel="debug", exporter__maxModels=5))["deployment.yaml"]
    assert after[0]["spec"]["template"] == before
    assert "annotations" not in before["metadata"]
    opted_in = render(with_values("vllm", engine__restartOnExporterConfigChange=True))["deployment.yaml"][0]
    assert list(opted_in["spec"]["template"]["metadata"]["annotations"]) == ["checksum/config"]
    standalone = [render(with_values("standalone", exporter__logLevel=level))["deployment.yaml"][0]["spec"]["template"]
                  ["metadata"]["annotations"]["checksum/config"] for level in ("info", "debug")]
    assert standalone[0] != standalone[1]  # the exporter alone restarts


# --- rules and dashboards once per cluster --------------------------------------------------------

@pytest.mark.parametrize("name", WORKLOADS)
def test_engine_releases_carry_no_rules_and_no_dashboards(name: str) -> None:
    rendered = render(with_values(name, prometheusRule__enabled=True, grafanaDashboards__enabled=True))
    assert (rendered["prometheusrule.yaml"], rendered["dashboards.yaml"]) == ([], [])


def test_the_monitoring_release_carries_them_and_no_workload() -> None:
    rendered = render(EXAMPLES["monitoring"], name="infersight")
    assert {path for path, docs in rendered.items() if docs} == {"prometheusrule.yaml", "dashboards.yaml",
                                                                 "prometheus-adapter-rules.yaml"}
    uids = sorted(yaml.safe_load(list(m["data"].values())[0])["uid"] for m in rendered["dashboards.yaml"])
    assert uids == sorted(json.loads(p.read_text())["uid"]
                          for p in (REPO / "grafana" / "dashboards").glob("*.json"))
    assert [m["metadata"]["annotations"] for m in rendered["dashboards.yaml"]][0] == {"grafana_folder": "LLM serving"}


def test_rules_are_templated_for_the_cluster() -> None:
    [rule] = render(EXAMPLES["monitoring"])["prometheusrule.yaml"]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    down = alerts["LLMEngineTargetDown"]
    source = next(r for g in yaml.safe_load((REPO / "alerts/rules/llm-alerts.yml").read_text())["groups"]
                  for r in g["rules"] if r.get("alert") == "LLMEngineTargetDown")
    assert down["expr"] == source["expr"].replace("[30m]", "[2700s]").replace("< 1800", "< 2700")
    assert down["labels"] == {"severity": "page", "team": "ml-platform"}
    variables = "".join(f"{{{{ with $labels.{label} }}}}&var-{label}={{{{ . }}}}{{{{ end }}}}"
                        for label in ("cluster", "namespace", "engine", "model", "target", "slo"))
    assert down["annotations"]["runbook_url"] == "https://runbooks.example.com/infersight/runbook.md#llmenginetargetdown"
    assert down["annotations"]["dashboard_url"] == f"https://grafana.example.com/d/infersight-instances?orgId=1{variables}"
    burn = alerts["LLMErrorBudgetBurn"]
    assert burn["annotations"]["dashboard_url"] == f"https://grafana.example.com/d/infersight-slos?orgId=1{variables}"
    assert all(r["labels"]["team"] == "ml-platform" for r in alerts.values())
    assert all(set(r["annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
               for r in alerts.values())
