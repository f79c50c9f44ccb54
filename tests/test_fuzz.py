"""Fuzzing: whatever an engine serves, the exporter answers with data or a parse error, never a
crash. CI runs a small sample; the long run is

    INFERSIGHT_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz.py -q
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from infersight.exporter.fetch import Payload, ScrapeError
from infersight.exporter.render import render_text
from infersight.exporter.schema import CATALOGUE, Engine, Kind, M, ScrapeErrorReason
from infersight.exporter.scraper import TargetScraper
from infersight.exporter.settings import load_settings
from tests.conftest import CAPTURES, OWN_FIXTURES

EXAMPLES = int(os.environ.get("INFERSIGHT_FUZZ_EXAMPLES", "300"))
SEEDS = [p.read_text(encoding="utf-8") for p in sorted(OWN_FIXTURES.glob("*.txt"))] + [
    (CAPTURES / name).read_text(encoding="utf-8") for name in (
        "vllm_v0_datadog-integrations-core.txt", "nim_datadog-integrations-core.txt",
        "triton_datadog-integrations-core.txt", "sglang_datadog-integrations-core.txt")]


def scraper_for(engine: Engine) -> TargetScraper:
    config = load_settings({"engine": engine.value, "targets": ["f=http://f:1/metrics"]})
    return TargetScraper(config.resolved(config.targets[0]), config.max_body_bytes, max_models=50)


SCRAPERS = {engine: scraper_for(engine) for engine in Engine}


@st.composite
def mutated_payload(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate_line", "swap_lines"]))
        if action == "insert":
            text = text[:position] + draw(st.text(min_size=1, max_size=12)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)):]
        elif action == "replace":
            text = text[:position] + draw(st.sampled_from(list('{}",= \n\\#_:eE+-.0123456789NaInf'))) + text[position + 1:]
        elif action == "truncate":
            text = text[:position]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if action == "duplicate_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


CATALOGUE_FAMILIES = {m.name.removesuffix("_total") if m.kind is Kind.COUNTER else m.name for m in CATALOGUE}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutated_payload(), st.text(max_size=400)), st.sampled_from(list(Engine)))
def test_no_payload_crashes_the_exporter(text: str, engine: Engine) -> None:
    scraper = SCRAPERS[engine]
    try:
        normalized, failure = scraper.ingest(Payload(text, openmetrics=False)), None
    except ScrapeError as exc:
        assert exc.reason is ScrapeErrorReason.PARSE
        normalized, failure = None, exc
    rendered = render_text([scraper.report(normalized, failure, 0.0)], "fuzz")
    # The answer is a valid exposition of catalogue families only, and says whether the target was read.
    families = list(text_string_to_metric_families(rendered))
    assert {f.name for f in families} <= CATALOGUE_FAMILIES
    up = [s.value for f in families for s in f.samples if s.name == M.EXPORTER_TARGET_UP.name]
    assert up == [0.0 if failure else 1.0]
