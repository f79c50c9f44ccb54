"""Every engine as it ships: detection, truthful signal coverage, one meaning per outcome, GPU
memory and energy, and the new signals. Each case asserts the exact series the exporter serves,
from payloads the project writes itself in each engine's real format (tests/fixtures/engines,
written by generate.py, or inline below)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from infersight.exporter.adapters import DCGM, detect
from infersight.exporter.fetch import Payload
from infersight.exporter.normalize import Normalized, compile_plan, normalize
from infersight.exporter.nvml import NvmlReader
from infersight.exporter.parse import parse
from infersight.exporter.render import TargetReport, build_families, render_text, text_exposition
from infersight.exporter.schema import ENGINE_SIGNALS, Engine, GpuSource, M
from infersight.exporter.scraper import TargetScraper
from infersight.exporter.settings import load_settings
from tests.conftest import OWN_FIXTURES
from tests.harness import series
from tests.test_golden import normalized_exposition

pytestmark = pytest.mark.unit


def fixture(name: str) -> str:
    return (OWN_FIXTURES / name).read_text(encoding="utf-8")


def lines(text: str, *names: str) -> list[str]:
    """The exporter's sorted series lines of the given metrics (histograms: _count and _sum only)."""
    wanted = {n for name in names for n in (name, name + "_count", name + "_sum")}
    return [line for line in series(text) if line.split("{", 1)[0] in wanted]


def available(text: str) -> dict[str, float]:
    out = {}
    for line in series(text):
        if line.startswith("llm_exporter_signal_available{"):
            signal = line.split('signal="', 1)[1].split('"', 1)[0]
            out[signal] = float(line.rsplit(" ", 1)[1])
    return out


def scraper(engine: str = "auto", **target: object) -> TargetScraper:
    settings = load_settings({"targets": [{"name": "t", "url": "http://engine:8000/metrics", **target}],
                              "engine": engine})
    return TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)


def served(s: TargetScraper, text: str) -> str:
    report = s.report(s.ingest(Payload(text, openmetrics=False)), None, 0.0)
    out = render_text([report], "test")
    assert out == text_exposition(build_families([report], "test"))
    return out


# --- 1. detection weighs every engine's families ------------------------------------------------

def test_a_vllm_serving_tgi_compatible_families_is_vllm(caplog: pytest.LogCaptureFixture) -> None:
    """The vllm-tgis-adapter (OpenShift AI) adds tgi_* families beside vLLM's: the first-substring
    detection called it TGI, lost every vLLM signal and left the model empty."""
    text = fixture("vllm-0.33.0-tgis-adapter.metrics.txt")
    detection = detect(text)
    assert detection.engine is Engine.VLLM
    assert detection.scores[Engine.VLLM] == 20 and detection.scores[Engine.TGI] == 7
    with caplog.at_level(logging.INFO, logger="infersight.exporter"):
        out = served(scraper(), text)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("detected")] == [
        "detected engine=vllm target=t families_known='vllm 20, nim 14, tgi 7, triton 5'"]
    model = "ibm-granite/granite-3.1-8b-instruct"
    assert lines(out, "llm_requests_running", "llm_requests_waiting", "llm_kv_cache_usage_ratio",
                 "llm_requests_total") == [
        f'llm_kv_cache_usage_ratio{{engine="vllm",model="{model}",target="t"}} 0.37',
        f'llm_requests_running{{engine="vllm",model="{model}",target="t"}} 9.0',
        f'llm_requests_total{{engine="vllm",model="{model}",outcome="aborted",target="t"}} 2.0',
        f'llm_requests_total{{engine="vllm",model="{model}",outcome="error",target="t"}} 1.0',
        f'llm_requests_total{{engine="vllm",model="{model}",outcome="rejected",target="t"}} 0.0',
        f'llm_requests_total{{engine="vllm",model="{model}",outcome="success",target="t"}} 37.0',
        f'llm_requests_waiting{{engine="vllm",model="{model}",target="t"}} 2.0',
    ]


@pytest.mark.parametrize(("name", "engine"), [
    ("trtllm-serve-2026.metrics.txt", Engine.TRTLLM),
    ("trtllm-serve-2025.metrics.txt", Engine.TRTLLM),  # five unprefixed families; NIM shares three names
    ("nim-1.x-vllm-names.metrics.txt", Engine.VLLM),  # NIM passing vLLM's names: the same series
    ("vllm-0.33.0-kserve-spec-decode.metrics.txt", Engine.VLLM),
    ("sglang-0.4.4.metrics.txt", Engine.SGLANG),
    ("triton-vllm-backend.metrics.txt", Engine.TRITON),  # vllm:* families under Triton's labels
])
def test_detection_by_the_most_known_families(name: str, engine: Engine) -> None:
    assert detect(fixture(name)).engine is engine


def test_a_payload_of_no_engine_is_not_detected() -> None:
    assert detect(fixture("dcgm-exporter-4.5.metrics.txt")).engine is None


# --- 2. SGLang's older time-per-output-token histogram -------------------------------------------

def test_sglang_before_0_4_6_reads_its_per_gap_histogram_as_itl() -> None:
    out = normalized_exposition(fixture("sglang-0.4.4.metrics.txt"), Engine.SGLANG)
    model = "Qwen/Qwen2.5-7B-Instruct"
    assert lines(out, "llm_inter_token_latency_seconds", "llm_time_per_output_token_seconds") == [
        f'llm_inter_token_latency_seconds_count{{engine="sglang",model="{model}",target="engine-0"}} 200.0',
        f'llm_inter_token_latency_seconds_sum{{engine="sglang",model="{model}",target="engine-0"}} 6.099999999999988',
    ]
    signals = available(out)
    assert (signals["llm_inter_token_latency_seconds"], signals["llm_time_per_output_token_seconds"]) == (1, 0)


def test_sglang_0_4_6_to_0_5_reads_it_as_the_per_request_tpot_beside_the_itl() -> None:
    out = normalized_exposition(fixture("sglang-0.4.6.metrics.txt"), Engine.SGLANG)
    model = "Qwen/Qwen2.5-7B-Instruct"
    assert lines(out, "llm_inter_token_latency_seconds", "llm_time_per_output_token_seconds") == [
        f'llm_inter_token_latency_seconds_count{{engine="sglang",model="{model}",target="engine-0"}} 200.0',
        f'llm_inter_token_latency_seconds_sum{{engine="sglang",model="{model}",target="engine-0"}} 6.099999999999988',
        f'llm_time_per_output_token_seconds_count{{engine="sglang",model="{model}",target="engine-0"}} 40.0',
        f'llm_time_per_output_token_seconds_sum{{engine="sglang",model="{model}",target="engine-0"}} '
        '1.1360000000000006',
    ]


# --- 3. signal_available tells the truth ----------------------------------------------------------

def test_every_schema_signal_is_listed_and_tgi_lacks_ttft_itl_and_kv() -> None:
    out = normalized_exposition(fixture("tgi-3.3.metrics.txt"), Engine.TGI, model="bigscience/bloom-560m")
    provided = {"llm_requests_running", "llm_requests_waiting", "llm_prompt_tokens_total",
                "llm_generation_tokens_total", "llm_requests_total", "llm_time_per_output_token_seconds",
                "llm_request_duration_seconds", "llm_request_queue_seconds"}
    assert available(out) == {m.name: 1.0 if m.name in provided else 0.0 for m in ENGINE_SIGNALS}


def test_sglang_prefix_cache_queries_are_not_made_up_without_its_cache_counter() -> None:
    with_cache = available(normalized_exposition(fixture("sglang-0.5.23.metrics.txt"), Engine.SGLANG))
    without = normalized_exposition(fixture("sglang-0.4.4.metrics.txt"), Engine.SGLANG)
    assert with_cache["llm_prefix_cache_queries_total"] == 1.0
    assert available(without)["llm_prefix_cache_queries_total"] == 0.0
    assert lines(without, "llm_prefix_cache_queries_total", "llm_prefix_cache_hits_total") == []


def test_the_api_servers_http_counters_alone_do_not_make_requests_available() -> None:
    text = ('# TYPE http_requests_total counter\n'
            'http_requests_total{handler="/v1/completions",method="POST",status="5xx"} 2.0\n'
            '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0",model_name="m"} 1.0\n')
    out = normalized_exposition(text, Engine.VLLM)
    assert available(out)["llm_requests_total"] == 0.0
    assert lines(out, "llm_requests_total") == [  # the 5xx are still served
        'llm_requests_total{engine="vllm",model="m",outcome="aborted",target="engine-0"} 0.0',
        'llm_requests_total{engine="vllm",model="m",outcome="error",target="engine-0"} 2.0',
        'llm_requests_total{engine="vllm",model="m",outcome="rejected",target="engine-0"} 0.0',
        'llm_requests_total{engine="vllm",model="m",outcome="success",target="engine-0"} 0.0',
    ]


# --- 4. one meaning per outcome ------------------------------------------------------------------

@pytest.mark.parametrize(("name", "engine", "model", "expected"), [
    # vLLM: the API server's 4xx (the over-long prompt of the real 0.32 capture) is rejected, not error.
    ("vllm-0.32.0-real.metrics.txt", Engine.VLLM, "tiny-llama", {"aborted": 0, "error": 0, "rejected": 1,
                                                                  "success": 10}),
    # vLLM 0.33 fixture: 4 x 4xx rejected; 1 engine error + 2 HTTP 5xx errors.
    ("vllm-0.33.0.metrics.txt", Engine.VLLM, "meta-llama/Llama-3.1-8B-Instruct",
     {"aborted": 6, "error": 3, "rejected": 4, "success": 111}),
    # TGI: err="validation" (3) rejected, err="overloaded" (2) stays the server's error.
    ("tgi-3.3.metrics.txt", Engine.TGI, "bigscience/bloom-560m", {"aborted": 0, "error": 2, "rejected": 3,
                                                                  "success": 40}),
])
def test_client_errors_are_rejected_never_error(name: str, engine: Engine, model: str, expected: dict) -> None:
    extra = {"model": model} if engine is Engine.TGI else {}
    out = normalized_exposition(fixture(name), engine, **extra)
    assert lines(out, "llm_requests_total") == [
        f'llm_requests_total{{engine="{engine.value}",model="{model}",outcome="{o}",target="engine-0"}} '
        f'{float(n)!r}' for o, n in sorted(expected.items())]


def test_triton_rejections_are_rejected() -> None:
    out = normalized_exposition(fixture("triton-trtllm-2025.metrics.txt"), Engine.TRITON)
    assert [line for line in lines(out, "llm_requests_total") if 'model="ensemble"' in line] == [
        'llm_requests_total{engine="triton",model="ensemble",outcome="aborted",target="engine-0"} 3.0',
        'llm_requests_total{engine="triton",model="ensemble",outcome="error",target="engine-0"} 1.0',
        'llm_requests_total{engine="triton",model="ensemble",outcome="rejected",target="engine-0"} 2.0',
        'llm_requests_total{engine="triton",model="ensemble",outcome="success",target="engine-0"} 120.0',
    ]


def sglang_payload(finished: int, aborted: int) -> str:
    """SGLang's tokenizer-side request counters as 0.5.x writes them (prometheus_client)."""
    return ("# HELP sglang:num_requests_total The number of processed requests.\n"
            "# TYPE sglang:num_requests_total counter\n"
            f'sglang:num_requests_total{{engine_type="unified",is_streaming="true",model_name="m"}} {finished}.0\n'
            "# HELP sglang:num_aborted_requests_total The number of aborted requests.\n"
            "# TYPE sglang:num_aborted_requests_total counter\n"
            f'sglang:num_aborted_requests_total{{engine_type="unified",model_name="m"}} {aborted}.0\n')


def test_sglang_successes_never_go_down_while_aborts_are_counted_per_call() -> None:
    s = scraper("sglang")

    def outcomes(finished: int, aborted: int) -> list[str]:
        return [line.split("outcome=")[1] for line in lines(served(s, sglang_payload(finished, aborted)),
                                                            "llm_requests_total")]

    assert outcomes(10, 2) == ['"aborted",target="t"} 2.0', '"error",target="t"} 0.0',
                               '"rejected",target="t"} 0.0', '"success",target="t"} 8.0']
    # Three abort calls, one for a request that had finished already: all minus aborted is 7.
    assert outcomes(11, 4) == ['"aborted",target="t"} 4.0', '"error",target="t"} 0.0',
                               '"rejected",target="t"} 0.0', '"success",target="t"} 8.0']
    assert outcomes(14, 4) == ['"aborted",target="t"} 4.0', '"error",target="t"} 0.0',
                               '"rejected",target="t"} 0.0', '"success",target="t"} 10.0']
    # More aborts than finished requests (an abort-all counted once per call): never below 0 ...
    s2 = scraper("sglang")
    assert [line.rsplit(" ", 1)[1] for line in lines(served(s2, sglang_payload(1, 3)), "llm_requests_total")] == [
        "3.0", "0.0", "0.0", "0.0"]
    # ... and a real restart (finished requests went down) starts the floor over.
    assert outcomes(2, 1) == ['"aborted",target="t"} 1.0', '"error",target="t"} 0.0',
                              '"rejected",target="t"} 0.0', '"success",target="t"} 1.0']


# --- 5. GPU memory from dcgm-exporter ----------------------------------------------------------------

def dcgm_exposition(text: str) -> str:
    plan = compile_plan(DCGM)
    report = TargetReport("vllm", "t", True, 0.0, {}, Normalized(), list(plan.parts), GpuSource.DCGM, True,
                          normalize(plan, parse(text, plan.wanted)))
    return render_text([report], "test")


def test_dcgm_fb_total_is_the_total_where_present() -> None:
    out = dcgm_exposition(fixture("dcgm-exporter-4.5-fb-total.metrics.txt"))
    assert lines(out, "llm_gpu_memory_total_bytes") == [  # 81920 MiB, not used + free + reserved (81920 + 920)
        'llm_gpu_memory_total_bytes{engine="vllm",gpu="GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b",target="t"} '
        '85899345920.0',
        'llm_gpu_memory_total_bytes{engine="vllm",gpu="GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c",target="t"} '
        '85899345920.0',
    ]
    without = dcgm_exposition(fixture("dcgm-exporter-4.5.metrics.txt"))
    assert lines(without, "llm_gpu_memory_total_bytes") == [
        'llm_gpu_memory_total_bytes{engine="vllm",gpu="GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b",target="t"} '
        f'{float((62000 + 19000 + 920) * 1048576)!r}',
        'llm_gpu_memory_total_bytes{engine="vllm",gpu="GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c",target="t"} '
        f'{float((60000 + 21000 + 920) * 1048576)!r}',
    ]


def test_a_dcgm_sample_without_a_gpu_label_makes_no_empty_gpu_series() -> None:
    text = ("# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
            'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",'
            'Hostname="node-1"} 512.5\n'
            'DCGM_FI_DEV_POWER_USAGE{Hostname="node-1"} 1025\n'
            "# HELP DCGM_FI_DEV_FB_TOTAL Total framebuffer memory (in MiB).\n# TYPE DCGM_FI_DEV_FB_TOTAL gauge\n"
            'DCGM_FI_DEV_FB_TOTAL{Hostname="node-1"} 81559\n')
    out = dcgm_exposition(text)
    assert lines(out, "llm_gpu_power_watts", "llm_gpu_memory_total_bytes") == [
        'llm_gpu_power_watts{engine="vllm",gpu="GPU-a",target="t"} 512.5']


# --- 6. TGI's model -------------------------------------------------------------------------------

def test_tgi_model_from_a_model_id_label_else_a_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    labelled = ('# TYPE tgi_queue_size gauge\ntgi_queue_size{model_id="bigscience/bloom-560m"} 4\n'
                '# TYPE tgi_batch_current_size gauge\ntgi_batch_current_size{model_id="bigscience/bloom-560m"} 16\n')
    assert lines(served(scraper("tgi"), labelled), "llm_requests_waiting") == [
        'llm_requests_waiting{engine="tgi",model="bigscience/bloom-560m",target="t"} 4.0']
    s = scraper("tgi")
    with caplog.at_level(logging.WARNING, logger="infersight.exporter"):
        for _ in range(3):
            out = served(s, fixture("tgi-3.3.metrics.txt"))
    assert lines(out, "llm_requests_waiting") == ['llm_requests_waiting{engine="tgi",model="",target="t"} 4.0']
    assert [r.getMessage() for r in caplog.records] == [
        'model unknown engine=tgi target=t: the engine\'s metrics name no model; series carry model="" '
        "(set the target's model, --model)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="infersight.exporter"):
        served(scraper("tgi", model="bigscience/bloom-560m"), fixture("tgi-3.3.metrics.txt"))
    assert caplog.records == []


# --- new signals ----------------------------------------------------------------------------------

KSERVE_MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def test_kserve_spelling_speculative_decoding_sleep_and_waiting_reasons() -> None:
    out = served(scraper(), fixture("vllm-0.33.0-kserve-spec-decode.metrics.txt"))
    m = f'engine="vllm",model="{KSERVE_MODEL}"'
    assert lines(out, "llm_spec_decode_drafts_total", "llm_spec_decode_draft_tokens_total",
                 "llm_spec_decode_accepted_tokens_total", "llm_engine_awake_ratio",
                 "llm_requests_waiting_by_reason", "llm_admission_rejections_total",
                 "llm_prompt_tokens_cached_total", "llm_request_prefill_seconds", "llm_request_decode_seconds") == [
        f'llm_admission_rejections_total{{{m},target="t"}} 5.0',
        f'llm_engine_awake_ratio{{{m},target="t"}} 0.5',  # one of two data-parallel ranks asleep
        f'llm_prompt_tokens_cached_total{{{m},target="t"}} 24576.0',
        f'llm_request_decode_seconds_count{{{m},target="t"}} 80.0',
        f'llm_request_decode_seconds_sum{{{m},target="t"}} 254.0',
        f'llm_request_prefill_seconds_count{{{m},target="t"}} 80.0',
        f'llm_request_prefill_seconds_sum{{{m},target="t"}} 10.000000000000005',
        f'llm_requests_waiting_by_reason{{{m},reason="capacity",target="t"}} 4.0',
        f'llm_requests_waiting_by_reason{{{m},reason="deferred",target="t"}} 0.0',
        f'llm_spec_decode_accepted_tokens_total{{{m},target="t"}} 12600.0',
        f'llm_spec_decode_draft_tokens_total{{{m},target="t"}} 18000.0',
        f'llm_spec_decode_drafts_total{{{m},target="t"}} 6000.0',
    ]


def test_vllm_waiting_by_reason_per_data_parallel_rank_is_summed() -> None:
    out = normalized_exposition(fixture("vllm-0.33.0.metrics.txt"), Engine.VLLM)
    m = 'engine="vllm",model="meta-llama/Llama-3.1-8B-Instruct"'
    assert lines(out, "llm_requests_waiting", "llm_requests_waiting_by_reason") == [
        f'llm_requests_waiting_by_reason{{{m},reason="capacity",target="engine-0"}} 5.0',  # (3-1) + (5-2)
        f'llm_requests_waiting_by_reason{{{m},reason="deferred",target="engine-0"}} 3.0',
        f'llm_requests_waiting{{{m},target="engine-0"}} 8.0',
    ]


def test_trtllm_serve_2026_and_dynamos_colon_spelling() -> None:
    text = fixture("trtllm-serve-2026.metrics.txt")
    m = 'engine="trtllm",model="nvidia/Llama-3.1-8B-Instruct-FP8"'
    expected = [
        f'llm_generation_tokens_total{{{m},target="t"}} 9600.0',
        f'llm_kv_cache_usage_ratio{{{m},target="t"}} 0.46',
        f'llm_prompt_tokens_total{{{m},target="t"}} 48000.0',
        f'llm_request_decode_seconds_count{{{m},target="t"}} 40.0',
        f'llm_request_decode_seconds_sum{{{m},target="t"}} 127.0',
        f'llm_request_prefill_seconds_count{{{m},target="t"}} 40.0',
        f'llm_request_prefill_seconds_sum{{{m},target="t"}} 5.000000000000003',
        f'llm_requests_running{{{m},target="t"}} 17.0',
        f'llm_requests_total{{{m},outcome="aborted",target="t"}} 3.0',
        f'llm_requests_total{{{m},outcome="error",target="t"}} 0.0',
        f'llm_requests_total{{{m},outcome="rejected",target="t"}} 0.0',
        f'llm_requests_total{{{m},outcome="success",target="t"}} 37.0',
        f'llm_requests_waiting{{{m},target="t"}} 3.0',
        f'llm_spec_decode_accepted_tokens_total{{{m},target="t"}} 2700.0',
        f'llm_spec_decode_draft_tokens_total{{{m},target="t"}} 4500.0',
    ]
    names = ("llm_generation_tokens_total", "llm_kv_cache_usage_ratio", "llm_prompt_tokens_total",
             "llm_request_decode_seconds", "llm_request_prefill_seconds", "llm_requests_running",
             "llm_requests_total", "llm_requests_waiting", "llm_spec_decode_accepted_tokens_total",
             "llm_spec_decode_draft_tokens_total")
    assert lines(served(scraper(), text), *names) == expected
    # NVIDIA Dynamo passes the same families through as trtllm:*.
    assert lines(served(scraper(), text.replace("trtllm_", "trtllm:")), *names) == expected


def test_sglang_realtime_cache_tokens_stand_in_for_its_cached_tokens() -> None:
    text = ('# TYPE sglang:realtime_tokens_total counter\n'
            'sglang:realtime_tokens_total{mode="prefill_compute",model_name="m",tp_rank="0"} 36000.0\n'
            'sglang:realtime_tokens_total{mode="prefill_cache",model_name="m",tp_rank="0"} 12000.0\n'
            'sglang:realtime_tokens_total{mode="decode",model_name="m",tp_rank="0"} 9600.0\n')
    assert lines(normalized_exposition(text, Engine.SGLANG), "llm_prompt_tokens_cached_total") == [
        'llm_prompt_tokens_cached_total{engine="sglang",model="m",target="engine-0"} 12000.0']


# --- energy -----------------------------------------------------------------------------------------

def test_gpu_energy_from_dcgm_millijoules_and_triton_joules() -> None:
    out = dcgm_exposition(fixture("dcgm-exporter-4.5.metrics.txt"))
    assert lines(out, "llm_gpu_energy_joules_total") == [
        'llm_gpu_energy_joules_total{engine="vllm",gpu="GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b",target="t"} '
        '8123456.789',
        'llm_gpu_energy_joules_total{engine="vllm",gpu="GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c",target="t"} '
        '8123456.79',
    ]
    triton = normalized_exposition(fixture("triton-trtllm-2025.metrics.txt"), Engine.TRITON,
                                   gpu={"source": "engine"})
    assert lines(triton, "llm_gpu_energy_joules_total") == [
        'llm_gpu_energy_joules_total{engine="triton",gpu="GPU-5d3f1a2b-0c4d-4e6f-8a9b-0c1d2e3f4a5b",'
        'target="engine-0"} 1500000.0',
        'llm_gpu_energy_joules_total{engine="triton",gpu="GPU-6e4a2b3c-1d5e-4f70-9bac-1d2e3f4a5b6c",'
        'target="engine-0"} 1500001.0',
    ]


class EnergyNvml:
    """pynvml's calls for two GPUs, one of which (pre-Volta) has no energy counter."""

    class NotSupported(Exception):
        pass

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:  # noqa: N802
        return f"GPU-{h}"

    def nvmlDeviceGetUtilizationRates(self, h: int):  # noqa: N802
        return SimpleNamespace(gpu=50)

    def nvmlDeviceGetMemoryInfo(self, h: int):  # noqa: N802
        return SimpleNamespace(used=1, total=2)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802 - milliwatts
        return 300000

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:  # noqa: N802 - millijoules
        if h == 1:
            raise self.NotSupported()
        return 7_200_000_123


def test_nvml_energy_in_joules_where_the_gpu_counts_it() -> None:
    result = NvmlReader(nvml=EnergyNvml()).read()
    assert result.series[M.GPU_ENERGY_JOULES] == {("GPU-0",): 7_200_000.123}
    assert result.available[M.GPU_ENERGY_JOULES] is True
