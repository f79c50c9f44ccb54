"""NVIDIA Triton Inference Server: core, TensorRT-LLM backend, vLLM backend, GPU metrics.

Reference: shared/reference/engine-metrics.md section 2. Triton's exposition comes from
prometheus-cpp, so counters carry no ``_total`` and the parser hands them over under their own
name. Series carry ``model`` (the model-repository name) and ``version``; versions are summed.
"""

from infersight.exporter.adapters.base import Adapter, Kind, Outcomes, Row, Take, Unit
from infersight.exporter.schema import Engine, M, Outcome

# nv_inference_request_failure{reason} (24.08+; engine-metrics.md 2.2): a cancelled request was
# abandoned by its client; a rejected one was refused at admission (queue full), the same outcome
# as vLLM's 4xx and TGI's validation errors; backend and other failures are the server's errors.
FAILURE_REASON = Outcomes(label="reason", mapping={"CANCELED": Outcome.ABORTED, "REJECTED": Outcome.REJECTED},
                          default=Outcome.ERROR)

TRTLLM_REQUESTS = "nv_trt_llm_request_metrics"
TRTLLM_KV_BLOCKS = "nv_trt_llm_kv_cache_block_metrics"

# The vLLM backend's own bucket lists (vllm_backend src/utils/metrics.py): vLLM V0's early lists.
VLLM_BACKEND_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                             10.0)
VLLM_BACKEND_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
VLLM_BACKEND_E2E_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
FIRST_RESPONSE_BUCKETS_MS = (100.0, 500.0, 2000.0, 5000.0)  # core default; config.pbtxt may override

ROWS = (
    # Running: TensorRT-LLM's scheduled requests (as the Gateway API inference extension reads it).
    Row(M.REQUESTS_RUNNING, TRTLLM_REQUESTS, where={"request_type": "scheduled"}),
    # Waiting: Triton's own scheduler queue plus TensorRT-LLM's queue; they hold different requests.
    Row(M.REQUESTS_WAITING, "nv_inference_pending_request_count", part="core"),  # 23.09+
    Row(M.REQUESTS_WAITING, TRTLLM_REQUESTS, where={"request_type": "waiting"}, part="trtllm"),  # TRT-LLM 2025-04+
    Row(M.KV_CACHE_USAGE_RATIO, TRTLLM_KV_BLOCKS, where={"kv_cache_block_type": "fraction"}),  # TRT-LLM 2025-04+
    # alias: older TRT-LLM backends report only block counts.
    Row(M.KV_CACHE_USAGE_RATIO, TRTLLM_KV_BLOCKS, where={"kv_cache_block_type": "used"},
        per={"kv_cache_block_type": "max"}),
    # Tokens: the vLLM backend's counters, else TRT-LLM's per-request token histograms (2024-11+).
    Row(M.PROMPT_TOKENS, "vllm:prompt_tokens"),
    Row(M.PROMPT_TOKENS, "nv_llm_input_token_len", take=Take.HISTOGRAM_SUM),  # alias: TRT-LLM backend
    Row(M.GENERATION_TOKENS, "vllm:generation_tokens"),
    Row(M.GENERATION_TOKENS, "nv_llm_output_token_len", take=Take.HISTOGRAM_SUM),  # alias: TRT-LLM backend
    Row(M.REQUESTS, "nv_inference_request_success", outcome=Outcome.SUCCESS, part="success"),
    Row(M.REQUESTS, "nv_inference_request_failure", outcomes=FAILURE_REASON, part="failure"),  # no reason before 24.08: error
    Row(M.TIME_TO_FIRST_TOKEN, "vllm:time_to_first_token_seconds", buckets=VLLM_BACKEND_TTFT_BUCKETS),  # vLLM backend
    # alias: core, opt-in with --metrics-config histogram_latencies=true (24.11+), in milliseconds.
    Row(M.TIME_TO_FIRST_TOKEN, "nv_inference_first_response_histogram_ms", unit=Unit.MILLISECONDS,
        buckets=FIRST_RESPONSE_BUCKETS_MS),
    # The vLLM backend still uses the pre-0.10.2 name for its inter-token gaps.
    Row(M.INTER_TOKEN_LATENCY, "vllm:time_per_output_token_seconds", buckets=VLLM_BACKEND_TPOT_BUCKETS),
    Row(M.REQUEST_DURATION, "vllm:e2e_request_latency_seconds", buckets=VLLM_BACKEND_E2E_BUCKETS),  # vLLM backend
    # alias: core keeps only a cumulative microsecond sum of successful requests; it becomes a
    # histogram with a +Inf bucket so that averages still work.
    Row(M.REQUEST_DURATION, "nv_inference_request_duration_us", kind=Kind.COUNTER, unit=Unit.MICROSECONDS,
        count_source="nv_inference_request_success"),
    Row(M.REQUEST_QUEUE, "nv_inference_queue_duration_us", kind=Kind.COUNTER, unit=Unit.MICROSECONDS,
        count_source="nv_inference_request_success"),
    Row(M.GPU_UTILIZATION_RATIO, "nv_gpu_utilization"),  # 0..1 already
    Row(M.GPU_MEMORY_USED_BYTES, "nv_gpu_memory_used_bytes"),
    Row(M.GPU_MEMORY_TOTAL_BYTES, "nv_gpu_memory_total_bytes"),
    Row(M.GPU_POWER_WATTS, "nv_gpu_power_usage"),
    Row(M.GPU_ENERGY_JOULES, "nv_energy_consumption"),  # joules since Triton started (engine-metrics.md 2.2)
)

ADAPTER = Adapter(
    engine=Engine.TRITON,
    rows=ROWS,
    model_label="model",
    gpu_labels=("gpu_uuid",),
    detect=("nv_inference_count", "nv_inference_exec_count", "nv_inference_compute_infer_duration_us",
            "nv_inference_compute_input_duration_us", "nv_inference_compute_output_duration_us",
            "nv_gpu_power_limit", "nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_trt_llm_runtime_memory_metrics",
            "nv_trt_llm_inflight_batcher_metrics", "nv_trt_llm_general_metrics", "nv_trt_llm_v1_metrics",
            # the vLLM backend's own histograms (engine-metrics.md 2.5), which vLLM serves too
            "vllm:request_prompt_tokens", "vllm:request_generation_tokens", "vllm:request_params_n"),
)
