"""SGLang (reference: shared/reference/engine-metrics.md section 4.1; sglang 0.5.x).

Scheduler series carry rank labels (tp_rank, pp_rank, dp_rank, ...) and tokenizer series an
``is_streaming`` label; both are summed away (a ratio is averaged).
"""

from infersight.exporter.adapters.base import Adapter, Row
from infersight.exporter.schema import Engine, M, Outcome

# sglang/srt/observability/metrics_collector.py (0.5.x) defaults.
TTFT_BUCKETS = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)
ITL_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
               0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0)

ROWS = (
    Row(M.REQUESTS_RUNNING, "sglang:num_running_reqs"),
    Row(M.REQUESTS_WAITING, "sglang:num_queue_reqs"),
    Row(M.KV_CACHE_USAGE_RATIO, "sglang:token_usage"),  # KV pool usage, 0..1
    Row(M.PROMPT_TOKENS, "sglang:prompt_tokens"),
    Row(M.GENERATION_TOKENS, "sglang:generation_tokens"),
    # num_requests_total counts every finished request, aborted ones included: subtract those.
    # num_aborted_requests_total is counted per abort call, not per request (an abort of a request
    # that already finished, or one abort for all), so the difference can shrink or go below 0:
    # the exporter never lets a counter with a subtracted row go down (scraper.MonotonicGuard).
    Row(M.REQUESTS, "sglang:num_requests", outcome=Outcome.SUCCESS, part="finished"),
    Row(M.REQUESTS, "sglang:num_aborted_requests", outcome=Outcome.SUCCESS, sign=-1, part="not_success",
        provides=False),
    Row(M.REQUESTS, "sglang:num_aborted_requests", outcome=Outcome.ABORTED, part="aborted"),
    Row(M.PREEMPTIONS, "sglang:num_retracted_requests"),  # retractions are SGLang's preemptions
    # SGLang has no prefix-cache query counter; every prompt token is looked up in the radix cache,
    # so its prompt tokens are the queries, but only where it reports its cache hits at all.
    Row(M.PREFIX_CACHE_QUERIES, "sglang:prompt_tokens", requires="sglang:cached_tokens"),
    Row(M.PREFIX_CACHE_HITS, "sglang:cached_tokens"),
    # cached_tokens_total{cache_source} (engine-metrics.md 4.1): every tier (device, host).
    Row(M.PROMPT_TOKENS_CACHED, "sglang:cached_tokens"),
    # alias: the scheduler's realtime_tokens_total{mode="prefill_cache"} (engines-and-peers-2026-12.md,
    # SGLang @ 00ae9c15), for deployments that read only the scheduler's metrics.
    Row(M.PROMPT_TOKENS_CACHED, "sglang:realtime_tokens", where={"mode": "prefill_cache"}),
    Row(M.TIME_TO_FIRST_TOKEN, "sglang:time_to_first_token_seconds", buckets=TTFT_BUCKETS),
    Row(M.INTER_TOKEN_LATENCY, "sglang:inter_token_latency_seconds", buckets=ITL_BUCKETS),
    # alias: releases before 0.4.6, whose time_per_output_token_seconds was the per-gap histogram
    # (GPUStack maps it for SGLang <= 0.4.4: engines-and-peers-2026-12.md, "GPUStack"); a payload
    # with inter_token_latency_seconds never reads it here (the first row wins).
    Row(M.INTER_TOKEN_LATENCY, "sglang:time_per_output_token_seconds"),
    Row(M.TIME_PER_OUTPUT_TOKEN, "sglang:request_time_per_output_token_seconds", buckets=ITL_BUCKETS),
    # alias: 0.4.6 to 0.5.x, where time_per_output_token_seconds is a per-request mean beside the
    # per-gap inter_token_latency_seconds (read as TPOT only beside it: before 0.4.6 it was per gap).
    Row(M.TIME_PER_OUTPUT_TOKEN, "sglang:time_per_output_token_seconds",
        requires="sglang:inter_token_latency_seconds"),
    Row(M.REQUEST_DURATION, "sglang:e2e_request_latency_seconds"),
    Row(M.REQUEST_QUEUE, "sglang:queue_time_seconds"),
)

ADAPTER = Adapter(
    engine=Engine.SGLANG,
    rows=ROWS,
    model_label="model_name",
    prefix_aliases={"sglang_": "sglang:"},  # scrapers that asked prometheus-client >= 0.23 for OpenMetrics
    detect=("sglang:num_used_tokens", "sglang:gen_throughput", "sglang:cache_hit_rate", "sglang:max_total_num_tokens",
            "sglang:num_retracted_reqs", "sglang:utilization", "sglang:is_cuda_graph"),
)
