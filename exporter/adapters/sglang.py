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
    Row(M.REQUESTS, "sglang:num_requests", outcome=Outcome.SUCCESS, part="finished"),
    Row(M.REQUESTS, "sglang:num_aborted_requests", outcome=Outcome.SUCCESS, sign=-1, part="not_success"),
    Row(M.REQUESTS, "sglang:num_aborted_requests", outcome=Outcome.ABORTED, part="aborted"),
    Row(M.PREEMPTIONS, "sglang:num_retracted_requests"),  # retractions are SGLang's preemptions
    # SGLang has no prefix-cache query counter; every prompt token is looked up in the radix cache.
    Row(M.PREFIX_CACHE_QUERIES, "sglang:prompt_tokens"),
    Row(M.PREFIX_CACHE_HITS, "sglang:cached_tokens"),
    Row(M.TIME_TO_FIRST_TOKEN, "sglang:time_to_first_token_seconds", buckets=TTFT_BUCKETS),
    Row(M.INTER_TOKEN_LATENCY, "sglang:inter_token_latency_seconds", buckets=ITL_BUCKETS),
    Row(M.TIME_PER_OUTPUT_TOKEN, "sglang:request_time_per_output_token_seconds", buckets=ITL_BUCKETS),
    Row(M.REQUEST_DURATION, "sglang:e2e_request_latency_seconds"),
    Row(M.REQUEST_QUEUE, "sglang:queue_time_seconds"),
)

ADAPTER = Adapter(
    engine=Engine.SGLANG,
    rows=ROWS,
    model_label="model_name",
    prefix_aliases={"sglang_": "sglang:"},  # scrapers that asked prometheus-client >= 0.23 for OpenMetrics
    detect=("sglang:", "sglang_num_"),
)
