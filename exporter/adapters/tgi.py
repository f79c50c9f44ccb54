"""Hugging Face TGI (reference: shared/reference/engine-metrics.md section 4.2; TGI 2.x-3.x).

TGI's Rust exporter has no model label (the target's configured ``model`` fills it) and no
``_total`` suffix. It exports no TTFT and no per-gap latency.
"""

from itertools import accumulate
from operator import mul

from infersight.exporter.adapters.base import Adapter, Row, Take
from infersight.exporter.schema import Engine, M, Outcome

# TGI's router buckets for its duration histograms: from 0.0001 s, multiplied by 1.5 35 times
# (0.00015 ... ; repeated multiplication, as TGI computes them, so the floats match its le labels).
DURATION_BUCKETS = tuple(accumulate([1.5] * 35, mul, initial=0.0001))[1:]

ROWS = (
    Row(M.REQUESTS_RUNNING, "tgi_batch_current_size"),  # requests in the running batch
    Row(M.REQUESTS_WAITING, "tgi_queue_size"),
    Row(M.REQUESTS, "tgi_request_success", outcome=Outcome.SUCCESS, part="success"),
    # err: validation, overloaded, generation, ...; all are failed requests from the client's view.
    Row(M.REQUESTS, "tgi_request_failure", outcome=Outcome.ERROR, part="failure"),
    Row(M.TIME_PER_OUTPUT_TOKEN, "tgi_request_mean_time_per_token_duration", buckets=DURATION_BUCKETS),
    Row(M.REQUEST_DURATION, "tgi_request_duration", buckets=DURATION_BUCKETS),
    Row(M.REQUEST_QUEUE, "tgi_request_queue_duration", buckets=DURATION_BUCKETS),
    # Tokens: TGI counts them only in per-request histograms, whose _sum is the running total.
    Row(M.PROMPT_TOKENS, "tgi_request_input_length", take=Take.HISTOGRAM_SUM),
    Row(M.GENERATION_TOKENS, "tgi_request_generated_tokens", take=Take.HISTOGRAM_SUM),
)

ADAPTER = Adapter(
    engine=Engine.TGI,
    rows=ROWS,
    model_label=None,
    detect=("tgi_request_", "tgi_queue_size"),
)
