"""The bucket bounds adapters declare (for SLO threshold checks) are the ones engines really emit."""

from __future__ import annotations

import pytest

from infersight.exporter.adapters import ADAPTERS
from infersight.exporter.parse import parse
from infersight.exporter.schema import Engine, Kind
from tests.conftest import CAPTURES

CASES = [
    ("generated/vllm_0.33.0_GENERATED_from_source.txt", Engine.VLLM,
     ["vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
      "vllm:request_time_per_output_token_seconds", "vllm:e2e_request_latency_seconds",
      "vllm:request_queue_time_seconds"]),
    ("generated/vllm_0.11.2_GENERATED_from_source.txt", Engine.VLLM, ["vllm:time_per_output_token_seconds"]),
    ("nim_datadog-integrations-core.txt", Engine.NIM,
     ["time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds"]),
]


@pytest.mark.parametrize(("fixture", "engine", "sources"), CASES, ids=[c[0] for c in CASES])
def test_declared_buckets_match_a_real_exposition(fixture: str, engine: Engine, sources: list[str]) -> None:
    families = {f.name: f for f in parse((CAPTURES / fixture).read_text())}
    rows = {row.source: row for row in ADAPTERS[engine].rows}
    for source in sources:
        bounds = sorted({float(s[1]["le"]) for s in families[source].samples if s[0].endswith("_bucket")})
        assert tuple(bounds) == rows[source].buckets + (float("inf"),), source


def test_declared_buckets_are_sorted_and_only_on_histograms() -> None:
    for adapter in ADAPTERS.values():
        for row in adapter.rows:
            if row.buckets:
                assert row.source_kind is Kind.HISTOGRAM, row
                assert list(row.buckets) == sorted(set(row.buckets)) and row.buckets[0] > 0, row
