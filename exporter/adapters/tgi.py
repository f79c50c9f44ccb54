"""Hugging Face TGI (reference: shared/reference/engine-metrics.md section 4.2; TGI 2.x-3.x).

TGI's Rust exporter has no model label (a ``model_id`` label is read where a deployment adds one,
else the target's configured ``model`` fills it) and no ``_total`` suffix. It exports no TTFT,
no per-gap latency and no KV-cache usage.
"""

from itertools import accumulate
from operator import mul

from infersight.exporter.adapters.base import Adapter, Outcomes, Row, Take
from infersight.exporter.schema import Engine, M, Outcome

# TGI's router buckets for its duration histograms: from 0.0001 s, multiplied by 1.5 35 times
# (0.00015 ... ; repeated multiplication, as TGI computes them, so the floats match its le labels).
DURATION_BUCKETS = tuple(accumulate([1.5] * 35, mul, initial=0.0001))[1:]

FAILURE_ERR = Outcomes(label="err", mapping={"validation": Outcome.REJECTED}, default=Outcome.ERROR)

ROWS = (
    Row(M.REQUESTS_RUNNING, "tgi_batch_current_size"),  # requests in the running batch
    Row(M.REQUESTS_WAITING, "tgi_queue_size"),
    Row(M.REQUESTS, "tgi_request_success", outcome=Outcome.SUCCESS, part="success"),
    # err="validation" (engine-metrics.md 4.2) is the client's invalid request: rejected, as vLLM's
    # 4xx answers are; every other err value is the server's failure.
    Row(M.REQUESTS, "tgi_request_failure", outcomes=FAILURE_ERR, part="failure"),
    Row(M.TIME_PER_OUTPUT_TOKEN, "tgi_request_mean_time_per_token_duration", buckets=DURATION_BUCKETS),
    Row(M.REQUEST_DURATION, "tgi_request_duration", buckets=DURATION_BUCKETS),
    Row(M.REQUEST_QUEUE, "tgi_request_queue_duration", buckets=DURATION_BUCKETS),
    # Tokens: TGI counts them only in per-request histograms, whose _sum is the running total.
    Row(M.PROMPT_TOKENS, "tgi_request_input_length", take=Take.HISTOGRAM_SUM),
    Row(M.GENERATION_TOKENS, "tgi_request_generated_tokens", take=Take.HISTOGRAM_SUM),
)

# TGI's Rust exporter adds no model label of its own (engine-metrics.md 4.2). A deployment that
# adds one (a relabeling scrape, a proxy) spells it as TGI names the model, `model_id` (its
# --model-id flag and /info field): it is read when present; else the target's configured
# `model`; else the exporter warns once that the model cannot be known.
ADAPTER = Adapter(
    engine=Engine.TGI,
    rows=ROWS,
    model_label="model_id",
    detect=("tgi_request_count", "tgi_batch_current_max_tokens", "tgi_batch_max_total_tokens",
            "tgi_request_validation_duration", "tgi_request_inference_duration", "tgi_batch_inference_duration",
            "tgi_batch_next_size", "tgi_request_max_new_tokens"),
)
