"""``infersight bench``: how fast the exporter turns an engine payload into its own exposition.

For each payload it times, in the same process and on one pinned core, the exporter's whole path
(parse the mapped families, normalize, build the families, render the text format) against
``prometheus_client.parser`` parsing the same text, and reports samples per second for both.
It then runs the real exporter as a separate process, scrapes it repeatedly through HTTP, and
reads that process's resident memory from /proc.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.adapters import ADAPTERS, detect_engine
from exporter.normalize import compile_plan, normalize
from exporter.parse import parse
from exporter.render import TargetReport, build_families, text_exposition
from exporter.replay import make_handler

# vLLM 0.33 bucket lists (shared/reference/engine-metrics.md, "Bucket defaults in 0.33.0").
_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5, 7.5, 10, 20, 40, 80, 160,
         640, 2560]
_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5, 7.5, 10, 20, 40, 80]
_LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680]
_TOKENS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4000]


def vllm_payload(pairs: int) -> str:
    """A vLLM 0.33-shaped exposition with ``pairs`` (model, data-parallel engine) label pairs,
    written by prometheus_client as vLLM itself does (``_created`` series included)."""
    registry = CollectorRegistry()
    labels = ["engine", "model_name"]
    gauges = [Gauge(f"vllm:{n}", n, labels, registry=registry)
              for n in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc")]
    counters = [Counter(f"vllm:{n}", n, labels, registry=registry)
                for n in ("prompt_tokens", "generation_tokens", "num_preemptions", "prefix_cache_queries",
                          "prefix_cache_hits")]
    success = Counter("vllm:request_success", "finished", labels + ["finished_reason"], registry=registry)
    histograms = [Histogram(f"vllm:{n}", n, labels, buckets=b, registry=registry) for n, b in (
        ("time_to_first_token_seconds", _TTFT), ("inter_token_latency_seconds", _ITL),
        ("request_time_per_output_token_seconds", _ITL), ("e2e_request_latency_seconds", _LATENCY),
        ("request_queue_time_seconds", _LATENCY), ("request_prefill_time_seconds", _LATENCY),
        ("request_prompt_tokens", _TOKENS), ("request_generation_tokens", _TOKENS))]
    for i in range(pairs):
        values = (str(i % 2), f"org/model-{i // 2}")
        for j, gauge in enumerate(gauges):
            gauge.labels(*values).set((i + j) % 7 / 10)
        for j, counter in enumerate(counters):
            counter.labels(*values).inc(1000 + i * 17 + j)
        for reason in ("stop", "length", "abort", "error"):
            success.labels(*values, reason).inc(i % 5)
        for j, histogram in enumerate(histograms):
            for k in range(5):
                histogram.labels(*values).observe((i + j + k) % 11 / 10)
    return generate_latest(registry).decode()


def count_samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _pin_to_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    except (AttributeError, OSError):  # not Linux: say so rather than pretend
        return "unpinned"


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm caches and compiled regexes
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Result:
    payload: str
    payload_samples: int
    samples_per_second: float
    baseline_samples_per_second: float
    speedup: float
    rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    added_latency_p99_seconds: float | None = None  # measured by the latency benchmark (not yet built)


def bench_payload(name: str, text: str, repeat: int) -> Result:
    engine = detect_engine(text)
    if engine is None:
        raise SystemExit(f"{name}: no known engine's metrics in the payload")
    plan = compile_plan(ADAPTERS[engine])
    signals = list(plan.parts)

    def exporter_path() -> str:
        normalized = normalize(plan, parse(text, plan.wanted))
        report = TargetReport(engine.value, "bench", True, 0.0, {}, normalized, signals)
        return text_exposition(build_families([report], "bench"))

    def baseline_parse() -> None:
        for _ in text_string_to_metric_families(text):
            pass

    samples = count_samples(text)
    ours = _median_seconds(exporter_path, repeat)
    theirs = _median_seconds(baseline_parse, repeat)
    return Result(name, samples, samples / ours, samples / theirs, theirs / ours)


def measure_exporter_rss(text: str, scrapes: int = 20) -> tuple[int, int]:
    """Serve ``text`` from a stand-in engine, run ``infersight exporter`` against it as its own
    process, scrape it ``scrapes`` times, and return that process's (current, peak) RSS in bytes."""
    engine = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(text.encode(), "/metrics"))
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "exporter", "--listen", f"127.0.0.1:{port}", "--log-level", "warning",
         "--target", f"bench=http://127.0.0.1:{engine.server_address[1]}/metrics"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the exporter did not start") from None
                time.sleep(0.1)
        for _ in range(scrapes):
            httpx.get(url + "/metrics", timeout=60).raise_for_status()
        status = Path(f"/proc/{process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    finally:
        process.terminate()
        process.wait(timeout=10)
        engine.shutdown()
        engine.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(captures: list[Path], sizes: list[int], repeat: int, as_json: bool) -> int:
    core = _pin_to_one_core()
    payloads = [(f"capture:{p.name}", p.read_text(encoding="utf-8")) for p in captures]
    payloads += [(f"generated:vllm-0.33:{pairs}-pairs", vllm_payload(pairs)) for pairs in sizes]
    results = []
    for name, text in payloads:
        gc.collect()
        results.append(bench_payload(name, text, repeat))
    largest = max(payloads, key=lambda p: count_samples(p[1]))
    rss, peak = measure_exporter_rss(largest[1])
    for result in results:
        if result.payload == largest[0]:
            result.rss_bytes, result.peak_rss_bytes = rss, peak
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print(f"infersight bench: parse+normalize+render vs prometheus_client.parser, median of {repeat}, {core}, "
          f"Python {sys.version.split()[0]}")
    print(f"{'payload':48} {'samples':>8} {'exporter/s':>12} {'library/s':>11} {'speedup':>8}")
    for r in results:
        print(f"{r.payload:48} {r.payload_samples:8d} {r.samples_per_second:12,.0f} "
              f"{r.baseline_samples_per_second:11,.0f} {r.speedup:7.1f}x")
    print(f"exporter process RSS after 20 scrapes of {largest[0]}: {rss / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB)")
    return 0
