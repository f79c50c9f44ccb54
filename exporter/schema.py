"""The unified metric schema: the one place where infersight's metric and label names are spelled.

Every other module (adapters, exporter, alert generator, dashboards, tests) refers to the
constants below, never to a string literal. The names follow the Prometheus conventions: an
``llm_`` prefix, base units (seconds, bytes, watts), ``_ratio`` for 0..1 fractions, ``_total``
for counters, and no colons (colons are reserved for recording rules).

Changing a name here is a breaking change for every dashboard and alert that users built on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


class Combine(StrEnum):
    """How several engine series that collapse onto one output series are merged.

    vLLM data-parallel ranks (its ``engine`` label), Triton model versions and SGLang ranks are
    summed away; a ratio is averaged instead, since the ranks have equal capacity.
    """

    SUM = "sum"
    MEAN = "mean"


class Label(StrEnum):
    ENGINE = "engine"  # vllm|triton|nim|sglang|tgi|trtllm: 6 values
    MODEL = "model"  # served model name: one per model an engine serves
    TARGET = "target"  # configured name of the scraped endpoint: one per target
    GPU = "gpu"  # GPU UUID: one per device behind the target
    OUTCOME = "outcome"  # success|error|aborted|rejected: 4 values
    # scrape error reason: 6 values (ScrapeErrorReason); on llm_requests_waiting_by_reason, why a
    # request waits: capacity|deferred (vLLM's own two values)|other (WaitingReason)
    REASON = "reason"
    SIGNAL = "signal"  # a unified metric name: one per engine signal in this schema
    SOURCE = "source"  # GPU source kind: engine|dcgm|nvml
    VERSION = "version"  # infersight version, on the build-info series only


class Engine(StrEnum):
    VLLM = "vllm"
    TRITON = "triton"
    NIM = "nim"
    SGLANG = "sglang"
    TGI = "tgi"
    TRTLLM = "trtllm"  # TensorRT-LLM's own server, trtllm-serve (Triton's TensorRT-LLM backend is "triton")


# The engine label of an --engine auto target whose engine has not been recognised yet.
UNDETECTED_ENGINE = "unknown"


class Outcome(StrEnum):
    """How a request ended, the same on every engine. ``error`` is the server's failure only, so
    that error ratios and availability SLOs (success / success + error) compare across engines."""

    SUCCESS = "success"  # the engine finished it (stop, length, ...)
    ERROR = "error"  # the server failed it (engine error, 5xx)
    ABORTED = "aborted"  # the client went away (cancelled, disconnected)
    REJECTED = "rejected"  # refused before it ran: an invalid request (4xx, validation) or an admission limit


class WaitingReason(StrEnum):
    """Why a request waits (llm_requests_waiting_by_reason): vLLM's two values, and ``other`` for
    any value an engine adds, summed there (so the reasons still sum to llm_requests_waiting)
    rather than copied into a label: an engine cannot mint label values."""

    CAPACITY = "capacity"
    DEFERRED = "deferred"
    OTHER = "other"


class ScrapeErrorReason(StrEnum):
    TIMEOUT = "timeout"  # no complete answer within the scrape timeout (also a slow drip)
    CONNECT = "connect"  # refused, DNS failure, or the connection broke before the body ended
    HTTP_STATUS = "http_status"  # a non-2xx answer
    REDIRECT = "redirect"  # a redirect loop, or one to another scheme, host or port (never followed)
    PARSE = "parse"  # not a valid exposition (garbage, truncated line, duplicate series)
    TOO_LARGE = "too_large"  # the (decompressed) body exceeded the configured cap


class GpuSource(StrEnum):
    ENGINE = "engine"  # the engine's own GPU metrics (Triton's nv_gpu_*)
    DCGM = "dcgm"  # an NVIDIA dcgm-exporter endpoint
    NVML = "nvml"  # NVML read in-process through nvidia-ml-py
    NONE = "none"


@dataclass(frozen=True)
class UnifiedMetric:
    name: str
    kind: Kind
    help: str
    labels: tuple[Label, ...]
    combine: Combine = Combine.SUM
    # Engine signals are what adapters map; each gets an llm_exporter_signal_available series.
    engine_signal: bool = False

    def __hash__(self) -> int:  # names are unique (check_catalogue); hashing every field cost a render 5%
        return hash(self.name)


_ENGINE_LABELS = (Label.ENGINE, Label.MODEL, Label.TARGET)
_GPU_LABELS = (Label.ENGINE, Label.TARGET, Label.GPU)
_TARGET_LABELS = (Label.ENGINE, Label.TARGET)


def _signal(name: str, kind: Kind, help: str, *extra: Label, combine: Combine = Combine.SUM) -> UnifiedMetric:
    return UnifiedMetric(name, kind, help, _ENGINE_LABELS + extra, combine, engine_signal=True)


def _gpu(name: str, help: str, combine: Combine = Combine.SUM, kind: Kind = Kind.GAUGE) -> UnifiedMetric:
    return UnifiedMetric(name, kind, help, _GPU_LABELS, combine, engine_signal=True)


class M:
    """The catalogue. Attribute names are what code uses; ``.name`` is what Prometheus sees."""

    REQUESTS_RUNNING = _signal(
        "llm_requests_running", Kind.GAUGE, "Requests being prefilled or decoded now.")
    REQUESTS_WAITING = _signal(
        "llm_requests_waiting", Kind.GAUGE, "Requests waiting to be scheduled (queue length).")
    REQUESTS_WAITING_BY_REASON = _signal(
        "llm_requests_waiting_by_reason", Kind.GAUGE,
        "Waiting requests by why they wait: capacity (no room in the batch or KV cache) or deferred (held by a "
        "transient constraint: LoRA budget, KV transfer); the reasons sum to llm_requests_waiting.", Label.REASON)
    ENGINE_AWAKE_RATIO = _signal(
        "llm_engine_awake_ratio", Kind.GAUGE,
        "Share of the engine's ranks that are awake, 0 to 1 (0: asleep, weights offloaded or discarded).",
        combine=Combine.MEAN)
    KV_CACHE_USAGE_RATIO = _signal(
        "llm_kv_cache_usage_ratio", Kind.GAUGE, "Fraction of the KV cache in use, 0 to 1.",
        combine=Combine.MEAN)
    PROMPT_TOKENS = _signal(
        "llm_prompt_tokens_total", Kind.COUNTER, "Prompt (input) tokens processed.")
    GENERATION_TOKENS = _signal(
        "llm_generation_tokens_total", Kind.COUNTER, "Generated (output) tokens.")
    REQUESTS = _signal(
        "llm_requests_total", Kind.COUNTER,
        "Finished requests by outcome: success; error (the server failed it); aborted (the client went away); "
        "rejected (refused before it ran: an invalid request, a 4xx, an admission limit). Error ratios and "
        "availability read success and error only.", Label.OUTCOME)
    ADMISSION_REJECTIONS = _signal(
        "llm_admission_rejections_total", Kind.COUNTER, "Requests refused by a queue or admission limit.")
    PREEMPTIONS = _signal(
        "llm_preemptions_total", Kind.COUNTER, "Requests preempted or retracted by the scheduler.")
    PREFIX_CACHE_QUERIES = _signal(
        "llm_prefix_cache_queries_total", Kind.COUNTER, "Prompt tokens looked up in the prefix cache.")
    PREFIX_CACHE_HITS = _signal(
        "llm_prefix_cache_hits_total", Kind.COUNTER, "Prompt tokens found in the prefix cache.")
    PROMPT_TOKENS_CACHED = _signal(
        "llm_prompt_tokens_cached_total", Kind.COUNTER,
        "Prompt tokens served from a cache instead of computed: the GPU's prefix cache, offloaded tiers (host, "
        "disk) or another instance (KV connector).")
    SPEC_DECODE_DRAFTS = _signal(
        "llm_spec_decode_drafts_total", Kind.COUNTER, "Speculative decoding: drafts proposed.")
    SPEC_DECODE_DRAFT_TOKENS = _signal(
        "llm_spec_decode_draft_tokens_total", Kind.COUNTER, "Speculative decoding: draft tokens proposed.")
    SPEC_DECODE_ACCEPTED_TOKENS = _signal(
        "llm_spec_decode_accepted_tokens_total", Kind.COUNTER,
        "Speculative decoding: draft tokens accepted (acceptance ratio = accepted / draft tokens).")
    TIME_TO_FIRST_TOKEN = _signal(
        "llm_time_to_first_token_seconds", Kind.HISTOGRAM, "Time from request arrival to the first output token.")
    INTER_TOKEN_LATENCY = _signal(
        "llm_inter_token_latency_seconds", Kind.HISTOGRAM, "Gap between consecutive output tokens.")
    TIME_PER_OUTPUT_TOKEN = _signal(
        "llm_time_per_output_token_seconds", Kind.HISTOGRAM,
        "Per-request mean time per output token after the first.")
    REQUEST_DURATION = _signal(
        "llm_request_duration_seconds", Kind.HISTOGRAM, "End-to-end request latency.")
    REQUEST_QUEUE = _signal(
        "llm_request_queue_seconds", Kind.HISTOGRAM, "Time a request waited before it was scheduled.")
    REQUEST_PREFILL = _signal(
        "llm_request_prefill_seconds", Kind.HISTOGRAM,
        "Time from a request's scheduling to its first token (its prefill).")
    REQUEST_DECODE = _signal(
        "llm_request_decode_seconds", Kind.HISTOGRAM, "Time from a request's first token to its last (its decode).")

    GPU_UTILIZATION_RATIO = _gpu(
        "llm_gpu_utilization_ratio", "Fraction of time the GPU was busy, 0 to 1.", Combine.MEAN)
    GPU_MEMORY_USED_BYTES = _gpu("llm_gpu_memory_used_bytes", "GPU memory in use.")
    GPU_MEMORY_TOTAL_BYTES = _gpu("llm_gpu_memory_total_bytes", "GPU memory installed.")
    GPU_POWER_WATTS = _gpu("llm_gpu_power_watts", "GPU power draw.")
    GPU_ENERGY_JOULES = _gpu(
        "llm_gpu_energy_joules_total", "GPU energy consumed since the source's counter started (boot, driver "
        "load or server start).", kind=Kind.COUNTER)

    HOURLY_COST_DOLLARS = UnifiedMetric(
        "llm_hourly_cost_dollars", Kind.GAUGE,
        "Configured cost of the hardware and licence behind a target, in dollars per hour (a month is 730 h).",
        _TARGET_LABELS)

    EXPORTER_TARGET_UP = UnifiedMetric(
        "llm_exporter_target_up", Kind.GAUGE, "1 if the last scrape of the target was fetched and parsed, else 0.",
        _TARGET_LABELS)
    EXPORTER_TARGET_SCRAPE_DURATION = UnifiedMetric(
        "llm_exporter_target_scrape_duration_seconds", Kind.GAUGE,
        "Time the last scrape of the target took, fetch and parse.", _TARGET_LABELS)
    EXPORTER_SCRAPE_ERRORS = UnifiedMetric(
        "llm_exporter_scrape_errors_total", Kind.COUNTER, "Failed scrapes of the target by reason.",
        _TARGET_LABELS + (Label.REASON,))
    EXPORTER_SIGNAL_AVAILABLE = UnifiedMetric(
        "llm_exporter_signal_available", Kind.GAUGE,
        "1 if the target's last scrape provided the unified signal, else 0: a renamed or disabled engine metric, "
        "or one the engine does not export at all (every engine signal of the schema is listed).",
        _TARGET_LABELS + (Label.SIGNAL,))
    EXPORTER_GPU_SOURCE_UP = UnifiedMetric(
        "llm_exporter_gpu_source_up", Kind.GAUGE, "1 if the target's GPU source answered the last scrape, else 0.",
        _TARGET_LABELS + (Label.SOURCE,))
    EXPORTER_DROPPED_SERIES = UnifiedMetric(
        "llm_exporter_dropped_series_total", Kind.COUNTER,
        "Series not exported as the target served them: over --max-models models or --max-gpus GPUs, a label "
        "value over --max-label-bytes, or a label value outside the schema's set (counted into its other value).",
        _TARGET_LABELS)
    EXPORTER_BUILD_INFO = UnifiedMetric(
        "llm_exporter_build_info", Kind.GAUGE, "Always 1; the version label says which infersight runs.",
        (Label.VERSION,))


CATALOGUE: tuple[UnifiedMetric, ...] = tuple(v for v in vars(M).values() if isinstance(v, UnifiedMetric))
ENGINE_SIGNALS: tuple[UnifiedMetric, ...] = tuple(m for m in CATALOGUE if m.engine_signal)
GPU_SIGNALS: tuple[UnifiedMetric, ...] = tuple(m for m in ENGINE_SIGNALS if Label.GPU in m.labels)
BY_NAME: dict[str, UnifiedMetric] = {m.name: m for m in CATALOGUE}

_NAME_RE = re.compile(r"llm_[a-z0-9_]+")
_UNIT_SUFFIXES = ("_seconds", "_bytes", "_watts", "_joules_total", "_dollars", "_ratio", "_total")


def check_catalogue(catalogue: tuple[UnifiedMetric, ...] = CATALOGUE) -> list[str]:
    """Return every naming-convention violation in the catalogue (empty when it is clean)."""
    problems = []
    seen = set()
    for m in catalogue:
        if m.name in seen:
            problems.append(f"{m.name}: defined twice")
        seen.add(m.name)
        if not _NAME_RE.fullmatch(m.name):
            problems.append(f"{m.name}: must be llm_ + lower snake_case, no colons")
        if (m.kind is Kind.COUNTER) != m.name.endswith("_total"):
            problems.append(f"{m.name}: counters, and only counters, end in _total")
        if m.kind is Kind.HISTOGRAM and not m.name.endswith("_seconds"):
            problems.append(f"{m.name}: histograms here measure time and end in _seconds")
        if m.combine is Combine.MEAN and not m.name.endswith("_ratio"):
            problems.append(f"{m.name}: only ratios are averaged")
        if set(m.name.split("_")) & {"perc", "percent", "ms", "us", "milliseconds", "microseconds", "mib"}:
            problems.append(f"{m.name}: use base units and _ratio")
        if m.engine_signal and not m.name.endswith(_UNIT_SUFFIXES) and m.kind is not Kind.GAUGE:
            problems.append(f"{m.name}: missing unit suffix")
    return problems


_problems = check_catalogue()
if _problems:  # pragma: no cover - a broken catalogue must never import
    raise ImportError("exporter.schema violates the naming rules: " + "; ".join(_problems))


def schema_table() -> str:
    """The catalogue as the Markdown table in README.md (a test keeps the two equal)."""
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for m in CATALOGUE:
        rows.append(f"| `{m.name}` | {m.kind.value} | {', '.join(label.value for label in m.labels)} | {m.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(schema_table())
