"""The long-term and global view: two clusters, each a real Prometheus (its own `cluster` external
label, the project's rules) scraping sidecar exporters, `remote_write` into one real
VictoriaMetrics single node (Debian package `victoria-metrics`), the store Grafana and the UI read
across clusters.

Both clusters run the same namespace, pods, engine and model (only their traffic differs), so
only `cluster` keeps them apart. At one evaluation time T, every recording rule's output, every
Grafana panel's PromQL and every query of the UI's comparison run against each Prometheus and
against VictoriaMetrics (filtered to that cluster): the same series, values within 1%; the
remote-written rule outputs the very samples Prometheus recorded. Unfiltered, VictoriaMetrics
answers one series per cluster.

External labels go out with remote_write only: a Prometheus's own answers carry no `cluster`, so
its queries run with `$cluster` = `.*` (which matches the absent label) and the label is dropped
from VictoriaMetrics' answers before comparing."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import yaml
from prometheus_client import Histogram

from infersight.alerts.slo_rules import generate
from infersight.alerts.slo_spec import duration_seconds, load_spec
from infersight.compare import COLUMNS, promql, prometheus_rows
from infersight.exporter.adapters.vllm import ITL_BUCKETS
from infersight.grafana.generate import DASHBOARDS, render
from tests.conftest import OWN_FIXTURES, REPO
from tests.engine_server import EngineServer
from tests.live_engine import MODEL, LiveEngine
from tests.processes import free_port, infersight_command, require_binary, running
from tests.test_replicas_e2e import TIME_SCALE, scale_hand_written_rules

pytestmark = pytest.mark.e2e

NAMESPACE = "team-a"
PODS = ("vllm-0", "vllm-1")
CLUSTERS = {"east": 2, "west": 1}  # requests per tick: each cluster its own figures
TICK_SECONDS = 0.01
GPUS = {"vllm-0": "GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b", "vllm-1": "GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c"}
# Grafana's variables and intervals as a viewer would have them (windows the data fills).
VARIABLES = ("datasource", "cluster", "namespace", "engine", "model", "target", "slo")
INTERVALS = {"$__rate_interval": "1m", "$__range": "1m", "$__interval": "5s"}
# Scrapes 1 s apart: a full minute holds 60, but the loaded CI machine misses or delays a scrape now
# and then, and a sliding window may then never count 60. A gap inside the window is in both stores
# alike, so 55 of 60 is full enough, once the window lies wholly after the first samples.
FILL_SAMPLES = 55
UI_WINDOW = "1m"
TOLERANCE = 0.01


@dataclass
class Cluster:
    name: str
    prometheus: str


@dataclass
class Stack:
    vm: str
    clusters: list[Cluster]


CLIENT = httpx.Client(timeout=20)  # one connection pool: a client per query costs more than the query


def instant(url: str, expr: str, at: float) -> list[dict]:
    response = CLIENT.get(f"{url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"})
    assert response.status_code == 200, f"{url}: {expr}: {response.text}"
    return response.json()["data"]["result"]


def wait_until(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.5)


SPREAD_SECONDS = (0.03, 0.07, 0.15, 0.3, 0.6, 1.5, 3.0)  # across the TTFT and ITL buckets, 10 times a second


class ClockedEngine(LiveEngine):
    """LiveEngine whose traffic is a function of the clock: each answer first runs the ticks due
    since start, so its rates are steady to the tick however busy the machine. (A thread's ticks
    fall behind under load, and then the rate over T-30s..T, Prometheus', and over one scrape
    more, VictoriaMetrics', differ by how the traffic changed, not by how the two compute.)
    Besides LiveEngine's own: vLLM's TPOT histogram and latencies spread over many buckets, so
    that histogram_quantile interpolates between bucket rates and its comparison means something."""

    def __init__(self, requests_per_tick: int):
        self._lock, self._started, self._ticks = threading.Lock(), time.monotonic(), 0
        super().__init__(requests_per_tick=requests_per_tick, tick_seconds=3600)  # the thread never ticks
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds", "TPOT", ["engine", "model_name"],
                              buckets=ITL_BUCKETS, registry=self.registry).labels("0", MODEL)

    def catch_up(self) -> None:
        with self._lock:
            due = int((time.monotonic() - self._started) / TICK_SECONDS)
            for tick in range(self._ticks + 1, due + 1):
                self.tick()
                self.tpot.observe(0.03)
                if tick % round(0.1 / TICK_SECONDS) == 0:
                    for seconds in SPREAD_SECONDS:
                        self.ttft.observe(seconds)
                        self.itl.observe(seconds / 10)
                        self.e2e.observe(seconds * 4)
            self._ticks = max(self._ticks, due)

    def _handler(self):
        engine, base = self, super()._handler()

        class Handler(base):
            def do_GET(self) -> None:  # noqa: N802
                engine.catch_up()
                super().do_GET()

        return Handler


def prometheus_config(cluster: str, ports: dict[str, int], vm_port: int, rules: list[str]) -> str:
    return yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                   "external_labels": {"cluster": cluster}},
        "rule_files": rules,
        "remote_write": [{"url": f"http://127.0.0.1:{vm_port}/api/v1/write",
                          "queue_config": {"batch_send_deadline": "1s", "max_backoff": "1s"}}],
        "scrape_configs": [{"job_name": "vllm", "static_configs": [
            {"targets": [f"127.0.0.1:{ports[pod]}"], "labels": {"namespace": NAMESPACE, "pod": pod}} for pod in PODS]}],
    })


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin, vm_bin = require_binary("prometheus"), require_binary("victoria-metrics")
    tmp = tmp_path_factory.mktemp("remote-write")
    rules = [tmp / "slo-rules.yml", tmp / "llm-alerts.yml"]
    rules[0].write_text(generate(load_spec(REPO / "alerts" / "slos.yaml"), time_scale=TIME_SCALE, interval="1s"))
    rules[1].write_text(scale_hand_written_rules((REPO / "alerts/rules/llm-alerts.yml").read_text()))
    engines = {(c, pod): ClockedEngine(n) for c, n in CLUSTERS.items() for pod in PODS}
    dcgm = EngineServer()  # each pod's node: the fixture's two GPUs, one per pod
    dcgm.serve("/metrics", (OWN_FIXTURES / "dcgm-exporter-4.5.metrics.txt").read_text())
    vm_port = free_port()
    try:
        with ExitStack() as processes:
            # -search.latencyOffset=0s: samples are queryable as soon as they arrive (30 s by default);
            # no response cache: every query reads the stored samples
            processes.enter_context(running(
                [vm_bin, f"-httpListenAddr=127.0.0.1:{vm_port}", f"-storageDataPath={tmp / 'vm'}",
                 "-retentionPeriod=1d", "-search.latencyOffset=0s", "-search.disableCache"],
                f"http://127.0.0.1:{vm_port}/health", log=tmp / "vm.log"))
            clusters = []
            for cluster in CLUSTERS:
                ports = {pod: free_port() for pod in PODS}
                for pod in PODS:
                    processes.enter_context(running(
                        [*infersight_command(), "exporter", "--engine", "vllm", "--listen", f"127.0.0.1:{ports[pod]}",
                         "--target", f"{pod}={engines[cluster, pod].url}", "--gpu-type", "A100-80GB",
                         "--gpu-count", "1", "--gpu-source", "dcgm", "--dcgm-url", dcgm.url("/metrics"),
                         "--gpu-device", GPUS[pod]],
                        f"http://127.0.0.1:{ports[pod]}/-/ready", log=tmp / f"{cluster}-{pod}.log"))
                port = free_port()
                config = tmp / f"{cluster}.yml"
                config.write_text(prometheus_config(cluster, ports, vm_port, [str(r) for r in rules]))
                processes.enter_context(running(
                    [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp / cluster}",
                     f"--web.listen-address=127.0.0.1:{port}"],
                    f"http://127.0.0.1:{port}/-/ready", log=tmp / f"{cluster}-prometheus.log"))
                clusters.append(Cluster(cluster, f"http://127.0.0.1:{port}"))
            yield Stack(f"http://127.0.0.1:{vm_port}", clusters)
    finally:
        for engine in engines.values():
            engine.close()
        dcgm.close()


def panel_queries() -> list[tuple[str, str]]:
    return [(f"{name}: {panel['title']} [{i}]", target["expr"]) for name, build in DASHBOARDS.items()
            for panel in json.loads(render(build))["panels"] for i, target in enumerate(panel.get("targets", []))]


def concrete(expr: str, cluster: str) -> str:
    """A panel's PromQL as Grafana sends it: every variable All (``.*``) but ``$cluster``."""
    for variable in VARIABLES:
        expr = re.sub(rf"\${variable}\b", cluster if variable == "cluster" else ".*", expr)
    for name, value in INTERVALS.items():
        expr = expr.replace(name, value)
    return expr


def recorded_names() -> list[str]:
    return sorted({rule["record"] for path in ("alerts/generated/slo-rules.yml", "alerts/rules/llm-alerts.yml")
                   for group in yaml.safe_load((REPO / path).read_text())["groups"] for rule in group["rules"]
                   if "record" in rule})


def without_cluster(result: list[dict]) -> dict[tuple, float]:
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "cluster")): float(r["value"][1])
            for r in result}


def with_cluster(result: list[dict]) -> dict[tuple, float]:
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result}


def relative(a: float, b: float) -> float:
    if a == b or math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


@pytest.fixture(scope="module")
def at(stack: Stack) -> float:
    """An evaluation time both hold complete data for: the windows full, remote_write flushed."""
    def arrived(expr: str, count: int, since: float) -> bool:
        return all(len([r for r in instant(stack.vm, f'timestamp({expr}{{cluster="{c.name}"}})', time.time())
                        if float(r["value"][1]) >= since]) == count for c in stack.clusters)

    def filled() -> bool:  # the longest window ($__range) full of samples of every target, in both clusters
        expr = f"count_over_time(llm_generation_tokens_total[{INTERVALS['$__range']}]) >= {FILL_SAMPLES}"
        return all(len(instant(c.prometheus, expr, time.time())) == len(PODS) for c in stack.clusters)

    wait_until(lambda: arrived("slo:sli_requests:rate5m", 3, 0) and arrived("llm_requests_running", 2, 0),
               "both clusters' samples and rule outputs in VictoriaMetrics", 60)
    # The window must lie wholly after the first samples (a partly filled window is where MetricsQL's
    # rate differs by design, test_where_metricsql_differs_...), and hold 55 of its 60 scrapes.
    first_samples = time.time()
    window = duration_seconds(INTERVALS["$__range"])
    wait_until(lambda: time.time() > first_samples + window + 3 and filled(),
               f"{INTERVALS['$__range']} of samples", 120)
    when = time.time()
    wait_until(lambda: arrived("slo:sli_requests:rate5m", 3, when) and arrived("llm_requests_running", 2, when),
               "remote_write to catch up with T", 20)
    return when


def queries_of(kind: str) -> list[tuple[str, str]]:
    if kind == "rule":
        return [(name, name) for name in recorded_names()]
    if kind == "panel":
        return panel_queries()
    return list(promql(UI_WINDOW).items())


def answers(jobs: list[tuple[str, str]], at: float) -> list[list[dict]]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda job: instant(job[0], job[1], at), jobs))


def test_rules_panels_and_ui_queries_agree_with_each_prometheus(stack: Stack, at: float) -> None:
    worst: dict[str, float] = {}
    where_worst: dict[str, str] = {}
    empty: dict[str, set[str]] = {}
    mismatched = []
    for kind in ("rule", "panel", "ui"):
        queries = queries_of(kind)
        jobs = []
        for cluster in stack.clusters:
            for _, expr in queries:
                if kind == "panel":  # the cluster variable: All on a Prometheus, the cluster on the store
                    jobs += [(cluster.prometheus, concrete(expr, ".*")), (stack.vm, concrete(expr, cluster.name))]
                else:  # the rules' and the UI's own queries keep `cluster` in their output
                    jobs += [(cluster.prometheus, expr), (stack.vm, expr)]
        results = iter(answers(jobs, at))
        for cluster in stack.clusters:
            for where, expr in queries:
                local, remote = next(results), next(results)
                if kind != "panel" or "$cluster" not in expr:  # not filtered by the query: keep this cluster's
                    remote = [r for r in remote if r["metric"].get("cluster") == cluster.name]
                a, b = without_cluster(local), without_cluster(remote)
                assert all("cluster" not in r["metric"] for r in local)  # external labels: remote_write only
                # (a stat panel sums what the variable selects: no `cluster` left in its answer)
                assert all(r["metric"].get("cluster", cluster.name) == cluster.name for r in remote), where
                if set(a) != set(b):
                    mismatched.append((cluster.name, where, sorted(set(a) ^ set(b))))
                    continue
                if not a:
                    empty.setdefault(kind, set()).add(where)
                figure = f"{kind} quantiles" if "histogram_quantile" in expr else kind  # reported apart
                worst[figure], where_worst[figure] = max([(worst.get(figure, 0.0), where_worst.get(figure, "")),
                                                          *((relative(a[k], b[k]), where) for k in a)])
    print(f"\nlargest relative difference, Prometheus vs VictoriaMetrics at T: {worst} in {where_worst}")
    assert mismatched == []
    # Rule outputs are Prometheus' own samples, stored by VictoriaMetrics to 12 significant digits.
    assert worst["rule"] < 1e-11
    assert sorted(worst) == ["panel", "panel quantiles", "rule", "ui", "ui quantiles"]
    assert all(worst[figure] < TOLERANCE for figure in worst)
    # Empty on both sides alike, and only these: the dcgm join rules need dcgm-exporter's own
    # (Kubernetes-mode) series, which this test's pods read through their exporters instead.
    assert empty == {"rule": {"pod:llm_gpu_memory_total_bytes:dcgm", "pod:llm_gpu_memory_used_bytes:dcgm",
                              "pod:llm_gpu_power_watts:dcgm", "pod:llm_gpu_utilization_ratio:dcgm"}}


def test_the_global_view_keeps_the_clusters_apart(stack: Stack, at: float) -> None:
    # Every panel that keeps `cluster` in its legend: with All clusters selected, the store answers
    # the union of the clusters' answers, one series per cluster, nothing summed across them.
    per_cluster = len(stack.clusters)
    jobs = [(stack.vm, concrete(expr, ".*")) for _, expr in panel_queries()]
    jobs += [(stack.vm, concrete(expr, c.name)) for _, expr in panel_queries() for c in stack.clusters]
    results = answers(jobs, at)
    queries = panel_queries()
    merged, kept_apart = [], 0
    for i, (where, _) in enumerate(queries):
        everything = results[i]
        if not all("cluster" in r["metric"] for r in everything) or not everything:
            continue  # a single stat or heatmap: it sums what the variable selects, by design
        kept_apart += 1
        union: dict[tuple, float] = {}
        for j in range(per_cluster):
            union |= with_cluster(results[len(queries) + i * per_cluster + j])
        if with_cluster(everything) != union:
            merged.append(where)
    assert merged == []
    print(f"panels kept apart by cluster: {kept_apart} of {len(queries)}")
    assert kept_apart >= 100

    # The rules: one SLO series per cluster, each that cluster's Prometheus' own figure.
    rule = 'slo:sli_requests:rate5m{slo="ttft"}'
    stored = {r["metric"]["cluster"]: float(r["value"][1]) for r in instant(stack.vm, rule, at)}
    local = {c.name: sum(float(r["value"][1]) for r in instant(c.prometheus, rule, at)) for c in stack.clusters}
    assert stored == pytest.approx(local, rel=1e-11)  # VictoriaMetrics keeps 12 significant digits
    per_second = {c: n / TICK_SECONDS + len(SPREAD_SECONDS) * 10 for c, n in CLUSTERS.items()}  # TTFT observations
    assert stored["east"] / stored["west"] == pytest.approx(per_second["east"] / per_second["west"], rel=0.01)

    # The UI: same-named targets of two clusters are two rows, `cluster/target`; against one
    # Prometheus (no `cluster` label) the rows are as they always were.
    stored_rows = {r["target"]: r for r in prometheus_rows(stack.vm, UI_WINDOW, at=at)}
    assert sorted(stored_rows) == [f"{c}/{pod}" for c in CLUSTERS for pod in PODS]
    worst = 0.0
    for cluster in stack.clusters:
        rows = prometheus_rows(cluster.prometheus, UI_WINDOW, at=at)
        assert [r["target"] for r in rows] == list(PODS)
        for row in rows:
            remote = stored_rows[f"{cluster.name}/{row['target']}"]
            assert [c for c in COLUMNS if (row[c] is None) != (remote[c] is None)] == []
            worst = max([worst, *(relative(row[c], remote[c]) for c in COLUMNS[3:] if row[c] is not None)])
    print(f"UI rows, largest relative difference: {worst}")
    assert worst < TOLERANCE


def test_where_metricsql_differs_a_window_longer_than_the_data(stack: Stack, at: float) -> None:
    """A rate over a window the series only partly fills (a new pod, a restart, a gap): PromQL
    extrapolates at most about a scrape interval past the samples and divides by the whole window,
    MetricsQL divides the increase by the time its samples span. Prometheus reads samples/window
    of the rate VictoriaMetrics reads, well beyond 1%: the one difference measured here, and why
    the comparisons above use windows the data fills."""
    ratios = []
    for cluster in stack.clusters:
        local = without_cluster(instant(cluster.prometheus, "rate(llm_generation_tokens_total[5m])", at))
        remote = without_cluster([r for r in instant(stack.vm, "rate(llm_generation_tokens_total[5m])", at)
                                  if r["metric"]["cluster"] == cluster.name])
        samples = without_cluster(instant(cluster.prometheus, "count_over_time(llm_generation_tokens_total[5m])", at))
        assert set(local) == set(remote) and len(local) == len(PODS)
        for key, value in local.items():
            [n] = [v for k, v in samples.items() if set(k) <= set(key)]  # count_over_time drops the name
            ratios.append(value / remote[key])
            # scrapes 1 s apart: the samples span n - 1 s, Prometheus extrapolates less than 1 s each way
            assert (n - 1) / 300 < value / remote[key] < (n + 1) / 300, (cluster.name, key, n)
    print(f"partly filled 5m window: Prometheus/VictoriaMetrics rate {min(ratios):.4f}..{max(ratios):.4f}")
