"""The real-vLLM tests' independent table (tests/real_vllm_support.py: prometheus_client's parser
and the vLLM mapping spelled out by hand) against the exporter's output for the committed real
vLLM 0.32 capture, without an engine: every unified sample the exporter serves for it is one the
table computes, with the same value, so the table cannot fall behind the adapter unnoticed."""

from __future__ import annotations

import pytest

from infersight.exporter.schema import Engine
from tests.real_vllm_support import FIXTURE, expected_unified, samples, unified
from tests.test_golden import normalized_exposition

pytestmark = pytest.mark.unit


def test_the_independent_table_covers_every_served_sample_of_the_real_capture() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    served = unified(samples(normalized_exposition(text, Engine.VLLM)), "engine-0")
    expected = expected_unified(samples(text), "engine-0")
    assert len(served) == 182  # the golden file tests/golden/own/vllm-0.32.0-real.metrics.prom, less exporter_*
    assert {k: served.get(k) for k in expected} == expected
    assert sorted(set(served) - set(expected)) == []
