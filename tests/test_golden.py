"""Every engine capture normalizes to a committed, exact exposition (tests/golden/*.prom).

Real captures and generated expositions come from ../shared (never copied here); the project's
own fixtures in tests/fixtures/engines cover what the captures lack. A payload that is not a
valid exposition has a golden file too: the exact failure series.
"""

from __future__ import annotations

import pytest

from infersight.exporter.adapters import detect_engine
from infersight.exporter.fetch import Payload, ScrapeError
from infersight.exporter.render import build_families, render_text, text_exposition
from infersight.exporter.schema import Engine
from infersight.exporter.scraper import TargetScraper
from infersight.exporter.settings import load_settings
from tests.conftest import CAPTURES, GOLDEN, OWN_FIXTURES
from tests.golden import assert_golden

# (fixture path relative to its folder, engine that wrote it, parses?)
SHARED_CAPTURES = [
    ("vllm_v0_datadog-integrations-core.txt", Engine.VLLM, True),
    ("vllm_v0v1-mixed_datadog-integrations-core.txt", Engine.VLLM, True),
    ("nim_datadog-integrations-core.txt", Engine.NIM, True),
    ("triton_datadog-integrations-core.txt", Engine.TRITON, True),
    ("sglang_datadog-integrations-core.txt", Engine.SGLANG, True),
    ("triton-trtllm_tensorrtllm_backend-README-example.txt", Engine.TRITON, True),
    ("triton-trtllm-v1model_tensorrtllm_backend-README-example.txt", Engine.TRITON, True),
    # A documentation example with "..." where bucket lines were elided: not an exposition.
    ("triton-vllmbackend_vllm_backend-README-example.txt", Engine.TRITON, False),
    ("generated/vllm_0.10.2_GENERATED_from_source.txt", Engine.VLLM, True),
    ("generated/vllm_0.11.2_GENERATED_from_source.txt", Engine.VLLM, True),
    ("generated/vllm_0.13.0_GENERATED_from_source.txt", Engine.VLLM, True),
    ("generated/vllm_0.33.0_GENERATED_from_source.txt", Engine.VLLM, True),
    ("excerpts/vllm_v1-0.10.0_production-stack-issue617_EXCERPT.txt", Engine.VLLM, True),
    ("excerpts/vllm_v1-0.8era_production-stack-issue318_EXCERPT.txt", Engine.VLLM, True),
    ("excerpts/triton-vllmbackend_server-issue7583_EXCERPT.txt", Engine.TRITON, True),
    ("excerpts/triton-trtllm-ensemble_tensorrtllm_backend-issue667_EXCERPT.txt", Engine.TRITON, True),
    ("excerpts/triton-trtllm_tensorrtllm_backend-issue49_EXCERPT.txt", Engine.TRITON, True),
]

OWN = [
    ("vllm-0.33.0.metrics.txt", Engine.VLLM),
    ("vllm-0.33.0-tgis-adapter.metrics.txt", Engine.VLLM),
    ("vllm-0.33.0-kserve-spec-decode.metrics.txt", Engine.VLLM),
    ("vllm-0.10.2.metrics.txt", Engine.VLLM),
    ("vllm-0.6.6-ray-serve.metrics.txt", Engine.VLLM),
    ("vllm-underscored.metrics.txt", Engine.VLLM),
    ("vllm-0.32.0-real.metrics.txt", Engine.VLLM),  # a real vLLM 0.32 (CPU), tests/real_vllm_support.py
    ("nim-1.x-vllm-names.metrics.txt", Engine.NIM),
    ("triton-trtllm-2025.metrics.txt", Engine.TRITON),
    ("triton-trtllm-2024.metrics.txt", Engine.TRITON),
    ("triton-vllm-backend.metrics.txt", Engine.TRITON),
    ("sglang-0.5.23.metrics.txt", Engine.SGLANG),
    ("sglang-0.4.4.metrics.txt", Engine.SGLANG),
    ("sglang-0.4.6.metrics.txt", Engine.SGLANG),
    ("sglang-main-2026.metrics.txt", Engine.SGLANG),
    ("tgi-3.3.metrics.txt", Engine.TGI),
    ("trtllm-serve-2026.metrics.txt", Engine.TRTLLM),
    ("trtllm-serve-2025.metrics.txt", Engine.TRTLLM),
]


def normalized_exposition(text: str, engine: Engine, **target: object) -> str:
    """The exporter's output for one target serving ``text`` (scrape duration fixed at 0)."""
    settings = load_settings({"targets": [{"name": "engine-0", "url": "http://engine:8000/metrics", **target}],
                              "engine": engine.value})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)
    normalized, failure = None, None
    try:
        normalized = scraper.ingest(Payload(text, openmetrics=False))
    except ScrapeError as exc:
        failure = exc
    report = scraper.report(normalized, failure, 0.0)
    text = text_exposition(build_families([report], "test"))
    assert render_text([report], "test") == text  # the server's direct renderer writes the same bytes
    return text


def golden_name(fixture: str) -> str:
    return fixture.rsplit("/", 1)[-1].removesuffix(".txt") + ".prom"


@pytest.mark.parametrize(("fixture", "engine", "valid"), SHARED_CAPTURES, ids=[c[0] for c in SHARED_CAPTURES])
def test_shared_capture_normalizes_to_golden(fixture: str, engine: Engine, valid: bool, update_golden: bool) -> None:
    text = (CAPTURES / fixture).read_text(encoding="utf-8")
    output = normalized_exposition(text, engine)
    assert ('llm_exporter_target_up{engine="%s",target="engine-0"} 1.0' % engine.value in output) == valid
    assert_golden(GOLDEN / "captures" / golden_name(fixture), output, update_golden)


@pytest.mark.parametrize(("fixture", "engine"), OWN, ids=[o[0] for o in OWN])
def test_own_fixture_normalizes_to_golden(fixture: str, engine: Engine, update_golden: bool) -> None:
    text = (OWN_FIXTURES / fixture).read_text(encoding="utf-8")
    model = {"model": "bigscience/bloom-560m"} if engine is Engine.TGI else {}
    output = normalized_exposition(text, engine, **model)
    assert_golden(GOLDEN / "own" / golden_name(fixture), output, update_golden)


@pytest.mark.parametrize("fixture", ["dcgm-exporter-4.5.metrics.txt", "dcgm-exporter-4.5-fb-total.metrics.txt"])
def test_dcgm_fixture_normalizes_to_golden(fixture: str, update_golden: bool) -> None:
    from infersight.exporter.adapters import DCGM
    from infersight.exporter.normalize import Normalized, compile_plan, normalize
    from infersight.exporter.parse import parse
    from infersight.exporter.render import TargetReport
    from infersight.exporter.schema import GpuSource

    plan = compile_plan(DCGM)
    text = (OWN_FIXTURES / fixture).read_text(encoding="utf-8")
    report = TargetReport("vllm", "engine-0", True, 0.0, {}, Normalized(), list(plan.parts), GpuSource.DCGM, True,
                          normalize(plan, parse(text, plan.wanted)))
    output = text_exposition(build_families([report], "test"))
    assert render_text([report], "test") == output
    assert_golden(GOLDEN / "own" / fixture.replace(".metrics.txt", ".prom"), output, update_golden)


# A NIM that passes vLLM's own names through is indistinguishable from vLLM: it is read as vLLM
# unless the target says engine: nim (the series are the same; only the engine label differs).
DETECTED_AS = {"nim-1.x-vllm-names.metrics.txt": Engine.VLLM}


@pytest.mark.parametrize(("fixture", "engine"),
                         [(f"{CAPTURES}/{c[0]}", c[1]) for c in SHARED_CAPTURES if c[2]]
                         + [(f"{OWN_FIXTURES}/{o[0]}", DETECTED_AS.get(o[0], o[1])) for o in OWN],
                         ids=[c[0] for c in SHARED_CAPTURES if c[2]] + [o[0] for o in OWN])
def test_engine_is_detected_from_its_payload(fixture: str, engine: Engine) -> None:
    with open(fixture, encoding="utf-8") as f:
        assert detect_engine(f.read()) is engine


def test_auto_detection_gives_the_same_output_as_naming_the_engine() -> None:
    text = (CAPTURES / "nim_datadog-integrations-core.txt").read_text(encoding="utf-8")
    settings = load_settings({"targets": ["engine-0=http://engine:8000/v1/metrics"]})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)
    auto = text_exposition(build_families([scraper.report(scraper.ingest(Payload(text, False)), None, 0.0)], "test"))
    assert auto == normalized_exposition(text, Engine.NIM)
