"""``infersight bench --json`` runs end to end (engine, exporter and Prometheus processes) and
prints the documented keys; the figures themselves are the benchmark's, not a test's."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infersight.tools.bench import vllm_payload
from tests.processes import infersight_command, require_binary

pytestmark = pytest.mark.e2e  # runs Prometheus itself


def test_bench_json_has_every_documented_figure() -> None:
    require_binary("prometheus")  # the yardstick
    out = subprocess.run([*infersight_command(), "bench", "--pairs", "1", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=300, check=True)
    (result,) = json.loads(out.stdout)
    print("\n" + json.dumps(result, indent=1))  # one quick pair: the README's figures come from longer runs
    assert sorted(result) == sorted([
        "payload", "payload_samples", "samples_per_second", "cold_samples_per_second",
        "baseline_samples_per_second", "speedup", "rss_bytes", "peak_rss_bytes", "added_latency_p99_seconds",
        "prometheus_samples_per_cpu_second"])
    # The payload's samples, counted by the library's parser rather than by the bench.
    samples = sum(len(family.samples) for family in text_string_to_metric_families(vllm_payload(1)))
    assert (result["payload"], result["payload_samples"]) == ("generated:vllm-0.33:1-pairs", samples)
    rates = ("samples_per_second", "cold_samples_per_second", "baseline_samples_per_second", "speedup",
             "prometheus_samples_per_cpu_second")
    assert all(math.isfinite(result[key]) and result[key] > 0 for key in rates), {key: result[key] for key in rates}
    # Sanity, not the figures (those are the benchmark's, README "Performance"): a live exporter holds
    # more than its 20 MiB interpreter and well under the chart's 384 Mi limit (measured 66 MiB); the
    # added latency is a difference of two p99s, so it may be negative, and a second would mean the
    # measurement itself broke (measured 1.4 ms).
    assert 20 * 2**20 < result["rss_bytes"] <= result["peak_rss_bytes"] < 200 * 2**20
    assert abs(result["added_latency_p99_seconds"]) < 1.0
