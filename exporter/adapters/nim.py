"""NVIDIA NIM for LLMs (reference: shared/reference/engine-metrics.md section 3).

NIM 1.x serves vLLM-V0-style names without the ``vllm:`` prefix on ``/v1/metrics``; releases built
on newer vLLM pass the ``vllm:`` names through. Both are mapped; per model the first row with
data wins.
"""

from infersight.exporter.adapters.base import Adapter, Row
from infersight.exporter.adapters.vllm import FINISHED_REASON, ITL_BUCKETS, LATENCY_BUCKETS, TTFT_BUCKETS
from infersight.exporter.schema import Engine, M

# NIM 1.x bucket bounds (the NIM 1.0.0 capture: vLLM V0's 0.4-0.5 lists).
NIM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
NIM_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
NIM_E2E_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)

ROWS = (
    Row(M.REQUESTS_RUNNING, "num_requests_running"),  # NIM 1.x
    Row(M.REQUESTS_RUNNING, "vllm:num_requests_running"),  # alias: NIM releases exposing vLLM names
    Row(M.REQUESTS_WAITING, "num_requests_waiting"),  # NIM 1.x
    Row(M.REQUESTS_WAITING, "vllm:num_requests_waiting"),  # alias: vLLM names
    Row(M.KV_CACHE_USAGE_RATIO, "gpu_cache_usage_perc"),  # NIM 1.x, a 0..1 fraction
    Row(M.KV_CACHE_USAGE_RATIO, "vllm:kv_cache_usage_perc"),  # alias: vLLM 0.9.2+ names
    Row(M.KV_CACHE_USAGE_RATIO, "vllm:gpu_cache_usage_perc"),  # alias: vLLM names up to 0.11
    Row(M.PROMPT_TOKENS, "prompt_tokens"),  # NIM 1.x
    Row(M.PROMPT_TOKENS, "vllm:prompt_tokens"),  # alias: vLLM names
    Row(M.GENERATION_TOKENS, "generation_tokens"),  # NIM 1.x
    Row(M.GENERATION_TOKENS, "vllm:generation_tokens"),  # alias: vLLM names
    # request_finish_total carries finished_reason; NIM's request_success/failure_total are its
    # sums and would double count.
    Row(M.REQUESTS, "request_finish", outcomes=FINISHED_REASON),  # NIM 1.x
    Row(M.REQUESTS, "vllm:request_success", outcomes=FINISHED_REASON),  # alias: vLLM names
    Row(M.PREEMPTIONS, "vllm:num_preemptions"),  # vLLM names only; NIM 1.x has none
    Row(M.PREFIX_CACHE_QUERIES, "vllm:prefix_cache_queries"),  # vLLM names only
    Row(M.PREFIX_CACHE_HITS, "vllm:prefix_cache_hits"),  # vLLM names only
    Row(M.TIME_TO_FIRST_TOKEN, "time_to_first_token_seconds", buckets=NIM_TTFT_BUCKETS),  # NIM 1.x
    Row(M.TIME_TO_FIRST_TOKEN, "vllm:time_to_first_token_seconds", buckets=TTFT_BUCKETS),  # alias: vLLM names
    # NIM 1.x: per-gap, as in vLLM V0.
    Row(M.INTER_TOKEN_LATENCY, "time_per_output_token_seconds", buckets=NIM_TPOT_BUCKETS),
    Row(M.INTER_TOKEN_LATENCY, "vllm:inter_token_latency_seconds", buckets=ITL_BUCKETS),  # alias: vLLM 0.10.2+ names
    Row(M.INTER_TOKEN_LATENCY, "vllm:time_per_output_token_seconds", buckets=ITL_BUCKETS),  # alias: vLLM names <= 0.14
    # vLLM 0.11+ names only.
    Row(M.TIME_PER_OUTPUT_TOKEN, "vllm:request_time_per_output_token_seconds", buckets=ITL_BUCKETS),
    Row(M.REQUEST_DURATION, "e2e_request_latency_seconds", buckets=NIM_E2E_BUCKETS),  # NIM 1.x
    Row(M.REQUEST_DURATION, "vllm:e2e_request_latency_seconds", buckets=LATENCY_BUCKETS),  # alias: vLLM names
    Row(M.REQUEST_QUEUE, "vllm:request_queue_time_seconds", buckets=LATENCY_BUCKETS),  # vLLM names only
)

ADAPTER = Adapter(
    engine=Engine.NIM,
    rows=ROWS,
    model_label="model_name",
    # NIM 1.x's own unprefixed families (engine-metrics.md 3) that no row reads.
    detect=("num_request_max", "request_failure", "request_prompt_tokens", "request_generation_tokens"),
)
