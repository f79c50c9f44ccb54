"""The label caps at their edges, on a few series: which GPUs are kept, where a label value becomes
too long (in UTF-8 bytes), and that each dropped series is counted. Through the scraper's
production path (compiled plan, series cache) and through ``normalize``, which must agree.
``tests/test_attack_labels.py`` runs the same caps against 100,000 GPUs and churned 20 KB values."""

from __future__ import annotations

import pytest

from infersight.exporter.adapters import ADAPTERS
from infersight.exporter.fetch import Payload
from infersight.exporter.normalize import Caps, Normalized, compile_plan, normalize
from infersight.exporter.parse import parse
from infersight.exporter.schema import Engine, M, Outcome
from infersight.exporter.scraper import TargetScraper
from infersight.exporter.settings import load_settings

pytestmark = pytest.mark.unit

CAPS = Caps(max_gpus=2, max_label_bytes=64)


def both_paths(text: str) -> Normalized:
    """The scraper's result for ``text``, after checking that ``normalize`` gives the same."""
    settings = load_settings({"engine": "triton", "gpu": {"source": "engine"},
                              "targets": [{"url": "http://127.0.0.1:1/metrics"}]})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes, caps=CAPS)
    ours = scraper.ingest(Payload(text, False))
    plan = compile_plan(ADAPTERS[Engine.TRITON])
    reference = normalize(plan, parse(text, plan.wanted), caps=CAPS)
    assert (ours.series, ours.dropped_series) == (reference.series, reference.dropped_series)
    return ours


def test_the_first_gpus_by_uuid_are_kept_and_each_other_series_is_counted() -> None:
    text = ("# TYPE nv_gpu_utilization gauge\n"
            'nv_gpu_utilization{gpu_uuid="GPU-c"} 0.3\n'
            'nv_gpu_utilization{gpu_uuid="GPU-a"} 0.1\n'
            'nv_gpu_utilization{gpu_uuid="GPU-b"} 0.2\n'
            "# TYPE nv_gpu_memory_used_bytes gauge\n"
            'nv_gpu_memory_used_bytes{gpu_uuid="GPU-c"} 3e9\n'
            'nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 1e9\n'
            'nv_gpu_memory_used_bytes{gpu_uuid="GPU-b"} 2e9\n')
    result = both_paths(text)
    # Payload order puts GPU-c first; the cap keeps the first two by UUID, as a restart would.
    assert result.series[M.GPU_UTILIZATION_RATIO] == {("GPU-a",): 0.1, ("GPU-b",): 0.2}
    assert result.series[M.GPU_MEMORY_USED_BYTES] == {("GPU-a",): 1e9, ("GPU-b",): 2e9}
    assert result.dropped_series == 2  # GPU-c in each family


def test_a_label_value_is_too_long_one_utf8_byte_past_the_limit() -> None:
    at_limit, accented_at_limit, over = "m" * 64, "é" * 32, "é" * 33  # 64, 64 and 66 bytes; 64, 32, 33 characters
    text = "# TYPE nv_inference_request_success counter\n" + "".join(
        f'nv_inference_request_success{{model="{model}",version="1"}} {value}\n'
        for model, value in ((at_limit, 5), (accented_at_limit, 6), (over, 7)))
    result = both_paths(text)
    successes = {model: value for (model, outcome), value in result.series[M.REQUESTS].items()
                 if outcome == Outcome.SUCCESS}
    assert successes == {at_limit: 5.0, accented_at_limit: 6.0}
    assert result.dropped_series == len(Outcome)  # the long model's series, one per outcome
