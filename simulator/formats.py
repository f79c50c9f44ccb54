"""Each simulated engine's /metrics, as its real release writes it: one declarative table per format.

A row names a family exactly as the engine registers it (type, HELP, extra label, buckets) and the
model signal that feeds it. Python engines (vLLM, NIM, SGLang) are rendered by prometheus_client,
as the engines themselves are; Triton (prometheus-cpp) and dcgm-exporter (Go) in their libraries'
layouts. Names, labels and buckets come from ``../shared/reference/engine-metrics.md`` and the
releases' sources; ``tests/test_simulator_formats.py`` compares each format with real expositions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from infersight.simulator.model import EngineModel, FinishReason
from infersight.simulator.signals import Histogram, Recorder, Signal


def build_1_2_5(limit: int) -> tuple[float, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, ... up to ``limit``."""
    out, exponent = [], 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > limit:
                return tuple(float(v) for v in out)
            out.append(value)
        exponent += 1


# vLLM bucket lists (vllm/v1/metrics/loggers.py, vllm/engine/metrics.py).
TTFT_V1 = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
           80.0, 160.0, 640.0, 2560.0)
ITL_V1 = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
LATENCY_V1 = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
              960.0, 1920.0, 7680.0)
TTFT_V0 = TTFT_V1[:16]  # 0.001 ... 10.0: vLLM 0.4-0.7 V0, NIM 1.x, Triton's vLLM backend
ITL_V0 = ITL_V1[:13]  # 0.01 ... 2.5
LATENCY_V0_6 = LATENCY_V1[:15]  # 0.3 ... 60.0: vLLM 0.6 V0
E2E_EARLY = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)  # vLLM 0.4-0.5, NIM 1.x, Triton vLLM backend
ITERATION_TOKENS = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)
PARAMS_N = (1.0, 2.0, 5.0, 10.0, 20.0)
PREEMPTIONS_PER_REQUEST = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)


@dataclass(frozen=True)
class Family:
    """One metric family. ``values`` splits it by one extra label, each value fed by its own
    signal or finish reason; ``created`` adds the ``_created`` series prometheus_client writes."""

    name: str
    kind: str  # gauge | counter | histogram
    help: str
    signal: Signal | None = None
    buckets: tuple[float, ...] = ()
    label: str | None = None
    values: tuple[tuple[str, Signal | FinishReason | tuple[FinishReason, ...]], ...] = ()
    scale: float = 1.0
    created: bool = False
    model: str | None = None  # overrides the model label's value (Triton's per-model series)
    only: tuple[str, ...] | None = None  # keep only these base labels (SGLang's tokenizer-side families)


@dataclass
class Format:
    """A metrics format: families under the engine's own label set, rendered the engine's way."""

    name: str
    families: tuple[Family, ...]
    labels: Callable[[str], dict[str, str]]  # model name -> base labels
    style: str = "python"  # python (prometheus_client) | cpp (Triton) | go (dcgm-exporter)
    path: str = "/metrics"
    extra: Callable[[Recorder, str, float], str] | None = None  # appended text (Triton's GPU families)


# --- vLLM ----------------------------------------------------------------------------------------

def _vllm_phase_histograms(buckets: tuple[float, ...]) -> list[Family]:
    """Where a request's time went (vllm:request_*_time_seconds): the same in V0 0.6 and V1."""
    return [Family(f"vllm:request_{name}_time_seconds", "histogram", f"Histogram of time spent in {phase} phase for "
                   "request.", signal, buckets, created=True)
            for name, phase, signal in (("queue", "WAITING", Signal.QUEUE), ("inference", "RUNNING", Signal.INFERENCE),
                                        ("prefill", "PREFILL", Signal.PREFILL), ("decode", "DECODE", Signal.DECODE))]


# Engines before vLLM 0.11 (V0, V1 up to 0.10, NIM 1.x) have no "error" finish reason, so the
# simulator counts the requests it fails as aborted; NIM's request_failure_total ("any other
# finish reason") then stays the sum of its non-success reasons, as on the real engine.
V0_FINISHED: tuple[tuple[str, FinishReason | tuple[FinishReason, ...]], ...] = (
    ("stop", FinishReason.STOP), ("length", FinishReason.LENGTH), ("abort", (FinishReason.ABORT, FinishReason.ERROR)))


def _vllm_v1_families(version: tuple[int, int], max_model_len: int) -> tuple[Family, ...]:
    """vLLM V1's default families (no LoRA, spec decode or KV connector), as of ``version``."""
    tokens = build_1_2_5(max_model_len)
    # Before 0.11 V1 had no "error" reason either; from 0.11 every reason the model knows.
    finished: tuple = tuple((r.value, r) for r in FinishReason) if version >= (0, 11) else V0_FINISHED
    if version >= (0, 33):
        finished += (("repetition", Signal.ZERO),)
    old, new = version < (0, 12), version >= (0, 10)
    f: list[Family] = [
        Family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", Signal.RUNNING),
        Family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", Signal.WAITING),
    ]
    if version >= (0, 21):
        f.append(Family("vllm:num_requests_waiting_by_reason", "gauge", "Number of waiting requests by reason. "
                        "Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by "
                        "transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals "
                        "vllm:num_requests_waiting.", label="reason",
                        values=(("capacity", Signal.WAITING), ("deferred", Signal.ZERO))))
    if version >= (0, 11):
        f.append(Family("vllm:engine_sleep_state", "gauge", "Engine sleep state; awake = 0 means engine is sleeping; "
                        "awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 "
                        "means sleep level 2.", label="sleep_state",
                        values=(("awake", Signal.ONE), ("weights_offloaded", Signal.ZERO),
                                ("discard_all", Signal.ZERO))))
    if old:
        f.append(Family("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage."
                        "DEPRECATED: Use vllm:kv_cache_usage_perc instead.", Signal.KV_USAGE))
        f.append(Family("vllm:gpu_prefix_cache_queries", "counter", "GPU prefix cache queries, in terms of number of "
                        "queried tokens. DEPRECATED: Use vllm:prefix_cache_queries instead.", Signal.PREFIX_QUERIES,
                        created=True))
        f.append(Family("vllm:gpu_prefix_cache_hits", "counter", "GPU prefix cache hits, in terms of number of cached "
                        "tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.", Signal.PREFIX_HITS, created=True))
    if new:
        f += [
            Family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", Signal.KV_USAGE),
            Family("vllm:prefix_cache_queries", "counter", "Prefix cache queries, in terms of number of queried "
                   "tokens.", Signal.PREFIX_QUERIES, created=True),
            Family("vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.",
                   Signal.PREFIX_HITS, created=True),
        ]
    if version >= (0, 11):
        f += [
            Family("vllm:external_prefix_cache_queries", "counter", "External prefix cache queries from KV connector "
                   "cross-instance cache sharing, in terms of number of queried tokens.", Signal.ZERO, created=True),
            Family("vllm:external_prefix_cache_hits", "counter", "External prefix cache hits from KV connector "
                   "cross-instance cache sharing, in terms of number of cached tokens.", Signal.ZERO, created=True),
            Family("vllm:mm_cache_queries", "counter", "Multi-modal cache queries, in terms of number of queried "
                   "items.", Signal.ZERO, created=True),
            Family("vllm:mm_cache_hits", "counter", "Multi-modal cache hits, in terms of number of cached items.",
                   Signal.ZERO, created=True),
        ]
    f += [
        Family("vllm:num_preemptions", "counter", "Cumulative number of preemption from the engine.",
               Signal.PREEMPTIONS, created=True),
        Family("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS,
               created=True),
    ]
    if version >= (0, 18):
        f += [
            Family("vllm:prompt_tokens_by_source", "counter", "Number of prompt tokens by source.", label="source",
                   values=(("local_compute", Signal.PROMPT_COMPUTED), ("local_cache_hit", Signal.PREFIX_HITS),
                           ("external_kv_transfer", Signal.ZERO)), created=True),
            Family("vllm:prompt_tokens_cached", "counter", "Number of cached prompt tokens (local + external).",
                   Signal.PREFIX_HITS, created=True),
        ]
    if version >= (0, 33):
        f.append(Family("vllm:prompt_tokens_cached_by_source", "counter", "Prefix-cache hit tokens by the cache tier "
                        "that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from "
                        "another vLLM instance) or external_unspecified. Counted at admission; sums to "
                        "vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.", label="source",
                        values=(("device", Signal.PREFIX_HITS), ("host", Signal.ZERO), ("p2p", Signal.ZERO),
                                ("disk", Signal.ZERO), ("external_unspecified", Signal.ZERO)), created=True))
    f += [
        Family("vllm:generation_tokens", "counter", "Number of generation tokens processed.", Signal.GENERATION_TOKENS,
               created=True),
        Family("vllm:request_success", "counter", "Count of successfully processed requests.",
               label="finished_reason", values=finished, created=True),
    ]
    if version >= (0, 33):  # speculative decoding on (a conditional family set: vllm/v1/spec_decode/metrics.py)
        f += [
            Family("vllm:spec_decode_num_drafts", "counter", "Number of spec decoding drafts.", Signal.SPEC_DRAFTS,
                   created=True),
            Family("vllm:spec_decode_num_draft_tokens", "counter", "Number of draft tokens.",
                   Signal.SPEC_DRAFT_TOKENS, created=True),
            Family("vllm:spec_decode_num_accepted_tokens", "counter", "Number of accepted tokens.",
                   Signal.SPEC_ACCEPTED, created=True),
            Family("vllm:spec_decode_num_accepted_tokens_per_pos", "counter", "Accepted tokens per draft position.",
                   label="position", values=(("0", Signal.SPEC_ACCEPTED_POS0), ("1", Signal.SPEC_ACCEPTED_POS1),
                                             ("2", Signal.SPEC_ACCEPTED_POS2)), created=True),
        ]
    if version >= (0, 33):
        f.append(Family("vllm:admission_rejections", "counter", "Number of admission attempts rejected by a queue "
                        "limit, by reason.", label="reason",
                        values=(("max_num_queued_reqs", Signal.ZERO), ("max_num_queued_tokens", Signal.ZERO)),
                        created=True, only=("model_name",)))
    f += [
        Family("vllm:request_prompt_tokens", "histogram", "Number of prefill tokens processed.", Signal.PROMPT_LENGTH,
               tokens, created=True),
        Family("vllm:request_generation_tokens", "histogram", "Number of generation tokens processed.",
               Signal.GENERATION_LENGTH, tokens, created=True),
        Family("vllm:iteration_tokens_total", "histogram", "Histogram of number of tokens per engine_step.",
               Signal.ITERATION_TOKENS, ITERATION_TOKENS, created=True),
        Family("vllm:request_max_num_generation_tokens", "histogram", "Histogram of maximum number of requested "
               "generation tokens.", Signal.MAX_TOKENS, tokens, created=True),
        Family("vllm:request_params_n", "histogram", "Histogram of the n request parameter.", Signal.PARAMS_N,
               PARAMS_N, created=True),
        Family("vllm:request_params_max_tokens", "histogram", "Histogram of the max_tokens request parameter.",
               Signal.MAX_TOKENS, tokens, created=True),
        Family("vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, TTFT_V1, created=True),
    ]
    if old:
        f.append(Family("vllm:time_per_output_token_seconds", "histogram", "Histogram of time per output token in "
                        "seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.", Signal.ITL, ITL_V1,
                        created=True))
    if new:
        f.append(Family("vllm:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in "
                        "seconds.", Signal.ITL, ITL_V1, created=True))
    if version >= (0, 11):
        f.append(Family("vllm:request_time_per_output_token_seconds", "histogram", "Histogram of "
                        "time_per_output_token_seconds per request.", Signal.TPOT, ITL_V1, created=True))
    f += [
        Family("vllm:e2e_request_latency_seconds", "histogram", "Histogram of e2e request latency in seconds.",
               Signal.E2E, LATENCY_V1, created=True),
        *_vllm_phase_histograms(LATENCY_V1),
    ]
    if version >= (0, 30):
        f.append(Family("vllm:request_num_preemptions", "histogram", "Histogram of the number of times a request was "
                        "preempted.", Signal.REQUEST_PREEMPTIONS, PREEMPTIONS_PER_REQUEST, created=True))
    if version >= (0, 13):
        f.append(Family("vllm:request_prefill_kv_computed_tokens", "histogram", "Histogram of new KV tokens computed "
                        "during prefill (excluding cached tokens).", Signal.PROMPT_LENGTH, tokens, created=True))
    f.append(Family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig", Signal.ONE))
    return tuple(f)


def _vllm_v0_6_families(max_model_len: int) -> tuple[Family, ...]:
    """vLLM 0.6.x (V0 engine, vllm/engine/metrics.py): counters without _created (multiprocess-safe
    prometheus_client metrics were created with the default registry, which writes them; see test)."""
    tokens = build_1_2_5(max_model_len)
    return (
        Family("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig", Signal.ONE),
        Family("vllm:num_requests_running", "gauge", "Number of requests currently running on GPU.", Signal.RUNNING),
        Family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", Signal.WAITING),
        Family("vllm:num_requests_swapped", "gauge", "Number of requests swapped to CPU.", Signal.ZERO),
        Family("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", Signal.KV_USAGE),
        Family("vllm:cpu_cache_usage_perc", "gauge", "CPU KV-cache usage. 1 means 100 percent usage.", Signal.ZERO),
        Family("vllm:num_preemptions", "counter", "Cumulative number of preemption from the engine.",
               Signal.PREEMPTIONS, created=True),
        Family("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS,
               created=True),
        Family("vllm:generation_tokens", "counter", "Number of generation tokens processed.", Signal.GENERATION_TOKENS,
               created=True),
        Family("vllm:tokens", "counter", "Number of prefill plus generation tokens processed.", Signal.ALL_TOKENS,
               created=True),
        Family("vllm:iteration_tokens_total", "histogram", "Histogram of number of tokens per engine_step.",
               Signal.ITERATION_TOKENS, (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
                                         8192.0), created=True),
        Family("vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, TTFT_V0, created=True),
        Family("vllm:time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.",
               Signal.ITL, ITL_V0, created=True),
        Family("vllm:e2e_request_latency_seconds", "histogram", "Histogram of end to end request latency in seconds.",
               Signal.E2E, LATENCY_V0_6, created=True),
        Family("vllm:time_in_queue_requests", "histogram", "Histogram of time the request spent in the queue in "
               "seconds.", Signal.QUEUE, LATENCY_V0_6, created=True),
        *_vllm_phase_histograms(LATENCY_V0_6),
        Family("vllm:request_prompt_tokens", "histogram", "Number of prefill tokens processed.", Signal.PROMPT_LENGTH,
               tokens, created=True),
        Family("vllm:request_generation_tokens", "histogram", "Number of generation tokens processed.",
               Signal.GENERATION_LENGTH, tokens, created=True),
        Family("vllm:request_max_num_generation_tokens", "histogram", "Histogram of maximum number of requested "
               "generation tokens.", Signal.MAX_TOKENS, tokens, created=True),
        Family("vllm:request_params_n", "histogram", "Histogram of the n request parameter.", Signal.PARAMS_N,
               PARAMS_N, created=True),
        Family("vllm:request_params_max_tokens", "histogram", "Histogram of the max_tokens request parameter.",
               Signal.MAX_TOKENS, tokens, created=True),
        Family("vllm:request_success", "counter", "Count of successfully processed requests.",
               label="finished_reason", values=V0_FINISHED, created=True),
        Family("vllm:avg_prompt_throughput_toks_per_s", "gauge", "Average prefill throughput in tokens/s.",
               Signal.PROMPT_THROUGHPUT),
        Family("vllm:avg_generation_throughput_toks_per_s", "gauge", "Average generation throughput in tokens/s.",
               Signal.GENERATION_THROUGHPUT),
    )


def _cache_config_labels(model: EngineModel) -> dict[str, str]:
    p = model.performance
    return {"block_size": str(p.kv_block_tokens), "cache_dtype": "auto", "enable_prefix_caching": "True",
            "gpu_memory_utilization": "0.9", "num_cpu_blocks": "None",
            "num_gpu_blocks": str(p.kv_capacity_tokens // p.kv_block_tokens)}


# --- NIM 1.x -------------------------------------------------------------------------------------

def _nim_families(max_model_len: int) -> tuple[Family, ...]:
    """NIM for LLMs 1.x: vLLM V0's metrics re-registered without the prefix (NIM 1.0.0 capture)."""
    tokens = build_1_2_5(max(max_model_len, 100000))
    return (
        Family("num_requests_running", "gauge", "Number of requests currently running on GPU.", Signal.RUNNING),
        Family("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", Signal.WAITING),
        Family("num_request_max", "gauge", "Max number of concurrently running requests.", Signal.MAX_SEQS),
        Family("gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", Signal.KV_USAGE),
        Family("prompt_tokens", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS, created=True),
        Family("generation_tokens", "counter", "Number of generation tokens processed.", Signal.GENERATION_TOKENS,
               created=True),
        Family("time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, TTFT_V0, created=True),
        Family("time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.",
               Signal.ITL, ITL_V0, created=True),
        Family("e2e_request_latency_seconds", "histogram", "Histogram of end to end request latency in seconds.",
               Signal.E2E, E2E_EARLY, created=True),
        Family("request_prompt_tokens", "histogram", "Number of prefill tokens processed.", Signal.PROMPT_LENGTH,
               tokens, created=True),
        Family("request_generation_tokens", "histogram", "Number of generation tokens processed.",
               Signal.GENERATION_LENGTH, tokens, created=True),
        Family("request_finish", "counter", "Count of finished requests, differentiated by finish reason as label.",
               label="finished_reason", values=V0_FINISHED, created=True),
        Family("request_success", "counter", "Count of successful requests.", Signal.SUCCEEDED, created=True),
        Family("request_failure", "counter", "Count of failed requests.", Signal.FAILED, created=True),
    )


# --- SGLang ----------------------------------------------------------------------------------------

SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)
SGLANG_ITL = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
              0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0)
SGLANG_E2E = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0,
              600.0, 1200.0, 1800.0, 2400.0)


def _sglang_families() -> tuple[Family, ...]:
    """SGLang's scheduler and tokenizer-manager metrics (label sets of the DataDog capture)."""
    return (
        Family("sglang:num_running_reqs", "gauge", "The number of running requests.", Signal.RUNNING),
        Family("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", Signal.WAITING),
        Family("sglang:token_usage", "gauge", "The token usage.", Signal.KV_USAGE),
        Family("sglang:gen_throughput", "gauge", "The generation throughput (token/s).", Signal.GENERATION_THROUGHPUT),
        Family("sglang:prompt_tokens", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS),
        Family("sglang:generation_tokens", "counter", "Number of generation tokens processed.",
               Signal.GENERATION_TOKENS),
        Family("sglang:num_requests", "counter", "The number of processed requests.", Signal.REQUESTS),
        Family("sglang:num_aborted_requests", "counter", "The number of aborted requests.", Signal.ABORTED,
               only=("model_name",)),
        Family("sglang:cached_tokens", "counter", "Number of cached prompt tokens.", Signal.PREFIX_HITS),
        Family("sglang:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, SGLANG_TTFT, only=("model_name",)),
        Family("sglang:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.",
               Signal.ITL, SGLANG_ITL, only=("model_name",)),
        Family("sglang:e2e_request_latency_seconds", "histogram", "Histogram of End-to-end request latency in seconds",
               Signal.E2E, SGLANG_E2E, only=("model_name",)),
        Family("sglang:queue_time_seconds", "histogram", "Histogram of queueing time in seconds.", Signal.QUEUE,
               SGLANG_E2E, only=("model_name",)),
    )


# --- trtllm-serve ----------------------------------------------------------------------------------

def _trtllm_serve_families() -> tuple[Family, ...]:
    """TensorRT-LLM's own server, 2026 collector (tensorrt_llm/metrics/collector.py @ 050f80de: the
    trtllm_ families of engines-and-peers-2026-12.md, "TRT-LLM"), at /prometheus/metrics, with
    vLLM's bucket lists (engine-metrics.md 2.3) and speculative decoding on."""
    p = "trtllm_"
    return (
        Family(f"{p}num_requests_running", "gauge", "Number of requests currently running.", Signal.RUNNING),
        Family(f"{p}num_requests_waiting", "gauge", "Number of requests waiting to be scheduled.", Signal.WAITING),
        Family(f"{p}scheduled_batch_size", "gauge", "Scheduled batch size.", Signal.RUNNING),
        Family(f"{p}kv_cache_utilization", "gauge", "KV cache utilization.", Signal.KV_USAGE),
        Family(f"{p}kv_cache_max_blocks", "gauge", "Maximum number of KV cache blocks.", Signal.KV_BLOCKS_MAX),
        Family(f"{p}kv_cache_used_blocks", "gauge", "Number of used KV cache blocks.", Signal.KV_BLOCKS_USED),
        Family(f"{p}kv_cache_free_blocks", "gauge", "Number of free KV cache blocks.", Signal.KV_BLOCKS_FREE),
        Family(f"{p}kv_cache_tokens_per_block", "gauge", "Tokens per KV cache block.", Signal.KV_BLOCK_TOKENS),
        Family(f"{p}prompt_tokens", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS,
               created=True),
        Family(f"{p}generation_tokens", "counter", "Number of generation tokens processed.",
               Signal.GENERATION_TOKENS, created=True),
        Family(f"{p}num_requests_completed", "counter", "Number of completed requests.", Signal.REQUESTS,
               created=True),
        Family(f"{p}request_success", "counter", "Count of successfully processed requests.",
               label="finished_reason", values=V0_FINISHED, created=True),
        Family(f"{p}spec_decode_drafted_tokens", "counter", "Number of draft tokens proposed.",
               Signal.SPEC_DRAFT_TOKENS, created=True),
        Family(f"{p}spec_decode_accepted_tokens", "counter", "Number of draft tokens accepted.", Signal.SPEC_ACCEPTED,
               created=True),
        Family(f"{p}time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, TTFT_V1, created=True),
        Family(f"{p}time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.",
               Signal.TPOT, ITL_V1, created=True),
        Family(f"{p}e2e_request_latency_seconds", "histogram", "Histogram of end to end request latency in seconds.",
               Signal.E2E, LATENCY_V1, created=True),
        Family(f"{p}request_queue_time_seconds", "histogram", "Histogram of time spent in WAITING phase for request.",
               Signal.QUEUE, LATENCY_V1, created=True),
        Family(f"{p}request_prefill_time_seconds", "histogram", "Histogram of time spent in PREFILL phase for "
               "request.", Signal.PREFILL, LATENCY_V1, created=True),
        Family(f"{p}request_decode_time_seconds", "histogram", "Histogram of time spent in DECODE phase for request.",
               Signal.DECODE, LATENCY_V1, created=True),
        Family(f"{p}request_inference_time_seconds", "histogram", "Histogram of time spent in RUNNING phase for "
               "request.", Signal.INFERENCE, LATENCY_V1, created=True),
    )


# --- rendering ---------------------------------------------------------------------------------

@dataclass
class FormatState:
    """A format bound to one model: its histograms registered with the recorder."""

    fmt: Format
    recorder: Recorder
    model_name: str
    histograms: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        for family in self.fmt.families:
            if family.kind == "histogram" and family.signal is not None:
                scaled = tuple(b / family.scale for b in family.buckets)
                self.histograms[(family.name, family.model or "")] = self.recorder.histogram(family.signal, scaled)

    def labels(self, family: Family) -> dict[str, str]:
        base = self.fmt.labels(family.model or self.model_name)
        return base if family.only is None else {k: v for k, v in base.items() if k in family.only}

    def value(self, source: Signal | FinishReason | tuple[FinishReason, ...]) -> float:
        if isinstance(source, tuple):  # several finish reasons under one label value
            return float(sum(self.recorder.finished[reason] for reason in source))
        if isinstance(source, FinishReason):
            return float(self.recorder.finished[source])
        return float(self.recorder.gauge(source))

    def render(self) -> bytes:
        if self.fmt.style == "python":
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_PythonCollector(self))
            text = generate_latest(registry)
        else:
            text = render_cpp(self).encode()
        if self.fmt.extra is not None:
            text += self.fmt.extra(self.recorder, self.model_name, time.time()).encode()
        return text


class _PythonCollector(Collector):
    def __init__(self, state: FormatState):
        self.state = state

    def collect(self) -> Iterable[Metric]:
        s = self.state
        for family in s.fmt.families:
            metric = Metric(family.name, family.help, family.kind)
            labels = s.labels(family)
            if family.name.endswith("cache_config_info"):
                labels = {**_cache_config_labels(s.recorder.model), **{k: v for k, v in labels.items() if k == "engine"}}
            if family.kind == "histogram":
                h = s.histograms[(family.name, "")]
                for bound, count in zip(h.bounds, h.cumulative(), strict=True):
                    metric.add_sample(f"{family.name}_bucket", {**labels, "le": floatToGoString(bound * family.scale)}, count)
                metric.add_sample(f"{family.name}_bucket", {**labels, "le": "+Inf"}, h.count)
                metric.add_sample(f"{family.name}_count", labels, h.count)
                metric.add_sample(f"{family.name}_sum", labels, h.sum * family.scale)
                if family.created:
                    metric.add_sample(f"{family.name}_created", labels, s.created)
            else:
                suffix = "_total" if family.kind == "counter" else ""
                rows = [(labels, family.signal)] if not family.values else [
                    ({**labels, family.label or "": value}, source) for value, source in family.values]
                for row_labels, source in rows:
                    assert source is not None
                    metric.add_sample(family.name + suffix, row_labels, s.value(source))
                    if family.created and family.kind == "counter":
                        metric.add_sample(f"{family.name}_created", row_labels, s.created)
            yield metric




# --- Triton (prometheus-cpp layout) ----------------------------------------------------------------

def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


def render_cpp(state: FormatState) -> str:
    """prometheus-cpp's text: HELP, TYPE, samples; histograms as _count, _sum, then buckets."""
    out: list[str] = []
    for family in state.fmt.families:
        base = state.labels(family)
        out.append(f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n")
        if family.kind == "histogram":
            h = state.histograms[(family.name, family.model or "")]
            out.append(f"{family.name}_count{_labels_text(base)} {h.count}\n")
            out.append(f"{family.name}_sum{_labels_text(base)} {_number(h.sum * family.scale)}\n")
            for bound, count in zip((*h.bounds, float("inf")), (*h.cumulative(), h.count), strict=True):
                le = _number(bound * family.scale if bound != float("inf") else bound)
                out.append(f"{family.name}_bucket{_labels_text({**base, 'le': le})} {count}\n")
            continue
        rows = [(base, family.signal)] if not family.values else [
            ({**base, family.label or "": value}, source) for value, source in family.values]
        for labels, source in rows:
            assert source is not None
            value = state.value(source) * family.scale
            out.append(f"{family.name}{_labels_text(labels)} {_number(value)}\n")
    return "".join(out)


def _triton_core(model: str | None = None) -> tuple[Family, ...]:
    """Triton core's per-model families (src/metric_model_reporter.cc); failures by reason (24.08+)."""
    failures = (("REJECTED", Signal.ZERO), ("CANCELED", FinishReason.ABORT), ("BACKEND", FinishReason.ERROR),
                ("OTHER", Signal.ZERO))
    return (
        Family("nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes",
               Signal.SUCCEEDED, model=model),
        Family("nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes",
               label="reason", values=failures, model=model),
        Family("nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)",
               Signal.SUCCEEDED, model=model),
        Family("nv_inference_exec_count", "counter", "Number of model executions performed (does not include cached "
               "requests)", Signal.SUCCEEDED, model=model),
        Family("nv_inference_pending_request_count", "gauge", "Instantaneous number of pending requests awaiting "
               "execution per-model.", Signal.WAITING, model=model),
        Family("nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds "
               "(includes cached requests)", Signal.E2E_SECONDS, scale=1e6, model=model),
        Family("nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds "
               "(includes cached requests)", Signal.QUEUE_SECONDS, scale=1e6, model=model),
        Family("nv_inference_compute_infer_duration_us", "counter", "Cumulative compute inference duration in "
               "microseconds (does not include cached requests)", Signal.INFERENCE_SECONDS, scale=1e6, model=model),
    )


def _triton_trtllm_families() -> tuple[Family, ...]:
    """Triton + TensorRT-LLM inflight batcher (custom_metrics_reporter.cc, 2025-04+), ensemble in front."""
    engine = "tensorrt_llm"
    return (
        *_triton_core("ensemble"),
        *_triton_core(engine),
        Family("nv_inference_first_response_histogram_ms", "histogram", "Duration from request to first response in "
               "milliseconds", Signal.TTFT, (100.0, 500.0, 2000.0, 5000.0), scale=1000.0, model="ensemble"),
        Family("nv_trt_llm_request_metrics", "gauge", "TRT LLM request metrics", label="request_type",
               values=(("waiting", Signal.WAITING), ("context", Signal.ZERO), ("scheduled", Signal.RUNNING),
                       ("max", Signal.MAX_SEQS), ("active", Signal.RUNNING)), model=engine),
        Family("nv_trt_llm_kv_cache_block_metrics", "gauge", "TRT LLM KV cache block metrics",
               label="kv_cache_block_type",
               values=(("max", Signal.KV_BLOCKS_MAX), ("free", Signal.KV_BLOCKS_FREE), ("used", Signal.KV_BLOCKS_USED),
                       ("tokens_per", Signal.KV_BLOCK_TOKENS), ("reused", Signal.ZERO), ("fraction", Signal.KV_USAGE)),
               model=engine),
        Family("nv_trt_llm_inflight_batcher_metrics", "gauge", "TRT LLM inflight_batcher-specific metrics",
               label="inflight_batcher_specific_metric",
               values=(("paused_requests", Signal.ZERO), ("micro_batch_id", Signal.ZERO),
                       ("generation_requests", Signal.RUNNING), ("total_context_tokens", Signal.ZERO)), model=engine),
        Family("nv_trt_llm_general_metrics", "gauge", "General TRT LLM metrics", label="general_type",
               values=(("iteration_counter", Signal.ITERATIONS),), model=engine),
        Family("nv_llm_input_token_len", "histogram", "TRT LLM response metrics", Signal.PROMPT_LENGTH,
               (10.0, 50.0, 100.0, 500.0, 1000.0), model=engine),
        Family("nv_llm_output_token_len", "histogram", "TRT LLM response metrics", Signal.GENERATION_LENGTH,
               (10.0, 50.0, 100.0, 500.0, 1000.0), model=engine),
    )


def _triton_vllm_families(max_model_len: int) -> tuple[Family, ...]:
    """Triton + vLLM backend (vllm_backend src/utils/metrics.py, Triton 24.08+): core families plus the
    backend's custom vllm:* families labelled with the Triton model; no KV or queue gauges."""
    tokens = build_1_2_5(max_model_len)
    return (
        *_triton_core(),
        Family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", Signal.PROMPT_TOKENS),
        Family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
               Signal.GENERATION_TOKENS),
        Family("vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.",
               Signal.TTFT, TTFT_V0),
        Family("vllm:time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.",
               Signal.ITL, ITL_V0),
        Family("vllm:e2e_request_latency_seconds", "histogram", "Histogram of end to end request latency in seconds.",
               Signal.E2E, E2E_EARLY),
        Family("vllm:request_prompt_tokens", "histogram", "Number of prefill tokens processed.", Signal.PROMPT_LENGTH,
               tokens),
        Family("vllm:request_generation_tokens", "histogram", "Number of generation tokens processed.",
               Signal.GENERATION_LENGTH, tokens),
        Family("vllm:request_params_n", "histogram", "Histogram of the n request parameter.", Signal.PARAMS_N,
               PARAMS_N),
    )


# --- GPUs -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuSpec:
    count: int = 2
    name: str = "NVIDIA A100-SXM4-80GB"
    memory_bytes: int = 85899345920
    weights_bytes: int = 70_000_000_000  # per GPU, e.g. Llama 3.1 70B in bf16 over two GPUs
    idle_watts: float = 60.0
    limit_watts: float = 400.0

    def uuid(self, index: int) -> str:
        return f"GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a{index:02d}"

    def energy_joules(self, recorder: Recorder, index: int) -> float:
        """GPU ``index``'s energy since the engine's first step (the ranks draw alike; later ones
        a little less, as their utilization reads 1% lower each)."""
        return recorder.energy_joules(self.idle_watts, self.limit_watts) * (1 - 0.001 * index)

    def readings(self, recorder: Recorder) -> list[tuple[int, float, float, float]]:
        """(index, utilization 0..1, memory used bytes, power W) per GPU; tensor-parallel ranks move together."""
        util = recorder.gpu_utilization()
        kv_bytes = (self.memory_bytes * 0.9 - self.weights_bytes)  # vLLM preallocates 90% of memory
        used = self.weights_bytes + max(0.0, kv_bytes)
        out = []
        for i in range(self.count):
            u = max(0.0, min(1.0, util - 0.01 * i))
            out.append((i, u, used, self.idle_watts + u * (self.limit_watts - self.idle_watts)))
        return out


def triton_gpu_text(gpu: GpuSpec) -> Callable[[Recorder, str, float], str]:
    def render(recorder: Recorder, model: str, now: float) -> str:
        rows = gpu.readings(recorder)

        def fam(name: str, kind: str, help_text: str, value: Callable[[tuple[int, float, float, float]], float]) -> str:
            lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f'{name}{{gpu_uuid="{gpu.uuid(r[0])}"}} {_number(round(value(r), 6))}' for r in rows]
            return "\n".join(lines) + "\n"

        return (fam("nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0)", lambda r: r[1])
                + fam("nv_gpu_memory_total_bytes", "gauge", "GPU total memory, in bytes", lambda r: gpu.memory_bytes)
                + fam("nv_gpu_memory_used_bytes", "gauge", "GPU used memory, in bytes", lambda r: r[2])
                + fam("nv_gpu_power_usage", "gauge", "GPU power usage in watts", lambda r: r[3])
                + fam("nv_gpu_power_limit", "gauge", "GPU power management limit in watts", lambda r: gpu.limit_watts)
                + fam("nv_energy_consumption", "counter", "GPU energy consumption in joules since the Triton Server "
                      "started", lambda r: round(gpu.energy_joules(recorder, r[0]), 3)))
    return render


def dcgm_text(recorder: Recorder, gpu: GpuSpec, hostname: str = "sim-node") -> str:
    """dcgm-exporter's default counters (default-counters.csv) for the simulated GPUs."""
    rows = gpu.readings(recorder)
    mib = 1024 * 1024

    def labels(i: int) -> str:
        return (f'{{gpu="{i}",UUID="{gpu.uuid(i)}",pci_bus_id="00000000:{7 + 8 * i:02X}:00.0",device="nvidia{i}",'
                f'modelName="{gpu.name}",Hostname="{hostname}"}}')

    fields: list[tuple[str, str, str, Callable[[tuple[int, float, float, float]], float]]] = [
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda r: round(r[1] * 100)),
        ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda r: r[2] // mib),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda r: (gpu.memory_bytes - r[2]) // mib),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda r: round(r[3], 3)),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
         lambda r: round(r[1], 6)),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
         lambda r: round(gpu.energy_joules(recorder, r[0]) * 1000)),
    ]
    out = []
    for name, kind, help_text, value in fields:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out += [f"{name}{labels(r[0])} {_number(value(r))}\n" for r in rows]
    return "".join(out)


# --- the catalogue -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormatSpec:
    """How `infersight simulate --engine E --version V` speaks."""

    engine: str
    version: str
    build: Callable[[int, GpuSpec], Format]
    description: str


def _v1(version: tuple[int, int]) -> Callable[[int, GpuSpec], Format]:
    return lambda max_len, gpu: Format(f"vllm-{version[0]}.{version[1]}", _vllm_v1_families(version, max_len),
                                       lambda m: {"engine": "0", "model_name": m})


FORMATS: dict[tuple[str, str], FormatSpec] = {}


def _register(engine: str, version: str, build: Callable[[int, GpuSpec], Format], description: str) -> None:
    FORMATS[(engine, version)] = FormatSpec(engine, version, build, description)


_register("vllm", "0.6", lambda max_len, gpu: Format("vllm-0.6", _vllm_v0_6_families(max_len),
                                                     lambda m: {"model_name": m}),
          "vLLM 0.6 (V0 engine): gpu_cache_usage_perc, time_per_output_token_seconds")
_register("vllm", "0.10", _v1((0, 10)), "vLLM 0.10.2 (V1): old and new names side by side")
_register("vllm", "0.33", _v1((0, 33)), "vLLM 0.33 (V1): kv_cache_usage_perc, inter_token_latency_seconds")
_register("nim", "1.x", lambda max_len, gpu: Format("nim-1.x", _nim_families(max_len), lambda m: {"model_name": m},
                                                    path="/v1/metrics"),
          "NVIDIA NIM for LLMs 1.x: unprefixed vLLM V0 names at /v1/metrics")
_register("triton", "trtllm", lambda max_len, gpu: Format("triton-trtllm", _triton_trtllm_families(),
                                                          lambda m: {"model": m, "version": "1"}, style="cpp",
                                                          extra=triton_gpu_text(gpu)),
          "Triton + TensorRT-LLM backend (ensemble in front), port 8002")
_register("triton", "vllm", lambda max_len, gpu: Format("triton-vllm", _triton_vllm_families(max_len),
                                                        lambda m: {"model": m, "version": "1"}, style="cpp",
                                                        extra=triton_gpu_text(gpu)),
          "Triton + vLLM backend (24.08+), port 8002")
_register("sglang", "0.5", lambda max_len, gpu: Format("sglang-0.5", _sglang_families(),
                                                       lambda m: {"model_name": m, "tp_rank": "0"}),
          "SGLang 0.5")
_register("trtllm", "2026", lambda max_len, gpu: Format("trtllm-2026", _trtllm_serve_families(),
                                                        lambda m: {"model_name": m, "engine_type": "pytorch"},
                                                        path="/prometheus/metrics"),
          "TensorRT-LLM's trtllm-serve, 2026 (trtllm_ prefix) at /prometheus/metrics")
