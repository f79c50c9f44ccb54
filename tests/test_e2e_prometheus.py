"""End to end: a real Prometheus (Debian package) scrapes the infersight CLI's exporter, which
scrapes an engine endpoint; PromQL over the normalized names returns the engine's values."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.engine_server import EngineServer
from tests.processes import free_port, infersight_command, require_binary, running

pytestmark = pytest.mark.e2e

VLLM_PAYLOAD = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.58
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
"""


def query(prometheus: str, expr: str) -> list[dict]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def wait_for(prometheus: str, expr: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout  # Prometheus 2.42 first scrapes ~5.5 s after start
    while time.monotonic() < deadline:
        result = query(prometheus, expr)
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"no result for {expr} within {timeout}s")


def test_prometheus_scrapes_normalized_metrics(tmp_path) -> None:
    prometheus_bin = require_binary("prometheus")
    engine = EngineServer()
    engine.serve("/metrics", VLLM_PAYLOAD)
    exporter_port, prometheus_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(f"""\
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: infersight
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
""")
    exporter_cmd = [*infersight_command(), "exporter", "--engine", "vllm", "--listen", f"127.0.0.1:{exporter_port}",
                    "--target", f"vllm-a={engine.url('/metrics')}"]
    prometheus_cmd = [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                      f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"]
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    try:
        with running(exporter_cmd, f"http://127.0.0.1:{exporter_port}/-/ready", log=tmp_path / "exporter.log"), \
             running(prometheus_cmd, f"{prometheus}/-/ready", log=tmp_path / "prometheus.log"):
            kv = wait_for(prometheus, "llm_kv_cache_usage_ratio")
            waiting = query(prometheus, "llm_requests_waiting")
            up = query(prometheus, "llm_exporter_target_up")
            last_request = engine.behaviours["/metrics"].requests[-1]
    finally:
        engine.close()
    instance = f"127.0.0.1:{exporter_port}"
    print(f"\nPrometheus read: llm_kv_cache_usage_ratio {[r['value'][1] for r in kv]}, llm_requests_waiting "
          f"{[r['value'][1] for r in waiting]}, llm_exporter_target_up {[r['value'][1] for r in up]}; the exporter "
          f"asked the engine for {last_request['Accept']!r}")
    assert [(r["metric"], r["value"][1]) for r in kv] == [({
        "__name__": "llm_kv_cache_usage_ratio", "engine": "vllm", "instance": instance, "job": "infersight",
        "model": "meta-llama/Llama-3.1-8B-Instruct", "target": "vllm-a"}, "0.5")]  # the mean of 0.42 and 0.58
    assert [r["value"][1] for r in waiting] == ["7"]
    assert [(r["metric"]["target"], r["value"][1]) for r in up] == [("vllm-a", "1")]
    assert last_request["Accept"].startswith("text/plain;version=0.0.4")
