"""TensorRT-LLM's own OpenAI server, ``trtllm-serve`` (not Triton's TensorRT-LLM backend: that is
the Triton adapter). Reference: shared/reference/engine-metrics.md section 2.3 (the end) and 5.2,
shared/reference/engines-and-peers-2026-12.md "TRT-LLM" and "Dynamo".

Served at ``/prometheus/metrics`` (PR NVIDIA/TensorRT-LLM#5785, 2025-07), labels ``model_name``
and ``engine_type``. Three spellings, one table:
- 2026 releases (tensorrt_llm/metrics/collector.py @ 050f80de): every family prefixed ``trtllm_``;
- Dynamo passes them through as ``trtllm:`` (a prefix alias);
- the first 2025 collector (@ 89fd9b74, "adapted from vLLM v0.10.0rc1") had five families without
  a prefix: request success, e2e, TTFT, TPOT and queue time (alias rows below). The other
  families of that release are not known, so no other unprefixed name is read: NIM 1.x serves
  unprefixed vLLM-style names too.
"""

from infersight.exporter.adapters.base import Adapter, Row
from infersight.exporter.adapters.vllm import FINISHED_REASON, ITL_BUCKETS, LATENCY_BUCKETS, TTFT_BUCKETS
from infersight.exporter.schema import Engine, M

ROWS = (
    # Gauges read by the Gateway API inference extension (engine-metrics.md 5.2) and the 2026 collector.
    Row(M.REQUESTS_RUNNING, "trtllm_num_requests_running"),
    Row(M.REQUESTS_WAITING, "trtllm_num_requests_waiting"),
    # Read as a 0..1 fraction, as GIE reads it beside vLLM's and SGLang's fractions; its scale is
    # marked "not verified" in engine-metrics.md 5.2.
    Row(M.KV_CACHE_USAGE_RATIO, "trtllm_kv_cache_utilization"),
    Row(M.PROMPT_TOKENS, "trtllm_prompt_tokens"),  # 2026 collector
    Row(M.GENERATION_TOKENS, "trtllm_generation_tokens"),  # 2026 collector
    # request_success_total{finished_reason}: vLLM's counter and reasons (adapted from vLLM 0.10).
    Row(M.REQUESTS, "trtllm_request_success", outcomes=FINISHED_REASON),
    Row(M.REQUESTS, "request_success", outcomes=FINISHED_REASON),  # alias: the unprefixed 2025 collector
    Row(M.SPEC_DECODE_DRAFT_TOKENS, "trtllm_spec_decode_drafted_tokens"),  # 2026 collector
    Row(M.SPEC_DECODE_ACCEPTED_TOKENS, "trtllm_spec_decode_accepted_tokens"),  # 2026 collector
    # Histograms with vLLM's bucket lists (engine-metrics.md 2.3, PR #5785).
    Row(M.TIME_TO_FIRST_TOKEN, "trtllm_time_to_first_token_seconds", buckets=TTFT_BUCKETS),
    Row(M.TIME_TO_FIRST_TOKEN, "time_to_first_token_seconds", buckets=TTFT_BUCKETS),  # alias: 2025, unprefixed
    # TRT-LLM observes its histograms once per finished request: its time per output token is the
    # per-request mean (TPOT), not vLLM 0.10's per-gap histogram of the same name.
    Row(M.TIME_PER_OUTPUT_TOKEN, "trtllm_time_per_output_token_seconds", buckets=ITL_BUCKETS),
    Row(M.TIME_PER_OUTPUT_TOKEN, "time_per_output_token_seconds", buckets=ITL_BUCKETS),  # alias: 2025, unprefixed
    Row(M.REQUEST_DURATION, "trtllm_e2e_request_latency_seconds", buckets=LATENCY_BUCKETS),
    Row(M.REQUEST_DURATION, "e2e_request_latency_seconds", buckets=LATENCY_BUCKETS),  # alias: 2025, unprefixed
    Row(M.REQUEST_QUEUE, "trtllm_request_queue_time_seconds", buckets=LATENCY_BUCKETS),
    Row(M.REQUEST_QUEUE, "request_queue_time_seconds", buckets=LATENCY_BUCKETS),  # alias: 2025, unprefixed
    Row(M.REQUEST_PREFILL, "trtllm_request_prefill_time_seconds", buckets=LATENCY_BUCKETS),  # 2026 collector
    Row(M.REQUEST_DECODE, "trtllm_request_decode_time_seconds", buckets=LATENCY_BUCKETS),  # 2026 collector
)

ADAPTER = Adapter(
    engine=Engine.TRTLLM,
    rows=ROWS,
    model_label="model_name",
    prefix_aliases={"trtllm:": "trtllm_"},  # NVIDIA Dynamo's pass-through (its TensorRT-LLM metrics docs)
    # 2026 collector families no row reads (engines-and-peers-2026-12.md, "TRT-LLM").
    detect=("trtllm_kv_cache_max_blocks", "trtllm_kv_cache_tokens_per_block", "trtllm_num_requests_completed",
            "trtllm_iteration_latency_seconds", "trtllm_scheduled_batch_size", "trtllm_kv_cache_hit_rate",
            "trtllm_request_inference_time_seconds", "trtllm_request_error", "trtllm_prompt_cached_tokens",
            "trtllm_kv_cache_host_utilization"),
)
