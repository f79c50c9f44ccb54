"""``infersight bench --json`` runs end to end (engine, exporter and Prometheus processes) and
prints the documented keys; the figures themselves are the benchmark's, not a test's."""

from __future__ import annotations

import json
import subprocess

import pytest

from infersight.tools.bench import count_samples, vllm_payload
from tests.processes import infersight_command, require_binary


def test_bench_json_has_every_documented_figure() -> None:
    require_binary("prometheus")  # the yardstick
    out = subprocess.run([*infersight_command(), "bench", "--pairs", "1", "--repeat", "1", "--json"],
                         capture_output=True, text=True, timeout=300, check=True)
    (result,) = json.loads(out.stdout)
    assert sorted(result) == sorted([
        "payload", "payload_samples", "samples_per_second", "cold_samples_per_second",
        "baseline_samples_per_second", "speedup", "rss_bytes", "peak_rss_bytes", "added_latency_p99_seconds",
        "prometheus_samples_per_cpu_second"])
    assert (result["payload"], result["payload_samples"]) == ("generated:vllm-0.33:1-pairs",
                                                              count_samples(vllm_payload(1)))
    assert result["speedup"] == pytest.approx(result["samples_per_second"] / result["baseline_samples_per_second"],
                                              rel=1e-12)  # the same ratio, computed from times
    assert all(result[key] > 0 for key in ("samples_per_second", "cold_samples_per_second",
                                           "baseline_samples_per_second", "prometheus_samples_per_cpu_second"))
    assert 20 * 2**20 < result["rss_bytes"] <= result["peak_rss_bytes"] < 200 * 2**20
    assert abs(result["added_latency_p99_seconds"]) < 1.0
