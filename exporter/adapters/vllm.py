"""vLLM, 0.4 to 0.33, V0 and V1 engines (reference: shared/reference/engine-metrics.md section 1).

Rows are keyed by the ``vllm:`` name; ``prefix_aliases`` folds in the other spellings. Within a
metric, the first row wins and later rows are aliases for releases that lack the first.
"""

from infersight.exporter.adapters.base import Adapter, Outcomes, Row
from infersight.exporter.schema import Engine, M, Outcome

# vLLM's finished_reason: stop and length (and repetition, 0.18+) are normal completions.
FINISHED_REASON = Outcomes(
    label="finished_reason",
    mapping={"abort": Outcome.ABORTED, "error": Outcome.ERROR},  # error: 0.13+
    default=Outcome.SUCCESS,
)

# Default bucket bounds, vLLM 0.8.5+ (vllm/v1/metrics/buckets.py in 0.30+). Releases up to 0.8.0
# lack only the tail above 10 s (TTFT) and 2.5 s (ITL); 0.6-0.8.0 lack 120 s and up for latency.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                   480.0, 960.0, 1920.0, 7680.0)

# The API server's HTTP status classes (prometheus-fastapi-instrumentator groups them as "4xx", "5xx").
CLIENT_ERROR_STATUS = r"4(xx|\d\d)"
SERVER_ERROR_STATUS = r"5(xx|\d\d)"

ROWS = (
    Row(M.REQUESTS_RUNNING, "vllm:num_requests_running"),
    Row(M.REQUESTS_WAITING, "vllm:num_requests_waiting"),
    # 0.21+ (engine-metrics.md 1.2, "Semantics worth normalizing on"): reason = capacity | deferred.
    Row(M.REQUESTS_WAITING_BY_REASON, "vllm:num_requests_waiting_by_reason", labels={"reason": "reason"}),
    # 0.11.2+ (engine-metrics.md 1.3): sleep_state="awake" is 1 while the engine is awake.
    Row(M.ENGINE_AWAKE_RATIO, "vllm:engine_sleep_state", where={"sleep_state": "awake"}),
    Row(M.KV_CACHE_USAGE_RATIO, "vllm:kv_cache_usage_perc"),  # 0.9.2+; a 0..1 fraction despite _perc
    Row(M.KV_CACHE_USAGE_RATIO, "vllm:gpu_cache_usage_perc"),  # alias: V0, and V1 up to 0.11 (hidden in 0.11)
    Row(M.PROMPT_TOKENS, "vllm:prompt_tokens"),
    Row(M.GENERATION_TOKENS, "vllm:generation_tokens"),
    Row(M.REQUESTS, "vllm:request_success", outcomes=FINISHED_REASON, part="engine"),
    # The API server's own 5xx answers (prometheus-fastapi-instrumentator, status grouped as
    # "5xx"): requests that failed before or outside the engine. A non-streaming request that
    # fails inside the engine can count here and as finished_reason="error" (0.13+). Every
    # FastAPI app serves http_requests_total: alone it does not make the signal available.
    Row(M.REQUESTS, "http_requests", where={"status": SERVER_ERROR_STATUS}, outcome=Outcome.ERROR, part="http",
        provides=False),
    # Its 4xx answers: requests refused before the engine saw them (a prompt over the context, an
    # unknown model); the real 0.32 capture counts the over-long prompt here and in no finished_reason.
    Row(M.REQUESTS, "http_requests", where={"status": CLIENT_ERROR_STATUS}, outcome=Outcome.REJECTED,
        part="http_rejected", provides=False),
    # 0.33+ (engine-metrics.md 1.3): admission attempts refused by --max-num-queued-* limits.
    Row(M.ADMISSION_REJECTIONS, "vllm:admission_rejections"),
    Row(M.PREEMPTIONS, "vllm:num_preemptions"),
    Row(M.PREFIX_CACHE_QUERIES, "vllm:prefix_cache_queries"),  # 0.9.2+, tokens
    Row(M.PREFIX_CACHE_QUERIES, "vllm:gpu_prefix_cache_queries"),  # alias: V1 0.7.3-0.11 (blocks up to 0.8)
    Row(M.PREFIX_CACHE_HITS, "vllm:prefix_cache_hits"),  # 0.9.2+, tokens
    Row(M.PREFIX_CACHE_HITS, "vllm:gpu_prefix_cache_hits"),  # alias: V1 0.7.3-0.11 (blocks up to 0.8)
    # 0.18.1+ (engine-metrics.md 1.3): local + external (KV connector, offloaded tiers) cache hits.
    Row(M.PROMPT_TOKENS_CACHED, "vllm:prompt_tokens_cached"),
    # Speculative decoding (engine-metrics.md 1.2, 1.4): V1 0.8.5+ counters; V0 0.5.5-0.9.2 had the
    # same draft and accepted token counters (no drafts count).
    Row(M.SPEC_DECODE_DRAFTS, "vllm:spec_decode_num_drafts"),
    Row(M.SPEC_DECODE_DRAFT_TOKENS, "vllm:spec_decode_num_draft_tokens"),
    Row(M.SPEC_DECODE_ACCEPTED_TOKENS, "vllm:spec_decode_num_accepted_tokens"),
    Row(M.TIME_TO_FIRST_TOKEN, "vllm:time_to_first_token_seconds", buckets=TTFT_BUCKETS),
    Row(M.INTER_TOKEN_LATENCY, "vllm:inter_token_latency_seconds", buckets=ITL_BUCKETS),  # 0.10.2+
    # alias: up to 0.14 (hidden 0.12-0.14); the same per-gap observations under the old name.
    Row(M.INTER_TOKEN_LATENCY, "vllm:time_per_output_token_seconds", buckets=ITL_BUCKETS),
    Row(M.TIME_PER_OUTPUT_TOKEN, "vllm:request_time_per_output_token_seconds", buckets=ITL_BUCKETS),  # 0.11+
    Row(M.REQUEST_DURATION, "vllm:e2e_request_latency_seconds", buckets=LATENCY_BUCKETS),
    Row(M.REQUEST_QUEUE, "vllm:request_queue_time_seconds", buckets=LATENCY_BUCKETS),  # 0.6+
    Row(M.REQUEST_QUEUE, "vllm:time_in_queue_requests"),  # alias: V0 0.6-0.9 only; buckets not recorded
    # Scheduled -> first token and first -> last token (engine-metrics.md 1.2): V0 0.6.6+, V1 0.7.3+.
    Row(M.REQUEST_PREFILL, "vllm:request_prefill_time_seconds", buckets=LATENCY_BUCKETS),
    Row(M.REQUEST_DECODE, "vllm:request_decode_time_seconds", buckets=LATENCY_BUCKETS),
)

ADAPTER = Adapter(
    engine=Engine.VLLM,
    rows=ROWS,
    model_label="model_name",
    prefix_aliases={
        "ray_vllm:": "vllm:",  # vLLM inside Ray Serve LLM (Ray's metrics agent re-exports with this prefix)
        "vllm_": "vllm:",  # scrapers that asked for OpenMetrics from prometheus-client >= 0.23 (underscore escaping)
        "ray_vllm_": "vllm:",  # both of the above
        # KServe / Red Hat OpenShift AI re-export (engines-and-peers-2026-12.md, "Q2 user asks":
        # odh-dashboard PR #7739)
        "kserve_vllm:": "vllm:",
    },
    detect=("vllm:cache_config_info", "vllm:iteration_tokens_total", "vllm:request_prompt_tokens",
            "vllm:request_generation_tokens", "vllm:request_inference_time_seconds"),
)
