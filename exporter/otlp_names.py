"""The unified schema's OpenTelemetry names: the one table from a catalogue entry (``M.X``) and a
label to the name, unit and attribute it has in OTLP (docs/opentelemetry.md prints it).

Pure data, no OpenTelemetry import: the table is documented and tested without the [otlp] extra.

Where the GenAI semantic conventions (model-server metrics, status Development) name the same
measurement, that name is used; everything else is ``infersight.<name>``: the schema name
without its ``llm_`` prefix and unit suffix (the unit goes in OTLP's ``unit`` field, as UCUM),
with ``exporter`` and ``gpu`` as namespaces.
"""

from __future__ import annotations

from infersight.exporter.schema import CATALOGUE, Kind, Label, M, UnifiedMetric

# gen_ai.server.* are histograms in seconds, as ours. The conventions' token metric,
# gen_ai.client.token.usage, is a per-request histogram measured by a client; our token series
# are the server's running totals (counters), so they keep infersight names.
SEMCONV: dict[UnifiedMetric, str] = {
    M.TIME_TO_FIRST_TOKEN: "gen_ai.server.time_to_first_token",
    M.TIME_PER_OUTPUT_TOKEN: "gen_ai.server.time_per_output_token",
    M.REQUEST_DURATION: "gen_ai.server.request.duration",
}

# Label -> data point attribute. The engine serving the model is the conventions' provider
# (required on gen_ai.server.* metrics); the served model name is the request model.
# The target is not a point attribute: each target is its own OTLP resource (see RESOURCE_TARGET).
ATTRIBUTES: dict[Label, str] = {
    Label.ENGINE: "gen_ai.provider.name",
    Label.MODEL: "gen_ai.request.model",
    Label.GPU: "infersight.gpu.id",
    Label.OUTCOME: "infersight.outcome",
    Label.REASON: "infersight.reason",
    Label.SIGNAL: "infersight.signal",
    Label.SOURCE: "infersight.gpu.source",
    Label.VERSION: "infersight.version",
}
RESOURCE_TARGET = "infersight.target"  # resource attribute: the target label

# Units (UCUM; curly braces: an annotation, a count of things) where the name's suffix says none.
_COUNTS: dict[UnifiedMetric, str] = {
    M.REQUESTS_RUNNING: "{request}", M.REQUESTS_WAITING: "{request}", M.REQUESTS_WAITING_BY_REASON: "{request}",
    M.REQUESTS: "{request}", M.ADMISSION_REJECTIONS: "{request}", M.PREEMPTIONS: "{preemption}",
    M.PROMPT_TOKENS: "{token}", M.GENERATION_TOKENS: "{token}", M.PREFIX_CACHE_QUERIES: "{token}",
    M.PREFIX_CACHE_HITS: "{token}", M.PROMPT_TOKENS_CACHED: "{token}", M.SPEC_DECODE_DRAFTS: "{draft}",
    M.SPEC_DECODE_DRAFT_TOKENS: "{token}", M.SPEC_DECODE_ACCEPTED_TOKENS: "{token}",
    M.EXPORTER_SCRAPE_ERRORS: "{scrape}", M.EXPORTER_DROPPED_SERIES: "{series}",
    M.HOURLY_COST_DOLLARS: "{USD}/h",
}
# Suffix -> unit, first match wins (so _joules_total before _total).
_SUFFIXES = (("_joules_total", "J"), ("_seconds", "s"), ("_bytes", "By"), ("_watts", "W"), ("_dollars", "{USD}/h"),
             ("_ratio", "1"), ("_total", "1"))
_NAMESPACES = ("exporter", "gpu")


def unit(metric: UnifiedMetric) -> str:
    if metric in _COUNTS:
        return _COUNTS[metric]
    return next((u for suffix, u in _SUFFIXES if metric.name.endswith(suffix)), "1")


def otel_name(metric: UnifiedMetric) -> str:
    if metric in SEMCONV:
        return SEMCONV[metric]
    base = metric.name.split("_", 1)[1]  # without the schema's prefix
    for suffix, _ in _SUFFIXES:
        if base.endswith(suffix):
            base = base.removesuffix(suffix)
            break
    head, _, rest = base.partition("_")
    return f"infersight.{head}.{rest}" if head in _NAMESPACES and rest else f"infersight.{base}"


# OTLP's point kinds: a counter is a cumulative monotonic sum.
OTEL_KIND = {Kind.GAUGE: "Gauge", Kind.COUNTER: "Sum (cumulative, monotonic)", Kind.HISTOGRAM: "Histogram (cumulative)"}


def mapping_table() -> str:
    """The Markdown table of docs/opentelemetry.md (a test keeps the two equal)."""
    rows = ["| schema name | OpenTelemetry name | semantic convention | OTLP type | unit |", "|---|---|---|---|---|"]
    for m in CATALOGUE:
        convention = "GenAI (gen_ai.server.*)" if m in SEMCONV else "none"
        rows.append(f"| `{m.name}` | `{otel_name(m)}` | {convention} | {OTEL_KIND[m.kind]} | `{unit(m)}` |")
    return "\n".join(rows)


def attribute_table() -> str:
    rows = ["| label | OTLP attribute |", "|---|---|", f"| `{Label.TARGET.value}` | `{RESOURCE_TARGET}` (resource) |"]
    rows += [f"| `{label.value}` | `{name}` |" for label, name in ATTRIBUTES.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(mapping_table())
    print()
    print(attribute_table())
