"""Grafana dashboards as code (grafana-foundation-sdk), from the schema, the SLO spec and the rule
names.

``infersight dashboards`` writes grafana/dashboards/*.json; a test fails when the committed
files differ from a fresh generation, and end-to-end tests run every panel's PromQL against a
real Prometheus scraping replicas in two namespaces.

Conventions, on every board:
- variables chain datasource -> cluster -> namespace -> engine -> model -> target (a replica:
  the pod's name under the Helm chart), and every query filters on all of them;
- aggregations keep the workload: ``cluster, namespace, engine, model`` (plus ``target`` for a
  replica); gauges of saturation take the max (the fullest replica), never the mean;
- every ratio divides by ``(x > 0)`` (idle is "No traffic", not NaN); ratios are 0-1 axes;
- every latency shows the mean (from ``_sum``/``_count``) beside its percentiles: Triton core's
  cumulative counters are ``+Inf``-only histograms, whose quantiles are NaN but whose mean is real;
- heatmaps are per engine (bucket bounds differ between engines), from ``rate``, uncalculated;
- every panel has a unit, thresholds and a description naming the metrics it reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, table, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphThresholdsStyleMode,
    HeatmapCellLayout,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DashboardSpecialValueMapOptions,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    SpecialValueMap,
    SpecialValueMatch,
    Threshold,
    ThresholdsMode,
    ValueMappingResult,
    VariableHide,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.text import TextMode

from infersight.alerts.slo_rules import (
    BUDGET_REMAINING_RECORD,
    ERRORS_RECORD,
    OBJECTIVE_RECORD,
    REQUESTS_RECORD,
    SPEC_DECODE_ACCEPTANCE_RECORD,
    WINDOWS,
    burn_rate_record,
    error_ratio_record,
    sli_error_ratio,
)
from infersight.alerts.slo_spec import SloSpec, duration_seconds, load_spec
from infersight.exporter.schema import M, UnifiedMetric

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "infersight"
RATE = "$__rate_interval"

# The variables, in their chain order; each query filters on all of them.
VARIABLES = ("cluster", "namespace", "engine", "model", "target")
SEL = ",".join(f'{v}=~"${v}"' for v in VARIABLES)
SEL_TARGET = ",".join(f'{v}=~"${v}"' for v in VARIABLES if v != "model")  # GPU and exporter series: no model
WORKLOAD = "cluster, namespace, engine, model"
REPLICA = "cluster, namespace, engine, model, target"
TARGET = "cluster, namespace, engine, target"
LEGEND_WORKLOAD = "{{namespace}} {{engine}} {{model}}"
LEGEND_REPLICA = "{{namespace}} {{target}}"

# Thresholds (color steps: the base color, then (value, color) from that value up).
GOOD = [("green", None)]
KV_STEPS = [("green", None), ("orange", 0.9), ("red", 0.98)]
ERROR_STEPS = [("green", None), ("orange", 0.001), ("red", 0.01)]
TTFT_STEPS = [("green", None), ("orange", 0.5), ("red", 2)]
ITL_STEPS = [("green", None), ("orange", 0.05), ("red", 0.1)]
DOWN_STEPS = [("green", None), ("red", 1)]
BUDGET_STEPS = [("red", None), ("orange", 0), ("green", 0.25)]
BURN_STEPS = [("green", None), ("yellow", 1), ("orange", 3), ("red", 6), ("dark-red", 14.4)]


def _rate(metric: UnifiedMetric | str, selector: str = SEL, suffix: str = "") -> str:
    name = metric if isinstance(metric, str) else metric.name
    return f"rate({name}{suffix}{{{selector}}}[{RATE}])"


def _quantile(q: float, metric: UnifiedMetric, by: str = WORKLOAD) -> str:
    """histogram_quantile over the engines' own buckets (Prometheus semantics), never across engines."""
    return f"histogram_quantile({q}, sum by ({by}, le) ({_rate(metric, SEL, '_bucket')}))"


def _mean(metric: UnifiedMetric, by: str = WORKLOAD) -> str:
    return (f"sum by ({by}) ({_rate(metric, SEL, '_sum')})"
            f" / (sum by ({by}) ({_rate(metric, SEL, '_count')}) > 0)")


def _gpu(metric: UnifiedMetric) -> str:
    """A GPU gauge from the exporter's GPU source, or dcgm-exporter's own series joined on pod
    (the pod:<metric>:dcgm rules in alerts/rules/llm-alerts.yml)."""
    return f"({metric.name}{{{SEL_TARGET}}} or pod:{metric.name}:dcgm{{{SEL_TARGET}}})"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


def _latency(metric: UnifiedMetric, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99), by: str = WORKLOAD,
             legend: str = LEGEND_WORKLOAD) -> list[Query]:
    return [*(Query(_quantile(q, metric, by), f"p{q * 100:g} {legend}") for q in quantiles),
            Query(_mean(metric, by), f"mean {legend}")]


def _steps(steps: list[tuple[str, float | None]]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for color, value in steps])


NO_TRAFFIC = [SpecialValueMap(options=DashboardSpecialValueMapOptions(
    match=SpecialValueMatch.NULL_AND_NAN, result=ValueMappingResult(text="No traffic")))]


def _targets(builder, queries: list[Query], fmt: PromQueryFormat | None = None):
    for i, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + i))
        if query.instant:
            target = target.instant()
        if fmt is not None:
            target = target.format(fmt)
        builder = builder.with_target(target)
    return builder


def _common(builder, title: str, unit: str, description: str, width: int, height: int,
            steps: list[tuple[str, float | None]]):
    return (builder.title(title).description(description).datasource(DATASOURCE).unit(unit).span(width)
            .height(height).thresholds(_steps(steps)))


def ts(title: str, unit: str, queries: list[Query], description: str, *, width: int = 12, height: int = 8,
       steps: list[tuple[str, float | None]] = GOOD, lines: bool = False, ratio: bool = False,
       stacked: bool = False, min_zero: bool = True) -> timeseries.Panel:
    """A time series with a legend table (mean, max, last), a shared tooltip, threshold lines where
    they mean something, and a 0-1 axis for ratios."""
    panel = _common(timeseries.Panel(), title, unit, description, width, height, steps)
    panel = (panel.legend(common_builder.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                          .placement(LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max", "lastNotNull"]))
             .tooltip(common_builder.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
             .fill_opacity(10 if not stacked else 40).line_width(1))
    if min_zero:
        panel = panel.min(0)
    if ratio:
        panel = panel.min(0).max(1)
    if lines:
        panel = panel.thresholds_style(common_builder.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    if stacked:
        panel = panel.stacking(common_builder.StackingConfig().mode(StackingMode.NORMAL))
    return _targets(panel, queries)


def stat_panel(title: str, unit: str, queries: list[Query], description: str, *, steps, width: int = 3,
               height: int = 4) -> stat.Panel:
    """A top-row figure colored by its thresholds; idle reads "No traffic"."""
    panel = _common(stat.Panel(), title, unit, description, width, height, steps)
    panel = panel.mappings(NO_TRAFFIC).no_value("No traffic")
    return _targets(panel, queries)


def heatmap_panel(title: str, metric: UnifiedMetric, description: str) -> heatmap.Panel:
    """One heatmap per engine (repeated over $engine): engines' bucket bounds differ, and summing
    their buckets by le would mix them. Per-second rates at each step, shown as exported."""
    panel = (heatmap.Panel().title(title).description(description).datasource(DATASOURCE).unit("s").span(12).height(8)
             .thresholds(_steps(GOOD)).repeat("engine").repeat_direction("h").max_per_row(2).calculate(False)
             .y_axis(heatmap.YAxisConfig().unit("s"))
             .rows_frame(heatmap.RowsHeatmapOptions().layout(HeatmapCellLayout.LE)))
    return _targets(panel, [Query(f"sum by (le) ({_rate(metric, SEL, '_bucket')})", "{{le}}")],
                    PromQueryFormat.HEATMAP)


def text_panel(title: str, content: str, width: int = 24, height: int = 5) -> text.Panel:
    return text.Panel().title(title).mode(TextMode.MARKDOWN).content(content).span(width).height(height)


# --- variables and the board ---------------------------------------------------------------------

def _variable_query(name: str) -> str:
    earlier = VARIABLES[:VARIABLES.index(name)]
    selector = ",".join(f'{v}=~"${v}"' for v in earlier if v != "model")
    source = {"cluster": M.EXPORTER_BUILD_INFO, "model": M.REQUESTS}.get(name, M.EXPORTER_TARGET_UP)
    if name == "target":  # the replicas serving the chosen models
        source = M.REQUESTS_RUNNING
        selector = ",".join(f'{v}=~"${v}"' for v in earlier)
    return f"label_values({source.name}{{{selector}}}, {name})" if selector else f"label_values({source.name}, {name})"


LABELS = {"cluster": "Cluster", "namespace": "Namespace", "engine": "Engine", "model": "Model",
          "target": "Replica (target)"}


def _variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
    board = board.with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    for name in VARIABLES:
        board = board.with_variable(
            dashboard.QueryVariable(name).label(LABELS[name]).datasource(DATASOURCE).query(_variable_query(name))
            .multi(True).include_all(True).all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC).hide(VariableHide.DONT_HIDE))
    return board


def _board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags([TAG]).refresh("30s")
             .time("now-1h", "now").timezone("browser").editable().tooltip(DashboardCursorSync.CROSSHAIR)
             .link(dashboard.DashboardLink("infersight").type(DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(True).keep_time(True)))
    return _variables(board)


# --- shared queries -------------------------------------------------------------------------------

OUTPUT_TOKENS_PER_SECOND = f"sum by ({WORKLOAD}) ({_rate(M.GENERATION_TOKENS)})"
FINISHED = 'outcome=~"success|error"'
ERROR_RATIO = (f'sum by ({WORKLOAD}) ({_rate(M.REQUESTS, SEL + ",outcome=" + chr(34) + "error" + chr(34))})'
               f" / (sum by ({WORKLOAD}) ({_rate(M.REQUESTS, SEL + ',' + FINISHED)}) > 0)")
# The targets that serve the chosen models: cost (per target, no model label) follows them.
SERVING = f"on (cluster, namespace, engine, target) group by (cluster, namespace, engine, target) ({M.GENERATION_TOKENS.name}{{{SEL}}})"
COST_PER_MILLION_OUTPUT = (
    f"sum by (cluster, namespace, engine) ({M.HOURLY_COST_DOLLARS.name}{{{SEL_TARGET}}} and {SERVING}) / 3600 * 1e6"
    f" / (sum by (cluster, namespace, engine) ({_rate(M.GENERATION_TOKENS, SEL_TARGET)} and {SERVING}) > 0)")
# The GPUs' energy (joules per second: watts, from the energy counters) over the same targets' output tokens.
ENERGY_PER_MILLION_OUTPUT = (
    f"sum by (cluster, namespace, engine) ({_rate(M.GPU_ENERGY_JOULES, SEL_TARGET)} and {SERVING}) * 1e6"
    f" / (sum by (cluster, namespace, engine) ({_rate(M.GENERATION_TOKENS, SEL_TARGET)} and {SERVING}) > 0)")
SPEC_DECODE_ACCEPTANCE = (f"sum by ({WORKLOAD}) ({_rate(M.SPEC_DECODE_ACCEPTED_TOKENS)})"
                          f" / (sum by ({WORKLOAD}) ({_rate(M.SPEC_DECODE_DRAFT_TOKENS)}) > 0)")


def _stat_row(board: dashboard.Dashboard) -> dashboard.Dashboard:
    """The top row: the figures to read first, each colored by its threshold."""
    figures = [
        ("Requests/s", "reqps", f"sum({_rate(M.REQUESTS)})", GOOD,
         f"Finished requests per second, all outcomes ({M.REQUESTS.name})."),
        ("Output tokens/s", "short", f"sum({_rate(M.GENERATION_TOKENS)})", GOOD,
         f"Generated tokens per second ({M.GENERATION_TOKENS.name})."),
        ("Error ratio", "percentunit",
         f'sum({_rate(M.REQUESTS, SEL + ",outcome=" + chr(34) + "error" + chr(34))})'
         f" / (sum({_rate(M.REQUESTS, SEL + ',' + FINISHED)}) > 0)",
         ERROR_STEPS, f"Errors among finished requests (outcome error / success+error, {M.REQUESTS.name})."),
        ("TTFT p99, worst workload", "s", f"max({_quantile(0.99, M.TIME_TO_FIRST_TOKEN)})", TTFT_STEPS,
         f"The highest p99 time to first token of any workload ({M.TIME_TO_FIRST_TOKEN.name}); orange at the "
         "0.5 s SLO threshold."),
        ("ITL p99, worst workload", "s", f"max({_quantile(0.99, M.INTER_TOKEN_LATENCY)})", ITL_STEPS,
         f"The highest p99 inter-token latency of any workload ({M.INTER_TOKEN_LATENCY.name}); orange at the "
         "50 ms SLO threshold."),
        ("KV cache, fullest replica", "percentunit", f"max({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", KV_STEPS,
         f"KV-cache usage of the fullest replica ({M.KV_CACHE_USAGE_RATIO.name}); LLMKVCacheSaturated above 0.9."),
        ("Requests waiting", "short", f"sum({M.REQUESTS_WAITING.name}{{{SEL}}})", [("green", None), ("orange", 50)],
         f"Requests queued, all replicas ({M.REQUESTS_WAITING.name})."),
        ("Replicas down", "short", f"count({M.EXPORTER_TARGET_UP.name}{{{SEL_TARGET}}} == 0) or vector(0)", DOWN_STEPS,
         f"Targets the exporters cannot scrape ({M.EXPORTER_TARGET_UP.name} == 0), a replica loading its model "
         "included."),
    ]
    for title, unit, expr, steps, description in figures:
        board = board.with_panel(stat_panel(title, unit, [Query(expr, "")], description, steps=steps))
    return board


# --- the boards -----------------------------------------------------------------------------------

def comparison() -> dashboard.Dashboard:
    board = _board("infersight-comparison", "LLM engines: comparison",
                   "Workloads side by side in infersight's unified metrics: throughput, latency (percentiles and "
                   "means), saturation, errors, cost. A workload is an engine serving a model in a namespace.")
    board = _stat_row(board.with_row(dashboard.Row("Overview")))
    board = board.with_row(dashboard.Row("Throughput and latency"))
    panels = [
        ts("Output tokens/s", "short", [Query(OUTPUT_TOKENS_PER_SECOND, LEGEND_WORKLOAD)],
           f"Generated tokens per second by workload ({M.GENERATION_TOKENS.name}).", width=8),
        ts("TTFT p50 / p99 / mean", "s", _latency(M.TIME_TO_FIRST_TOKEN, (0.5, 0.99)),
           f"Time to first token by workload ({M.TIME_TO_FIRST_TOKEN.name}); the mean from _sum/_count.",
           width=8, steps=TTFT_STEPS, lines=True),
        ts("Inter-token latency p50 / p99 / mean", "s", _latency(M.INTER_TOKEN_LATENCY, (0.5, 0.99)),
           f"Gap between output tokens by workload ({M.INTER_TOKEN_LATENCY.name}).", width=8, steps=ITL_STEPS,
           lines=True),
        ts("TPOT p50 / mean", "s", _latency(M.TIME_PER_OUTPUT_TOKEN, (0.5,)),
           f"Per-request time per output token ({M.TIME_PER_OUTPUT_TOKEN.name}): TGI's only per-token latency.",
           width=8),
        ts("End-to-end latency p99 / mean", "s", _latency(M.REQUEST_DURATION, (0.99,)),
           f"Request duration by workload ({M.REQUEST_DURATION.name}); Triton core exports only +Inf buckets: "
           "read its mean.", width=8),
        ts("Queue time mean", "s", [Query(_mean(M.REQUEST_QUEUE), LEGEND_WORKLOAD)],
           f"Mean time requests waited before scheduling ({M.REQUEST_QUEUE.name}, _sum/_count).", width=8),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    board = board.with_row(dashboard.Row("Saturation, errors and cost"))
    panels = [
        ts("KV-cache usage, fullest replica", "percentunit",
           [Query(f"max by ({WORKLOAD}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", LEGEND_WORKLOAD)],
           f"The fullest replica's KV cache by workload ({M.KV_CACHE_USAGE_RATIO.name}, max as the alert).",
           width=8, steps=KV_STEPS, lines=True, ratio=True),
        ts("GPU utilization", "percentunit",
           [Query(f"avg by (cluster, namespace, engine) {_gpu(M.GPU_UTILIZATION_RATIO)}", "{{namespace}} {{engine}}")],
           f"Mean GPU utilization by namespace and engine ({M.GPU_UTILIZATION_RATIO.name}, or dcgm-exporter joined "
           "on pod).", width=8, ratio=True),
        ts("Requests waiting", "short",
           [Query(f"sum by ({WORKLOAD}) ({M.REQUESTS_WAITING.name}{{{SEL}}})", LEGEND_WORKLOAD)],
           f"Queued requests by workload ({M.REQUESTS_WAITING.name}).", width=8, steps=[("green", None), ("orange", 50)],
           lines=True),
        ts("Error ratio", "percentunit", [Query(ERROR_RATIO, LEGEND_WORKLOAD)],
           f"Server errors among requests that ran (outcome error / success + error, {M.REQUESTS.name}); rejected "
           "(invalid, 4xx, admission) and aborted requests are left out, the same on every engine.", width=8,
           steps=ERROR_STEPS, lines=True, ratio=True),
        ts("$ per 1M output tokens", "currencyUSD", [Query(COST_PER_MILLION_OUTPUT, "{{namespace}} {{engine}}")],
           f"Hourly cost of the targets serving the chosen models ({M.HOURLY_COST_DOLLARS.name}) over their output "
           f"tokens ({M.GENERATION_TOKENS.name}); LLMCostPerMillionOutputTokensHigh above $10.", width=8,
           steps=[("green", None), ("orange", 10)], lines=True),
        ts("GPU joules per 1M output tokens", "joule", [Query(ENERGY_PER_MILLION_OUTPUT, "{{namespace}} {{engine}}")],
           f"Energy the GPUs of the targets serving the chosen models used ({M.GPU_ENERGY_JOULES.name}: dcgm-exporter, "
           f"Triton or NVML energy counters through the exporter) over their output tokens "
           f"({M.GENERATION_TOKENS.name}); beside $ per 1M. No data where no GPU energy source is configured.",
           width=8),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    return board


def detail() -> dashboard.Dashboard:
    board = _board("infersight-detail", "LLM engines: detail",
                   "One workload in depth: latency (percentiles, means, distributions), queue and KV cache, "
                   "throughput and workload shape, GPUs, and the exporter's view of each replica.")
    board = _stat_row(board.with_row(dashboard.Row("Overview")))
    board = board.with_row(dashboard.Row("Latency"))
    for metric, title, steps in ((M.TIME_TO_FIRST_TOKEN, "Time to first token", TTFT_STEPS),
                                 (M.INTER_TOKEN_LATENCY, "Inter-token latency", ITL_STEPS),
                                 (M.TIME_PER_OUTPUT_TOKEN, "Time per output token (TPOT)", GOOD),
                                 (M.REQUEST_DURATION, "End-to-end latency", GOOD),
                                 (M.REQUEST_QUEUE, "Queue time", GOOD),
                                 (M.REQUEST_PREFILL, "Prefill time", GOOD),
                                 (M.REQUEST_DECODE, "Decode time", GOOD)):
        board = board.with_panel(ts(f"{title} p50 / p90 / p99 / mean", "s", _latency(metric),
                                    f"{metric.help.rstrip('.')} ({metric.name}); the mean from _sum/_count stays "
                                    "real where an engine exports only +Inf buckets (Triton core).",
                                    width=8, steps=steps,
                                    lines=steps is not GOOD))
    board = board.with_row(dashboard.Row("Latency distributions (one per engine)"))
    for metric, title in ((M.TIME_TO_FIRST_TOKEN, "TTFT distribution, $engine"),
                          (M.INTER_TOKEN_LATENCY, "Inter-token latency distribution, $engine")):
        board = board.with_panel(heatmap_panel(title, metric,
                                               f"Observations per second in each bucket of {metric.name}, per engine "
                                               "(its own bucket bounds)."))
    board = board.with_row(dashboard.Row("Load and saturation"))
    board = board.with_panel(ts("Queue vs running", "short", [
        Query(f"sum by ({WORKLOAD}) ({M.REQUESTS_WAITING.name}{{{SEL}}})", f"waiting {LEGEND_WORKLOAD}"),
        Query(f"sum by ({WORKLOAD}) ({M.REQUESTS_RUNNING.name}{{{SEL}}})", f"running {LEGEND_WORKLOAD}")],
        f"Requests waiting ({M.REQUESTS_WAITING.name}) and running ({M.REQUESTS_RUNNING.name}).", width=8))
    board = board.with_panel(ts("KV-cache usage min / mean / max", "percentunit", [
        Query(f"{agg} by ({WORKLOAD}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", f"{agg} {LEGEND_WORKLOAD}")
        for agg in ("min", "avg", "max")],
        f"KV-cache usage across the workload's replicas ({M.KV_CACHE_USAGE_RATIO.name}).", width=8, steps=KV_STEPS,
        lines=True, ratio=True))
    board = board.with_panel(ts("Preemptions/s", "short", [
        Query(f"sum by ({WORKLOAD}) ({_rate(M.PREEMPTIONS)})", LEGEND_WORKLOAD)],
        f"Requests preempted per second ({M.PREEMPTIONS.name}); LLMPreemptionStorm above 1/s per replica.", width=8,
        steps=[("green", None), ("red", 1)], lines=True))
    board = board.with_panel(ts("Requests waiting by reason", "short", [
        Query(f"sum by ({WORKLOAD}, reason) ({M.REQUESTS_WAITING_BY_REASON.name}{{{SEL}}})",
              "{{reason}} " + LEGEND_WORKLOAD)],
        f"Why requests wait ({M.REQUESTS_WAITING_BY_REASON.name}): capacity (the batch or KV cache is full: scale "
        "out) or deferred (LoRA budget, KV transfer: fix the constraint). vLLM 0.21+ only.", width=8, stacked=True))
    board = board.with_panel(ts("Admission rejections/s", "short", [
        Query(f"sum by ({WORKLOAD}) ({_rate(M.ADMISSION_REJECTIONS)})", LEGEND_WORKLOAD)],
        f"Requests refused by a queue limit per second ({M.ADMISSION_REJECTIONS.name}); counted as outcome "
        f"rejected where the engine reports the request ({M.REQUESTS.name}).", width=8,
        steps=[("green", None), ("red", 0.01)], lines=True))
    board = board.with_panel(ts("Ranks awake", "percentunit", [
        Query(f"min by ({WORKLOAD}) ({M.ENGINE_AWAKE_RATIO.name}{{{SEL}}})", LEGEND_WORKLOAD)],
        f"Share of the engine's ranks awake ({M.ENGINE_AWAKE_RATIO.name}, the least awake replica); 0 while it "
        "sleeps with its weights offloaded or discarded (vLLM sleep mode).", width=8, ratio=True,
        steps=[("red", None), ("green", 1)]))
    board = board.with_row(dashboard.Row("Throughput and workload shape"))
    board = board.with_panel(ts("Token throughput", "short", [
        Query(f"sum by ({WORKLOAD}) ({_rate(M.PROMPT_TOKENS)})", f"prompt {LEGEND_WORKLOAD}"),
        Query(OUTPUT_TOKENS_PER_SECOND, f"output {LEGEND_WORKLOAD}")],
        f"Prompt ({M.PROMPT_TOKENS.name}) and output ({M.GENERATION_TOKENS.name}) tokens per second.", width=8))
    board = board.with_panel(ts("Finished requests/s by outcome", "reqps", [
        Query(f"sum by ({WORKLOAD}, outcome) ({_rate(M.REQUESTS)})", "{{outcome}} " + LEGEND_WORKLOAD)],
        f"Finished requests per second by outcome ({M.REQUESTS.name}).", width=8, stacked=True))
    board = board.with_panel(ts("Outcome share", "percentunit", [
        Query(f"sum by ({WORKLOAD}, outcome) ({_rate(M.REQUESTS)}) / on ({WORKLOAD}) group_left ()"
              f" (sum by ({WORKLOAD}) ({_rate(M.REQUESTS)}) > 0)", "{{outcome}} " + LEGEND_WORKLOAD)],
        f"How requests finish (success, error, aborted by the client) as shares ({M.REQUESTS.name}).", width=8,
        ratio=True, stacked=True))
    for metric, title in ((M.PROMPT_TOKENS, "Mean prompt length"), (M.GENERATION_TOKENS, "Mean output length")):
        board = board.with_panel(ts(f"{title} (tokens per request)", "short", [
            Query(f"sum by ({WORKLOAD}) ({_rate(metric)}) / (sum by ({WORKLOAD}) ({_rate(M.REQUESTS)}) > 0)",
                  LEGEND_WORKLOAD)],
            f"{metric.name} per finished request ({M.REQUESTS.name}): longer prompts raise TTFT, longer outputs "
            "hold KV cache.", width=8))
    board = board.with_panel(ts("Prefix-cache hit ratio", "percentunit", [
        Query(f"sum by ({WORKLOAD}) ({_rate(M.PREFIX_CACHE_HITS)}) / (sum by ({WORKLOAD}) "
              f"({_rate(M.PREFIX_CACHE_QUERIES)}) > 0)", LEGEND_WORKLOAD)],
        f"Prompt tokens found in the prefix cache ({M.PREFIX_CACHE_HITS.name} / {M.PREFIX_CACHE_QUERIES.name}).",
        width=8, ratio=True))
    board = board.with_panel(ts("Prompt tokens served from cache", "percentunit", [
        Query(f"sum by ({WORKLOAD}) ({_rate(M.PROMPT_TOKENS_CACHED)}) / (sum by ({WORKLOAD}) "
              f"({_rate(M.PROMPT_TOKENS)}) > 0)", LEGEND_WORKLOAD)],
        f"Share of prompt tokens not computed: served from the GPU prefix cache, offloaded tiers or another "
        f"instance ({M.PROMPT_TOKENS_CACHED.name} / {M.PROMPT_TOKENS.name}).", width=8, ratio=True))
    board = board.with_panel(ts("Speculative decoding acceptance ratio", "percentunit", [
        Query(SPEC_DECODE_ACCEPTANCE, LEGEND_WORKLOAD)],
        f"Draft tokens accepted over draft tokens proposed ({M.SPEC_DECODE_ACCEPTED_TOKENS.name} / "
        f"{M.SPEC_DECODE_DRAFT_TOKENS.name}; recorded as {SPEC_DECODE_ACCEPTANCE_RECORD}): low means the draft "
        "model costs more than it saves.", width=8, ratio=True, steps=[("red", None), ("orange", 0.3), ("green", 0.6)],
        lines=True))
    board = board.with_panel(ts("Speculative decoding: tokens per draft", "short", [
        Query(f"1 + sum by ({WORKLOAD}) ({_rate(M.SPEC_DECODE_ACCEPTED_TOKENS)}) / (sum by ({WORKLOAD}) "
              f"({_rate(M.SPEC_DECODE_DRAFTS)}) > 0)", LEGEND_WORKLOAD)],
        f"Mean acceptance length: tokens each verification step yields, the accepted drafts plus the bonus token "
        f"({M.SPEC_DECODE_ACCEPTED_TOKENS.name} / {M.SPEC_DECODE_DRAFTS.name} + 1; engines that count no drafts, "
        "such as TensorRT-LLM, show none).", width=8))
    board = board.with_row(dashboard.Row("GPUs"))
    board = board.with_panel(ts("GPU utilization", "percentunit", [
        Query(_gpu(M.GPU_UTILIZATION_RATIO), "{{target}} {{gpu}}")],
        f"Busy fraction per GPU of each replica ({M.GPU_UTILIZATION_RATIO.name}, or dcgm-exporter joined on pod); "
        "LLMSchedulerStalled pages when a queue grows on GPUs under 10%.", width=8, ratio=True))
    board = board.with_panel(ts("GPU memory used %", "percentunit", [
        Query(f"sum by ({TARGET}, gpu) {_gpu(M.GPU_MEMORY_USED_BYTES)} / (sum by ({TARGET}, gpu) "
              f"{_gpu(M.GPU_MEMORY_TOTAL_BYTES)} > 0)", "{{target}} {{gpu}}")],
        f"{M.GPU_MEMORY_USED_BYTES.name} / {M.GPU_MEMORY_TOTAL_BYTES.name} per GPU (engines reserve most of it "
        "for the KV cache at start).", width=8, ratio=True, steps=[("green", None), ("orange", 0.95)], lines=True))
    board = board.with_panel(ts("GPU power", "watt", [Query(_gpu(M.GPU_POWER_WATTS), "{{target}} {{gpu}}")],
                                f"Power draw per GPU ({M.GPU_POWER_WATTS.name}).", width=8))
    board = board.with_panel(ts("GPU joules per 1M output tokens", "joule", [
        Query(ENERGY_PER_MILLION_OUTPUT, "{{namespace}} {{engine}}")],
        f"Energy of the serving targets' GPUs ({M.GPU_ENERGY_JOULES.name}) per million output tokens "
        f"({M.GENERATION_TOKENS.name}).", width=8))
    board = board.with_row(dashboard.Row("Exporter"))
    board = board.with_panel(ts("Targets up", "short", [
        Query(f"{M.EXPORTER_TARGET_UP.name}{{{SEL_TARGET}}}", LEGEND_REPLICA)],
        f"1 when the last scrape of the replica succeeded ({M.EXPORTER_TARGET_UP.name}); 0 while a model loads.",
        width=8, steps=[("red", None), ("green", 1)]))
    board = board.with_panel(ts("Scrape duration", "s", [
        Query(f"{M.EXPORTER_TARGET_SCRAPE_DURATION.name}{{{SEL_TARGET}}}", LEGEND_REPLICA)],
        f"Time the exporter's last scrape of each replica took ({M.EXPORTER_TARGET_SCRAPE_DURATION.name}).", width=8))
    board = board.with_panel(ts("Scrape errors/s by reason", "short", [
        Query(f"sum by ({TARGET}, reason) ({_rate(M.EXPORTER_SCRAPE_ERRORS, SEL_TARGET)})",
              "{{reason}} " + LEGEND_REPLICA)],
        f"Failed scrapes per second by reason ({M.EXPORTER_SCRAPE_ERRORS.name}).", width=8,
        steps=[("green", None), ("red", 0.01)]))
    board = board.with_panel(stat_panel("Signals missing", "short", [
        Query(f"count by ({TARGET}) ({M.EXPORTER_SIGNAL_AVAILABLE.name}{{{SEL_TARGET}}} == 0)"
              f" or count by ({TARGET}) ({M.EXPORTER_SIGNAL_AVAILABLE.name}{{{SEL_TARGET}}}) * 0", LEGEND_REPLICA)],
        f"Unified signals a replica does not provide ({M.EXPORTER_SIGNAL_AVAILABLE.name} == 0): an engine upgrade "
        "renames metrics; some engines never had some signals.", steps=[("green", None), ("orange", 1)], width=6))
    board = board.with_panel(stat_panel("GPU source up", "short", [
        Query(f"{M.EXPORTER_GPU_SOURCE_UP.name}{{{SEL_TARGET}}}", "{{target}} {{source}}")],
        f"1 when the replica's GPU source answered ({M.EXPORTER_GPU_SOURCE_UP.name}); none where the GPUs come "
        "from dcgm-exporter joined on pod.", steps=[("red", None), ("green", 1)], width=6))
    board = board.with_panel(stat_panel("Dropped series/s", "short", [
        Query(f"sum by ({TARGET}) ({_rate(M.EXPORTER_DROPPED_SERIES, SEL_TARGET)})", LEGEND_REPLICA)],
        f"Series not exported because a replica served more models than --max-models ({M.EXPORTER_DROPPED_SERIES.name}).",
        steps=[("green", None), ("red", 0.001)], width=6))
    board = board.with_panel(stat_panel("Exporter versions", "short", [
        Query(f"count by (cluster, namespace, version) ({M.EXPORTER_BUILD_INFO.name}{{cluster=~\"$cluster\","
              f"namespace=~\"$namespace\"}} * on (cluster, namespace, job, instance) group_left group by "
              f"(cluster, namespace, job, instance) ({M.EXPORTER_TARGET_UP.name}{{{SEL_TARGET}}}))",
              "{{namespace}} {{version}}")],
        f"Exporters by version ({M.EXPORTER_BUILD_INFO.name}): two versions at once mean a rollout in progress.",
        steps=GOOD, width=6))
    return board


def instances() -> dashboard.Dashboard:
    board = _board("infersight-instances", "LLM engines: instances",
                   "Every replica side by side: health, load balance, latency and saturation by pod. Click a "
                   "replica to open it in the detail board.")
    board = board.with_row(dashboard.Row("Replicas"))
    columns = [
        ("Up", "short", f"max by ({TARGET}) ({M.EXPORTER_TARGET_UP.name}{{{SEL_TARGET}}})"),
        ("Requests/s", "reqps", f"sum by ({TARGET}) ({_rate(M.REQUESTS)})"),
        ("Share of requests", "percentunit",
         f"sum by ({TARGET}) ({_rate(M.REQUESTS)}) / on (cluster, namespace, engine) group_left ()"
         f" (sum by (cluster, namespace, engine) ({_rate(M.REQUESTS)}) > 0)"),
        ("TTFT p99", "s", _quantile(0.99, M.TIME_TO_FIRST_TOKEN, TARGET)),
        ("ITL p99", "s", _quantile(0.99, M.INTER_TOKEN_LATENCY, TARGET)),
        ("E2E mean", "s", _mean(M.REQUEST_DURATION, TARGET)),
        ("KV cache", "percentunit", f"max by ({TARGET}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})"),
        ("Waiting", "short", f"sum by ({TARGET}) ({M.REQUESTS_WAITING.name}{{{SEL}}})"),
        ("Error ratio", "percentunit",
         f'sum by ({TARGET}) ({_rate(M.REQUESTS, SEL + ",outcome=" + chr(34) + "error" + chr(34))})'
         f" / (sum by ({TARGET}) ({_rate(M.REQUESTS, SEL + ',' + FINISHED)}) > 0)"),
    ]
    replicas = (table.Panel().title("Replicas").datasource(DATASOURCE).span(24).height(9).unit("short")
                .thresholds(_steps(GOOD))
                .description(f"One row per replica (target = the pod's name in the Helm chart): "
                             f"{M.EXPORTER_TARGET_UP.name}, {M.REQUESTS.name}, {M.TIME_TO_FIRST_TOKEN.name}, "
                             f"{M.INTER_TOKEN_LATENCY.name}, {M.REQUEST_DURATION.name}, {M.KV_CACHE_USAGE_RATIO.name},"
                             f" {M.REQUESTS_WAITING.name}. The target links to the detail board.")
                .with_transformation(DataTransformerConfig(id_val="merge", options={}))
                .with_transformation(DataTransformerConfig(id_val="organize", options={
                    "excludeByName": {"Time": True},
                    "renameByName": {f"Value #{chr(ord('A') + i)}": title for i, (title, _, _) in enumerate(columns)}}))
                .override_by_name("target", [DynamicConfigValue(id_val="links", value=[{
                    "title": "Open ${__data.fields.target} in the detail board",
                    "url": "/d/infersight-detail?var-namespace=${__data.fields.namespace}"
                           "&var-target=${__data.fields.target}&${__url_time_range}"}])])
                .override_by_name("Up", [DynamicConfigValue(id_val="thresholds", value={
                    "mode": "absolute", "steps": [{"value": None, "color": "red"}, {"value": 1, "color": "green"}]}),
                    DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})]))
    for title, unit, _ in columns:
        if unit != "short":
            replicas = replicas.override_by_name(title, [DynamicConfigValue(id_val="unit", value=unit)])
    board = board.with_panel(_targets(replicas, [Query(expr, "", instant=True) for _, _, expr in columns],
                                      PromQueryFormat.TABLE))
    board = board.with_row(dashboard.Row("Load balance"))
    board = board.with_panel(ts("Share of the workload's requests", "percentunit", [
        Query(f"sum by ({REPLICA}) ({_rate(M.REQUESTS)}) / on ({WORKLOAD}) group_left ()"
              f" (sum by ({WORKLOAD}) ({_rate(M.REQUESTS)}) > 0)", LEGEND_REPLICA)],
        f"Each replica's share of its workload's finished requests ({M.REQUESTS.name}): balanced is 1/replicas.",
        width=12, ratio=True))
    board = board.with_panel(ts("Running requests by replica", "short", [
        Query(f"sum by ({REPLICA}) ({M.REQUESTS_RUNNING.name}{{{SEL}}})", LEGEND_REPLICA)],
        f"Batch size per replica ({M.REQUESTS_RUNNING.name}): an idle replica beside a full one is a routing problem.",
        width=12))
    board = board.with_row(dashboard.Row("Latency by replica"))
    board = board.with_panel(ts("TTFT p99 / mean by replica", "s", _latency(M.TIME_TO_FIRST_TOKEN, (0.99,), REPLICA,
                                                                            LEGEND_REPLICA),
                                f"Time to first token per replica ({M.TIME_TO_FIRST_TOKEN.name}).", width=8,
                                steps=TTFT_STEPS, lines=True))
    board = board.with_panel(ts("ITL p99 / mean by replica", "s", _latency(M.INTER_TOKEN_LATENCY, (0.99,), REPLICA,
                                                                           LEGEND_REPLICA),
                                f"Inter-token latency per replica ({M.INTER_TOKEN_LATENCY.name}).", width=8,
                                steps=ITL_STEPS, lines=True))
    board = board.with_panel(ts("End-to-end mean by replica", "s", [Query(_mean(M.REQUEST_DURATION, REPLICA),
                                                                          LEGEND_REPLICA)],
                                f"Mean request duration per replica ({M.REQUEST_DURATION.name}, _sum/_count).",
                                width=8))
    board = board.with_row(dashboard.Row("Saturation by replica"))
    board = board.with_panel(ts("KV-cache usage by replica", "percentunit", [
        Query(f"max by ({REPLICA}) ({M.KV_CACHE_USAGE_RATIO.name}{{{SEL}}})", LEGEND_REPLICA)],
        f"KV-cache usage per replica ({M.KV_CACHE_USAGE_RATIO.name}).", width=8, steps=KV_STEPS, lines=True,
        ratio=True))
    board = board.with_panel(ts("Requests waiting by replica", "short", [
        Query(f"sum by ({REPLICA}) ({M.REQUESTS_WAITING.name}{{{SEL}}})", LEGEND_REPLICA)],
        f"Queue per replica ({M.REQUESTS_WAITING.name}).", width=8, steps=[("green", None), ("orange", 50)],
        lines=True))
    board = board.with_panel(ts("GPU utilization by replica", "percentunit", [
        Query(f"avg by ({TARGET}) {_gpu(M.GPU_UTILIZATION_RATIO)}", LEGEND_REPLICA)],
        f"Mean utilization of each replica's GPUs ({M.GPU_UTILIZATION_RATIO.name}, or dcgm-exporter joined on pod).",
        width=8, ratio=True))
    return board


SLO_SEL = 'slo=~"$slo",cluster=~"$cluster",namespace=~"$namespace",engine=~"$engine",model=~"$model"'
RETENTION_NOTE = ("Prometheus keeps what its retention allows: kube-prometheus-stack's default is 10 d, so a 30 d "
                  "attainment then covers 10 d. Set prometheus.prometheusSpec.retention to the SLO window or more, "
                  "or read from a long-term store (Thanos, Mimir).")


def slos(spec: SloSpec | None = None) -> dashboard.Dashboard:
    spec = spec or load_spec()
    board = _board("infersight-slos", "LLM engines: SLOs",
                   "The SLOs of alerts/slos.yaml, Pyrra-style: objective and window, attainment and error budget over "
                   "the window, the budget over time, requests and errors, burn rates against the alert thresholds, "
                   "and each replica's error ratio.")
    board = board.with_variable(
        dashboard.QueryVariable("slo").label("SLO").datasource(DATASOURCE).query(f"label_values({OBJECTIVE_RECORD}, slo)")
        .multi(True).include_all(True).all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC))
    board = board.with_row(dashboard.Row("Objectives"))
    rows = "\n".join(
        f"| `{s.name}` | {s.objective:.4g} | {s.window} | "
        + (f"`{s.sli.latency.histogram}` <= {s.sli.latency.threshold_seconds:g} s" if s.sli.latency
           else f"`{M.REQUESTS.name}` outcome success / success+error")
        + f" | {s.description} |" for s in spec.slos)
    board = board.with_panel(text_panel(
        "Objectives (alerts/slos.yaml)",
        "| SLO | objective | window | good events | |\n|---|---|---|---|---|\n" + rows
        + f"\n\nPages at 14.4x (1h/5m) and 6x (6h/30m) burn, tickets at 3x (1d/2h) and 1x (3d/6h). {RETENTION_NOTE}",
        height=6))
    windows = sorted({s.window for s in spec.slos}, key=duration_seconds)
    board = board.with_panel(stat_panel("Objective", "percentunit", [
        Query(f'{OBJECTIVE_RECORD}{{slo=~"$slo"}}', "{{slo}}")],
        f"The objective of each SLO ({OBJECTIVE_RECORD}).", steps=GOOD, width=4, height=5))
    board = board.with_panel(stat_panel("Attainment over the SLO window", "percentunit", [
        Query(f"1 - {error_ratio_record(w)}{{{SLO_SEL}}}", "{{slo}} {{namespace}} {{engine}} {{model}}")
        for w in windows],
        f"Good events over all events in the window ({', '.join(error_ratio_record(w) for w in windows)}); "
        "compare with the objective (the budget beside it is colored by it).", steps=[("blue", None)], width=8,
        height=5))
    board = board.with_panel(stat_panel("Error budget remaining", "percentunit", [
        Query(f"{BUDGET_REMAINING_RECORD}{{{SLO_SEL}}}", "{{slo}} {{namespace}} {{engine}} {{model}}")],
        f"1 - error ratio / budget over the window ({BUDGET_REMAINING_RECORD}); red below 0: the SLO is missed.",
        steps=BUDGET_STEPS, width=8, height=5))
    board = board.with_panel(stat_panel("Window covered by data", "percentunit", [
        Query(f"clamp_max((time() - min by (cluster, namespace, engine, model, slo) (min_over_time(timestamp("
              f"{REQUESTS_RECORD}{{{SLO_SEL}}})[{w}:1h]) or timestamp({REQUESTS_RECORD}{{{SLO_SEL}}})))"
              f" / {duration_seconds(w)}, 1)", "{{slo}} {{namespace}} {{engine}} {{model}}") for w in windows],
        f"Share of the SLO window Prometheus holds {REQUESTS_RECORD} for. {RETENTION_NOTE}",
        steps=[("orange", None), ("green", 1)], width=4, height=5))
    board = board.with_row(dashboard.Row("Budget and traffic"))
    board = board.with_panel(ts("Error budget remaining over time", "percentunit", [
        Query(f"{BUDGET_REMAINING_RECORD}{{{SLO_SEL}}}", "{{slo}} {{namespace}} {{engine}} {{model}}")],
        f"{BUDGET_REMAINING_RECORD} over time: red below 0.", width=12, steps=BUDGET_STEPS, lines=True,
        min_zero=False).color_scheme(dashboard.FieldColor().mode("thresholds")))
    board = board.with_panel(ts("Requests and errors", "reqps", [
        Query(f"{REQUESTS_RECORD}{{{SLO_SEL}}}", "requests {{slo}} {{namespace}} {{model}}"),
        Query(f"{ERRORS_RECORD}{{{SLO_SEL}}}", "errors {{slo}} {{namespace}} {{model}}")],
        f"SLI events per second ({REQUESTS_RECORD}) and the bad ones ({ERRORS_RECORD}).", width=12))
    board = board.with_row(dashboard.Row("Burn rate"))
    board = board.with_panel(ts("Burn rate by window", "short", [
        Query(f"{burn_rate_record(window)}{{{SLO_SEL}}}", f"{window} {{{{slo}}}} {{{{namespace}}}} {{{{model}}}}")
        for window in WINDOWS],
        f"Error ratio / budget per window ({burn_rate_record(WINDOWS[0])} to {burn_rate_record(WINDOWS[-1])}); 1 spends the budget exactly over the "
        "window. Lines at the alert factors: 14.4 (1h/5m) and 6 (6h/30m) page, 3 (1d/2h) and 1 (3d/6h) ticket.",
        width=16, steps=BURN_STEPS, lines=True))
    board = board.with_panel(stat_panel("Burn alerts firing", "short", [
        Query('count by (slo, severity) (ALERTS{alertname="LLMErrorBudgetBurn",alertstate="firing",'
              f'{SLO_SEL}}}) or vector(0)', "{{slo}} {{severity}}")],
        "LLMErrorBudgetBurn alerts firing now (ALERTS), by SLO and severity.", steps=DOWN_STEPS, width=8, height=8))
    board = board.with_row(dashboard.Row("By replica"))
    for slo in spec.slos:
        matchers = tuple(f'{v}=~"${v}"' for v in VARIABLES)
        board = board.with_panel(ts(f"{slo.name}: error ratio by replica (5m)", "percentunit", [
            Query(sli_error_ratio(slo, "5m", REPLICA, matchers), LEGEND_REPLICA)],
            f"The {slo.name} SLI's error ratio per replica from the raw series "
            f"({slo.sli.latency.histogram if slo.sli.latency else M.REQUESTS.name}), not the workload's recording "
            "rules: which replica burns the budget.", width=24 // len(spec.slos),
            steps=[("green", None), ("red", round(1 - slo.objective, 6))], lines=True, ratio=True))
    return board


DASHBOARDS = {"infersight-comparison.json": comparison, "infersight-detail.json": detail,
              "infersight-instances.json": instances, "infersight-slos.json": slos}


def render(build) -> str:
    return json.dumps(build().build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def outline() -> str:
    """Every board's rows and panels as Markdown (the README's Grafana section holds it; a test compares)."""
    lines = []
    for name, build in DASHBOARDS.items():
        board = json.loads(render(build))
        lines += [f"**{board['title']}** (`{name}`, uid `{board['uid']}`): {board['description']}", ""]
        for panel in board["panels"]:
            if panel["type"] == "row":
                lines.append(f"- {panel['title']}:")
            else:
                repeat = " (one per engine)" if panel.get("repeat") else ""
                lines.append(f"  - {panel['title']}{repeat} ({panel['type']})")
        lines.append("")
    return "\n".join(lines)


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = folder / name
        path.write_text(render(build), encoding="utf-8")
        written.append(path)
    return written
