"""Grafana dashboards as code (grafana-foundation-sdk), from the schema and the SLO rule names.

``infersight dashboards`` writes grafana/dashboards/*.json; a test fails when the committed
files differ from a fresh generation, and an end-to-end test runs every panel's PromQL against
a real Prometheus. Every query filters on the dashboard variables, guards ratios against zero
traffic with ``(x > 0)``, and every panel has a unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    VariableHide,
    VariableRefresh,
    VariableSort,
)

from infersight.exporter.schema import M, UnifiedMetric
from infersight.alerts.slo_rules import BUDGET_REMAINING_RECORD, OBJECTIVE_RECORD, burn_rate_record, error_ratio_record

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "infersight"
RATE = "$__rate_interval"

# Every engine series: the dashboard variables. GPU and target series carry no model label.
SEL = 'engine=~"$engine",model=~"$model",target=~"$target",namespace=~"$namespace"'
SEL_TARGET = 'engine=~"$engine",target=~"$target",namespace=~"$namespace"'
BY = "engine, model"


def _rate(metric: UnifiedMetric, selector: str = SEL, suffix: str = "") -> str:
    return f"rate({metric.name}{suffix}{{{selector}}}[{RATE}])"


def _quantile(q: float, metric: UnifiedMetric, by: str = BY) -> str:
    """histogram_quantile over the engines' own buckets (Prometheus semantics)."""
    return f"histogram_quantile({q}, sum by ({by}, le) ({_rate(metric, SEL, '_bucket')}))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def _panel(kind: str, title: str, unit: str, queries: list[Query], description: str = "", width: int = 12,
           height: int = 8):
    builder = {"timeseries": timeseries.Panel, "stat": stat.Panel, "heatmap": heatmap.Panel}[kind]()
    builder = builder.title(title).datasource(DATASOURCE).unit(unit).span(width).height(height)
    if description:
        builder = builder.description(description)
    for i, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + i))
        if kind == "heatmap":
            target = target.format("heatmap")
        builder = builder.with_target(target)
    return builder


def _variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
    board = board.with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    for name, label, source in (("namespace", "Namespace", f"label_values({M.EXPORTER_TARGET_UP.name}, namespace)"),
                                ("engine", "Engine", f"label_values({M.EXPORTER_TARGET_UP.name}, engine)"),
                                ("model", "Model", f"label_values({M.REQUESTS.name}, model)"),
                                ("target", "Target", f"label_values({M.EXPORTER_TARGET_UP.name}, target)")):
        board = board.with_variable(
            dashboard.QueryVariable(name).label(label).datasource(DATASOURCE).query(source)
            .multi(True).include_all(True).all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC).hide(VariableHide.DONT_HIDE))
    return board


def _board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags([TAG]).refresh("30s")
             .time("now-1h", "now").timezone("browser").editable()
             .link(dashboard.DashboardLink("infersight").type(DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(True).keep_time(True)))
    return _variables(board)


OUTPUT_TOKENS_PER_SECOND = f"sum by ({BY}) ({_rate(M.GENERATION_TOKENS)})"
ERROR_RATIO = (f'sum by ({BY}) ({_rate(M.REQUESTS, SEL + ",outcome=" + chr(34) + "error" + chr(34))})'
               f' / (sum by ({BY}) ({_rate(M.REQUESTS)}) > 0)')
COST_PER_MILLION_OUTPUT = (f"sum by (engine, target) ({M.HOURLY_COST_DOLLARS.name}{{{SEL_TARGET}}}) / 3600 * 1e6"
                           f" / (sum by (engine, target) ({_rate(M.GENERATION_TOKENS)}) > 0)")


def comparison() -> dashboard.Dashboard:
    board = _board("infersight-comparison", "LLM engines: comparison",
                   "Engines side by side in infersight's unified metrics: throughput, latency, saturation, errors, cost.")
    panels = [
        ("Output tokens/s", "short", [Query(OUTPUT_TOKENS_PER_SECOND, "{{engine}} {{model}}")]),
        ("TTFT p50 / p99", "s", [Query(_quantile(0.5, M.TIME_TO_FIRST_TOKEN), "p50 {{engine}} {{model}}"),
                                 Query(_quantile(0.99, M.TIME_TO_FIRST_TOKEN), "p99 {{engine}} {{model}}")]),
        ("Inter-token latency p50", "s", [Query(_quantile(0.5, M.INTER_TOKEN_LATENCY), "{{engine}} {{model}}")]),
        ("End-to-end latency p99", "s", [Query(_quantile(0.99, M.REQUEST_DURATION), "{{engine}} {{model}}")]),
        ("KV-cache usage", "percentunit",
         [Query(f"avg by ({BY}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", "{{engine}} {{model}}")]),
        ("GPU utilization", "percentunit",
         [Query(f"avg by (engine, target) ({M.GPU_UTILIZATION_RATIO.name}{{{SEL_TARGET}}})", "{{engine}} {{target}}")]),
        ("Requests waiting", "short",
         [Query(f"sum by ({BY}) ({M.REQUESTS_WAITING.name}{{{SEL}}})", "{{engine}} {{model}}")]),
        ("Error ratio", "percentunit", [Query(ERROR_RATIO, "{{engine}} {{model}}")]),
        ("$ per 1M output tokens", "currencyUSD", [Query(COST_PER_MILLION_OUTPUT, "{{engine}} {{target}}")]),
    ]
    for title, unit, queries in panels:
        board = board.with_panel(_panel("timeseries", title, unit, queries, width=8))
    return board


def detail() -> dashboard.Dashboard:
    board = _board("infersight-detail", "LLM engines: detail",
                   "One engine in depth: latency distributions, queue and batch, KV cache, tokens, outcomes, GPUs, "
                   "and the exporter's view of each target.")
    latency = [(M.TIME_TO_FIRST_TOKEN, "Time to first token"), (M.INTER_TOKEN_LATENCY, "Inter-token latency"),
               (M.REQUEST_DURATION, "End-to-end latency"), (M.REQUEST_QUEUE, "Queue time")]
    board = board.with_row(dashboard.Row("Latency"))
    for metric, title in latency:
        board = board.with_panel(_panel("timeseries", f"{title} p50 / p90 / p99", "s",
                                        [Query(_quantile(q, metric), f"p{int(q * 100)} {{{{engine}}}} {{{{model}}}}")
                                         for q in (0.5, 0.9, 0.99)], width=6))
    board = board.with_panel(_panel(
        "heatmap", "TTFT distribution", "s",
        [Query(f"sum by (le) (increase({M.TIME_TO_FIRST_TOKEN.name}_bucket{{{SEL}}}[{RATE}]))", "{{le}}")], width=12))
    board = board.with_panel(_panel(
        "heatmap", "Inter-token latency distribution", "s",
        [Query(f"sum by (le) (increase({M.INTER_TOKEN_LATENCY.name}_bucket{{{SEL}}}[{RATE}]))", "{{le}}")], width=12))
    board = board.with_row(dashboard.Row("Load and saturation"))
    board = board.with_panel(_panel("timeseries", "Queue vs running", "short", [
        Query(f"sum by ({BY}) ({M.REQUESTS_WAITING.name}{{{SEL}}})", "waiting {{engine}} {{model}}"),
        Query(f"sum by ({BY}) ({M.REQUESTS_RUNNING.name}{{{SEL}}})", "running {{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("timeseries", "KV-cache usage min / mean / max", "percentunit", [
        Query(f"{agg} by ({BY}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", f"{agg} {{{{engine}}}} {{{{model}}}}")
        for agg in ("min", "avg", "max")], width=8))
    board = board.with_panel(_panel("timeseries", "Preemptions/s", "short", [
        Query(f"sum by ({BY}) ({_rate(M.PREEMPTIONS)})", "{{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("timeseries", "Token throughput", "short", [
        Query(f"sum by ({BY}) ({_rate(M.PROMPT_TOKENS)})", "prompt {{engine}} {{model}}"),
        Query(OUTPUT_TOKENS_PER_SECOND, "output {{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("timeseries", "Finished requests/s by outcome", "reqps", [
        Query(f"sum by ({BY}, outcome) ({_rate(M.REQUESTS)})", "{{outcome}} {{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("timeseries", "Prefix-cache hit ratio", "percentunit", [
        Query(f"sum by ({BY}) ({_rate(M.PREFIX_CACHE_HITS)}) / (sum by ({BY}) ({_rate(M.PREFIX_CACHE_QUERIES)}) > 0)",
              "{{engine}} {{model}}")], width=8))
    board = board.with_row(dashboard.Row("GPUs"))
    for metric, title, unit in ((M.GPU_UTILIZATION_RATIO, "GPU utilization", "percentunit"),
                                (M.GPU_MEMORY_USED_BYTES, "GPU memory used", "bytes"),
                                (M.GPU_POWER_WATTS, "GPU power", "watt")):
        board = board.with_panel(_panel("timeseries", title, unit, [
            Query(f"{metric.name}{{{SEL_TARGET}}}", "{{target}} {{gpu}}")], width=8))
    board = board.with_row(dashboard.Row("Exporter"))
    board = board.with_panel(_panel("timeseries", "Targets up", "short", [
        Query(f"{M.EXPORTER_TARGET_UP.name}{{{SEL_TARGET}}}", "{{engine}} {{target}}")], width=6))
    board = board.with_panel(_panel("timeseries", "Scrape duration", "s", [
        Query(f"{M.EXPORTER_TARGET_SCRAPE_DURATION.name}{{{SEL_TARGET}}}", "{{engine}} {{target}}")], width=6))
    board = board.with_panel(_panel("timeseries", "Scrape errors/s by reason", "short", [
        Query(f"sum by (engine, target, reason) ({_rate(M.EXPORTER_SCRAPE_ERRORS, SEL_TARGET)})",
              "{{reason}} {{engine}} {{target}}")], width=6))
    board = board.with_panel(_panel("stat", "Signals missing", "short", [
        Query(f"count by (engine, target) ({M.EXPORTER_SIGNAL_AVAILABLE.name}{{{SEL_TARGET}}} == 0)"
              f" or count by (engine, target) ({M.EXPORTER_SIGNAL_AVAILABLE.name}{{{SEL_TARGET}}}) * 0",
              "{{engine}} {{target}}")],
        description="Unified signals a target stopped or never provided (an engine upgrade renames metrics).",
        width=6))
    return board


SLO_SEL = 'slo=~"$slo",engine=~"$engine",model=~"$model"'


def slos() -> dashboard.Dashboard:
    board = _board("infersight-slos", "LLM engines: SLOs",
                   "Attainment, burn rates and error budget of the SLOs in alerts/slos.yaml, and the alerts firing.")
    board = board.with_variable(
        dashboard.QueryVariable("slo").label("SLO").datasource(DATASOURCE).query(f"label_values({OBJECTIVE_RECORD}, slo)")
        .multi(True).include_all(True).all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC))
    board = board.with_panel(_panel("stat", "Attainment over the SLO window", "percentunit", [
        Query(f"1 - {error_ratio_record('30d')}{{{SLO_SEL}}}", "{{slo}} {{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("stat", "Error budget remaining", "percentunit", [
        Query(f"{BUDGET_REMAINING_RECORD}{{{SLO_SEL}}}", "{{slo}} {{engine}} {{model}}")], width=8))
    board = board.with_panel(_panel("stat", "Alerts firing", "short", [
        Query('count by (slo, severity) (ALERTS{alertname="LLMErrorBudgetBurn",alertstate="firing",'
              'slo=~"$slo",engine=~"$engine",model=~"$model"}) or vector(0)', "{{slo}} {{severity}}")], width=8))
    board = board.with_panel(_panel("timeseries", "Burn rate by window", "short", [
        Query(f"{burn_rate_record(window)}{{{SLO_SEL}}}", f"{window} {{{{slo}}}} {{{{engine}}}} {{{{model}}}}")
        for window in ("5m", "1h", "6h", "1d", "3d")],
        description="1 = spending the error budget exactly over the SLO window; pages at 14.4 (1h) and 6 (6h).",
        width=24))
    board = board.with_panel(_panel("timeseries", "SLI error ratio (5m)", "percentunit", [
        Query(f"{error_ratio_record('5m')}{{{SLO_SEL}}}", "{{slo}} {{engine}} {{model}}")], width=24))
    return board


DASHBOARDS = {"infersight-comparison.json": comparison, "infersight-detail.json": detail,
              "infersight-slos.json": slos}


def render(build) -> str:
    return json.dumps(build().build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = folder / name
        path.write_text(render(build), encoding="utf-8")
        written.append(path)
    return written
