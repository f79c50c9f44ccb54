"""What the adapter tables mean, case by case, on small payloads written out in full."""

from __future__ import annotations

import math

import pytest

from infersight.exporter.adapters import ADAPTERS, DCGM
from infersight.exporter.normalize import Histogram, compile_plan, normalize
from infersight.exporter.parse import ParseError, parse
from infersight.exporter.schema import Engine, M


def run(engine: Engine | None, text: str, model: str | None = None, gpu: bool = True):
    plan = compile_plan(ADAPTERS[engine] if engine else DCGM, gpu=gpu)
    return normalize(plan, parse(text, plan.wanted), model)


def test_new_kv_name_wins_over_the_deprecated_one_when_both_are_served() -> None:
    # vLLM 0.9.2-0.10.2 serve both names with the same value; reading both would double count.
    result = run(Engine.VLLM, """\
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
""")
    assert result.series[M.KV_CACHE_USAGE_RATIO] == {("m",): 0.25}


def test_aliases_are_resolved_per_model() -> None:
    # One model still reports the old ITL name, the other the new one: each keeps its own.
    result = run(Engine.VLLM, """\
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="0.1",model_name="old"} 2
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="old"} 3
vllm:time_per_output_token_seconds_sum{model_name="old"} 0.4
vllm:time_per_output_token_seconds_count{model_name="old"} 3
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{le="0.1",model_name="new"} 1
vllm:inter_token_latency_seconds_bucket{le="+Inf",model_name="new"} 1
vllm:inter_token_latency_seconds_sum{model_name="new"} 0.05
vllm:inter_token_latency_seconds_count{model_name="new"} 1
""")
    assert result.series[M.INTER_TOKEN_LATENCY] == {
        ("old",): Histogram({0.1: 2, math.inf: 3}, 0.4, 3),
        ("new",): Histogram({0.1: 1, math.inf: 1}, 0.05, 1),
    }


def test_data_parallel_ranks_are_summed_and_ratios_averaged() -> None:
    result = run(Engine.VLLM, """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3
vllm:num_requests_running{engine="1",model_name="m"} 4
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="m"} 1
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 2
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.5
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 2
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.5",model_name="m"} 3
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 3
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.9
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 3
""")
    assert result.series[M.REQUESTS_RUNNING] == {("m",): 7.0}
    assert result.series[M.KV_CACHE_USAGE_RATIO] == {("m",): pytest.approx(0.4)}
    assert result.series[M.TIME_TO_FIRST_TOKEN] == {("m",): Histogram({0.5: 4, math.inf: 5}, 2.4, 5)}


def test_finished_reasons_map_to_outcomes_and_http_5xx_count_as_errors() -> None:
    result = run(Engine.VLLM, """\
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 10
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 5
vllm:request_success_total{engine="0",finished_reason="repetition",model_name="m"} 1
vllm:request_success_total{engine="0",finished_reason="abort",model_name="m"} 2
vllm:request_success_total{engine="0",finished_reason="error",model_name="m"} 3
# TYPE http_requests_total counter
http_requests_total{handler="/v1/completions",method="POST",status="2xx"} 18
http_requests_total{handler="/v1/completions",method="POST",status="5xx"} 4
http_requests_total{handler="/v1/chat/completions",method="POST",status="503"} 1
""")
    assert result.series[M.REQUESTS] == {("m", "success"): 16.0, ("m", "aborted"): 2.0, ("m", "error"): 8.0,
                                         ("m", "rejected"): 0.0}


def test_missing_outcomes_are_zero_so_error_ratios_exist() -> None:
    result = run(Engine.NIM, """\
# TYPE request_finish_total counter
request_finish_total{finished_reason="length",model_name="m"} 5
""")
    assert result.series[M.REQUESTS] == {("m", "success"): 5.0, ("m", "error"): 0.0, ("m", "aborted"): 0.0,
                                         ("m", "rejected"): 0.0}


def test_triton_microsecond_counters_become_inf_only_histograms() -> None:
    result = run(Engine.TRITON, """\
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 4
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="ensemble",reason="REJECTED",version="1"} 1
nv_inference_request_failure{model="ensemble",reason="CANCELED",version="1"} 2
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="ensemble",version="1"} 2500000
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="ensemble",version="1"} 1000
""")
    assert result.series[M.REQUEST_DURATION] == {("ensemble",): Histogram({math.inf: 4}, 2.5, 4)}
    assert result.series[M.REQUEST_QUEUE] == {("ensemble",): Histogram({math.inf: 4}, 0.001, 4)}
    # REJECTED (admission refused) is its own outcome, as vLLM's 4xx and TGI's validation errors.
    assert result.series[M.REQUESTS] == {("ensemble", "success"): 4.0, ("ensemble", "rejected"): 1.0,
                                         ("ensemble", "aborted"): 2.0, ("ensemble", "error"): 0.0}


def test_triton_first_response_histogram_is_converted_from_milliseconds() -> None:
    result = run(Engine.TRITON, """\
# TYPE nv_inference_first_response_histogram_ms histogram
nv_inference_first_response_histogram_ms_bucket{le="100",model="ensemble",version="1"} 1
nv_inference_first_response_histogram_ms_bucket{le="500",model="ensemble",version="1"} 3
nv_inference_first_response_histogram_ms_bucket{le="+Inf",model="ensemble",version="1"} 3
nv_inference_first_response_histogram_ms_sum{model="ensemble",version="1"} 750
nv_inference_first_response_histogram_ms_count{model="ensemble",version="1"} 3
""")
    assert result.series[M.TIME_TO_FIRST_TOKEN] == {("ensemble",): Histogram({0.1: 1, 0.5: 3, math.inf: 3}, 0.75, 3)}


@pytest.mark.parametrize(("blocks", "expected"), [
    ('kv_cache_block_type="fraction"} 0.3\nX{kv_cache_block_type="used"} 10\nX{kv_cache_block_type="max"} 100', 0.3),
    ('kv_cache_block_type="used"} 25\nX{kv_cache_block_type="max"} 100', 0.25),  # before TRT-LLM 2025-04
])
def test_trtllm_kv_usage_from_fraction_or_used_over_max(blocks: str, expected: float) -> None:
    body = "X{" + blocks
    body = body.replace("X{", 'nv_trt_llm_kv_cache_block_metrics{model="tensorrt_llm",version="1",')
    result = run(Engine.TRITON, "# TYPE nv_trt_llm_kv_cache_block_metrics gauge\n" + body + "\n")
    assert result.series[M.KV_CACHE_USAGE_RATIO] == {("tensorrt_llm",): expected}


def test_trtllm_kv_usage_without_capacity_is_no_data() -> None:
    result = run(Engine.TRITON, """\
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 0
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 0
""")
    assert M.KV_CACHE_USAGE_RATIO not in result.series
    assert result.available[M.KV_CACHE_USAGE_RATIO] is True


def test_ray_and_underscored_prefixes_read_as_vllm() -> None:
    for prefix in ("ray_vllm:", "vllm_"):
        result = run(Engine.VLLM, f'# TYPE {prefix}num_requests_waiting gauge\n'
                                  f'{prefix}num_requests_waiting{{model_name="m",WorkerId="w1"}} 2\n'
                                  f'{prefix}num_requests_waiting{{model_name="m",WorkerId="w2"}} 3\n')
        assert result.series[M.REQUESTS_WAITING] == {("m",): 5.0}


def test_sglang_aborted_requests_are_not_counted_as_successes() -> None:
    result = run(Engine.SGLANG, """\
# TYPE sglang:num_requests_total counter
sglang:num_requests_total{is_streaming="true",model_name="m"} 80
sglang:num_requests_total{is_streaming="false",model_name="m"} 20
# TYPE sglang:num_aborted_requests_total counter
sglang:num_aborted_requests_total{model_name="m"} 7
""")
    assert result.series[M.REQUESTS] == {("m", "success"): 93.0, ("m", "aborted"): 7.0, ("m", "error"): 0.0,
                                         ("m", "rejected"): 0.0}


def test_dcgm_units_and_total_memory() -> None:
    result = run(None, """\
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",modelName="NVIDIA A100-SXM4-80GB"} 71
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a"} 40000
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a"} 41000
# TYPE DCGM_FI_DEV_FB_RESERVED gauge
DCGM_FI_DEV_FB_RESERVED{gpu="0",UUID="GPU-a"} 920
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 312.5
""")
    assert result.series[M.GPU_UTILIZATION_RATIO] == {("GPU-a",): 0.71}
    assert result.series[M.GPU_MEMORY_USED_BYTES] == {("GPU-a",): 40000 * 1048576}
    assert result.series[M.GPU_MEMORY_TOTAL_BYTES] == {("GPU-a",): 81920 * 1048576}
    assert result.series[M.GPU_POWER_WATTS] == {("GPU-a",): 312.5}


def test_a_target_without_model_labels_takes_the_configured_model() -> None:
    result = run(Engine.TGI, "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n", model="bigscience/bloom")
    assert result.series[M.REQUESTS_WAITING] == {("bigscience/bloom",): 3.0}


def test_unlabelled_series_take_the_payloads_only_model() -> None:
    # vLLM's http_requests_total has no model label; with one model served it is that model.
    result = run(Engine.VLLM, """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 1
# TYPE http_requests_total counter
http_requests_total{handler="/v1/completions",method="POST",status="5xx"} 2
""")
    assert result.series[M.REQUESTS] == {("m", "error"): 2.0, ("m", "success"): 0.0, ("m", "aborted"): 0.0,
                                         ("m", "rejected"): 0.0}


def test_duplicate_series_are_rejected() -> None:
    with pytest.raises(ParseError, match="duplicate series"):
        run(Engine.VLLM, '# TYPE vllm:num_requests_running gauge\n'
                         'vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_running{model_name="m"} 2\n')


def test_conflicting_types_for_one_family_are_rejected() -> None:
    with pytest.raises(ParseError, match="conflicting TYPE"):
        run(Engine.VLLM, '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 1\n'
                         '# TYPE other gauge\nother 1\n'
                         '# TYPE vllm:num_requests_running counter\nvllm:num_requests_running{model_name="x"} 2\n')


def test_a_family_of_the_wrong_type_is_not_read() -> None:
    result = run(Engine.VLLM, "# TYPE vllm:num_requests_running counter\nvllm:num_requests_running_total 4\n")
    assert M.REQUESTS_RUNNING not in result.series
    assert result.available[M.REQUESTS_RUNNING] is False


def test_nan_and_inf_values_pass_through() -> None:
    result = run(Engine.VLLM, '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="a"} NaN\n'
                              'vllm:kv_cache_usage_perc{model_name="b"} +Inf\n')
    values = result.series[M.KV_CACHE_USAGE_RATIO]
    assert math.isnan(values[("a",)]) and values[("b",)] == math.inf


def test_gpu_rows_can_be_left_to_another_source() -> None:
    plan = compile_plan(ADAPTERS[Engine.TRITON], gpu=False)
    assert not [metric for metric in plan.parts if "gpu" in metric.name]
    assert "nv_gpu_utilization" not in plan.wanted


def test_every_row_reads_a_family_of_the_right_kind() -> None:
    for adapter in [*ADAPTERS.values(), DCGM]:
        for row in adapter.rows:
            assert row.outcome is None or row.outcomes is None
            assert (row.count_source is None) or row.metric.kind.value == "histogram"
