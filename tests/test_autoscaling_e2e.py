"""The chart's autoscaling queries in a real Prometheus scraping real exporters: three workloads
(vLLM with two replicas and one still loading in team-a; NIM and vLLM side by side in team-b),
with the namespace and pod labels a ServiceMonitor adds. Every KEDA trigger query, as the chart
renders it for each workload, and every prometheus-adapter rule, filled the way the adapter fills
it from the rendered HPA's selector, returns exactly one number per workload: the figure the
engines were given, computed here independently."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import helm_python as helm
import httpx
import pytest
import yaml

from infersight.exporter.adapters.vllm import TTFT_BUCKETS
from tests.conftest import REPO
from tests.live_engine import MODEL, LiveEngine
from tests.processes import free_port, infersight_command, require_binary, running

pytestmark = pytest.mark.e2e

CHART = REPO / "helm" / "infersight"


@dataclass(frozen=True)
class Replica:
    namespace: str
    engine: str
    pod: str
    waiting: float
    kv: float
    ttft: float


REPLICAS = (
    Replica("team-a", "vllm", "vllm-a-0", waiting=3, kv=0.42, ttft=0.12),
    Replica("team-a", "vllm", "vllm-a-1", waiting=6, kv=0.60, ttft=0.12),
    Replica("team-b", "nim", "nim-b-0", waiting=2, kv=0.30, ttft=0.7),  # NIM passing vLLM's names through
    Replica("team-b", "vllm", "vllm-b-0", waiting=5, kv=0.90, ttft=0.12),
)
LOADING = ("team-a", "vllm", "vllm-a-2")  # its exporter is up, its engine not yet: no model series
WORKLOADS = sorted({(r.namespace, r.engine) for r in REPLICAS})


def p99(value: float) -> float:
    """histogram_quantile(0.99) when every observation is ``value``: linear within its bucket."""
    upper = min(b for b in TTFT_BUCKETS if b >= value)
    lower = max((b for b in TTFT_BUCKETS if b < value), default=0.0)
    return lower + (upper - lower) * 0.99


def expected(namespace: str, engine: str) -> dict[str, float]:
    mine = [r for r in REPLICAS if (r.namespace, r.engine) == (namespace, engine)]
    [ttft] = {r.ttft for r in mine}
    return {"queuePerReplica": sum(r.waiting for r in mine) / len(mine),
            "kvCacheUsage": sum(r.kv for r in mine) / len(mine), "ttftP99": p99(ttft)}


def render(values: dict, namespace: str) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="llm", namespace=namespace)
    return {Path(p).name: [d for d in yaml.safe_load_all(t) if d] for p, t in out.items() if p.endswith(".yaml")}


def release_values(engine: str, kind: str) -> dict:
    values = copy.deepcopy(yaml.safe_load((CHART / "examples" / f"{engine}.yaml").read_text()))
    values["autoscaling"] = {"model": MODEL, "keda": {"enabled": kind == "keda"}, "hpa": {"enabled": kind == "hpa"}}
    return values


def keda_queries(namespace: str, engine: str) -> dict[str, str]:
    [scaled] = render(release_values(engine, "keda"), namespace)["scaledobject.yaml"]
    return {t["name"]: t["metadata"]["query"] for t in scaled["spec"]["triggers"]}


def adapter_queries(namespace: str, engine: str) -> dict[str, tuple[str, str]]:
    """Per external metric of the rendered HPA: the adapter's seriesQuery, and its metricsQuery as
    prometheus-adapter builds it (pkg/naming/metrics_query.go BuildExternal): the selector's
    requirements sorted by key (= for one value, =~ for In), then namespace="<the HPA's>"."""
    [hpa] = render(release_values(engine, "hpa"), namespace)["hpa.yaml"]
    [configmap] = render({"mode": "monitoring", "prometheusAdapterRules": {"enabled": True}},
                         "monitoring")["prometheus-adapter-rules.yaml"]
    rules = {r["name"]["as"]: r for r in yaml.safe_load(configmap["data"]["config.yaml"])["externalRules"]}
    out = {}
    for metric in hpa["spec"]["metrics"]:
        name, selector = metric["external"]["metric"]["name"], metric["external"]["metric"]["selector"]
        requirements = [(k, f'{k}="{v}"') for k, v in selector.get("matchLabels", {}).items()]
        for expression in selector.get("matchExpressions", []):
            assert (expression["operator"], len(expression["values"])) == ("In", 1)
            requirements.append((expression["key"], f'{expression["key"]}=~"{expression["values"][0]}"'))
        matchers = ",".join([m for _, m in sorted(requirements)] + [f'namespace="{namespace}"'])
        rule = rules[name]
        series = rule["name"]["matches"].removeprefix("^").removesuffix("$")
        out[name] = (rule["seriesQuery"],
                     rule["metricsQuery"].replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers))
    return out


@dataclass
class Stack:
    prometheus: str

    def get(self, path: str, **params) -> list[dict]:
        response = httpx.get(f"{self.prometheus}{path}", params=params, timeout=10)
        assert response.status_code == 200, f"{params}: {response.text}"
        return response.json()["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]


def set_gauge(engine: LiveEngine, name: str, value: float) -> None:
    # LiveEngine keeps no handle on its gauges: reach them through the registry.
    engine.registry._names_to_collectors[name].labels("0", MODEL).set(value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("autoscaling")
    engines = {}
    for replica in REPLICAS:
        engine = engines[replica.pod] = LiveEngine()
        set_gauge(engine, "vllm:num_requests_waiting", replica.waiting)
        set_gauge(engine, "vllm:kv_cache_usage_perc", replica.kv)
        engine.slow_ttft_seconds = replica.ttft
    pods = [(r.namespace, r.engine, r.pod) for r in REPLICAS] + [LOADING]
    ports = {pod: free_port() for _, _, pod in pods}
    prometheus_port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        # what a ServiceMonitor makes of the sidecars: one target per pod, namespace and pod labels
        "scrape_configs": [{"job_name": "sidecars", "static_configs": [
            {"targets": [f"127.0.0.1:{ports[pod]}"], "labels": {"namespace": ns, "pod": pod}} for ns, _, pod in pods]}],
    }))
    nothing = f"http://127.0.0.1:{free_port()}/metrics"  # the loading replica's engine: nothing listens
    try:
        with ExitStack() as processes:
            for _, engine_kind, pod in pods:
                url = engines[pod].url if pod in engines else nothing
                processes.enter_context(running(
                    [*infersight_command(), "exporter", "--engine", engine_kind, "--listen",
                     f"127.0.0.1:{ports[pod]}", "--target", f"{pod}={url}"],
                    f"http://127.0.0.1:{ports[pod]}/-/ready", log=tmp / f"{pod}.log"))
            processes.enter_context(running(
                [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'prom'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                f"http://127.0.0.1:{prometheus_port}/-/ready", log=tmp / "prometheus.log"))
            stack = Stack(f"http://127.0.0.1:{prometheus_port}")
            # every replica scraped a few times (rate needs two samples), the loading one seen down
            deadline = time.monotonic() + 40
            while len(stack.query("count_over_time(llm_exporter_target_up[1m]) >= 4")) < len(pods):
                assert time.monotonic() < deadline, stack.query("llm_exporter_target_up")
                time.sleep(0.5)
            yield stack
    finally:
        for engine in engines.values():
            engine.close()


def test_the_loading_replica_is_up_in_the_exporter_and_down_as_a_target(stack: Stack) -> None:
    up = [(r["metric"]["namespace"], r["value"][1]) for r in stack.query(
        f'llm_exporter_target_up{{target="{LOADING[2]}"}}')]
    print(f"llm_exporter_target_up of the loading replica {LOADING[2]}: {up}")
    assert up == [("team-a", "0")]


def test_every_keda_trigger_query_returns_one_number_per_workload(stack: Stack) -> None:
    for namespace, engine in WORKLOADS:
        queries = keda_queries(namespace, engine)
        assert sorted(queries) == ["kvCacheUsage", "queuePerReplica", "ttftP99"]
        for trigger, expr in queries.items():
            result = stack.query(expr)
            print(f"{namespace}/{engine} KEDA {trigger}: {[r['value'][1] for r in result]} "
                  f"(computed here: {expected(namespace, engine)[trigger]:.6g})")
            assert len(result) == 1, f"{namespace}/{engine} {trigger}: {expr} -> {result}"
            assert float(result[0]["value"][1]) == pytest.approx(expected(namespace, engine)[trigger], abs=1e-9), (
                f"{namespace}/{engine} {trigger}: {expr}")


def test_every_adapter_rule_serves_the_hpa_the_same_number(stack: Stack) -> None:
    by_metric = {"infersight_queue_per_replica": "queuePerReplica", "infersight_kv_cache_usage_ratio": "kvCacheUsage",
                 "infersight_ttft_p99_seconds": "ttftP99"}
    for namespace, engine in WORKLOADS:
        queries = adapter_queries(namespace, engine)
        assert sorted(queries) == sorted(by_metric)
        for metric, (series_query, expr) in queries.items():
            # discovery: the adapter's seriesQuery finds the series in this namespace
            series = stack.get("/api/v1/series", **{"match[]": series_query})
            assert {(s["namespace"], s["engine"]) for s in series} >= {(namespace, engine)}
            result = stack.query(expr)
            print(f"{namespace}/{engine} adapter {metric}: {[r['value'][1] for r in result]} "
                  f"(computed here: {expected(namespace, engine)[by_metric[metric]]:.6g})")
            assert len(result) == 1, f"{namespace}/{engine} {metric}: {expr} -> {result}"
            assert float(result[0]["value"][1]) == pytest.approx(expected(namespace, engine)[by_metric[metric]],
                                                                 abs=1e-9), f"{namespace}/{engine} {metric}: {expr}"
