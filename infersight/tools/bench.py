"""``infersight bench``: how fast the exporter turns an engine payload into its own exposition.

For each payload it times, in the same process and on one pinned core, the exporter's whole path
(parse the mapped families, normalize, render the text format) against ``prometheus_client.parser``
parsing the same text, and reports samples per second for both.
It then runs the real exporter as a separate process, scrapes it repeatedly through HTTP, and
reads that process's resident memory from /proc.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infersight.exporter.adapters import ADAPTERS, detect_engine
from infersight.exporter.normalize import compile_plan
from infersight.exporter.parse import Layout, SeriesCache
from infersight.exporter.program import parse_and_normalize
from infersight.exporter.render import RenderCache, TargetReport, render_text
from infersight.exporter.server import RELEASE_MEMORY_AFTER_SECONDS

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


_ALL_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin_to_one_core() -> str:
    """Pin the timing process to its first core; the exporter process gets the last one."""
    try:
        os.sched_setaffinity(0, {_ALL_CORES[0]})
        return f"core {_ALL_CORES[0]} (exporter process on core {_ALL_CORES[-1]})"
    except (IndexError, OSError):  # not Linux: say so rather than pretend
        return "unpinned"


def _set_affinity(pid: int, cores: list[int]) -> None:
    try:
        os.sched_setaffinity(pid, set(cores))
    except (AttributeError, OSError, ValueError):
        pass


def _medians(fns: list, repeat: int, rounds: int = 3) -> list[float]:
    """Median seconds of each function over ``rounds`` rounds of ``repeat`` calls, the functions
    taking turns round by round: a slow spell of a shared machine falls on all of them alike, and
    each block starts with an untimed call so no function pays for the others' cache misses."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, times):
            fn()
            gc.collect()  # the garbage of the other functions' blocks is not this one's to collect
            for _ in range(repeat):
                started = time.perf_counter()
                fn()
                out.append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


_SAMPLE_VALUE = re.compile(r"(?m)^([^#\n][^\n]* )(-?[0-9][0-9.e+-]*)$")


def with_new_values(text: str) -> str:
    """The same payload one scrape later: every finite sample value changed (counters grow)."""
    return _SAMPLE_VALUE.sub(lambda m: m.group(1) + repr(float(m.group(2)) + 1.0), text)


@dataclass
class Result:
    payload: str
    payload_samples: int
    samples_per_second: float  # steady state: the target's series already known (as in Prometheus)
    cold_samples_per_second: float  # first scrape of a target: every series new
    baseline_samples_per_second: float  # prometheus_client.parser, parse only
    speedup: float  # samples_per_second / baseline_samples_per_second
    rss_bytes: int | None = None  # the exporter process after 20 scrapes of this payload
    peak_rss_bytes: int | None = None
    added_latency_p99_seconds: float | None = None  # p99 through the exporter minus p99 direct
    prometheus_samples_per_cpu_second: float | None = None  # Prometheus ingesting this payload (one core)


def bench_payload(name: str, text: str, repeat: int) -> Result:
    """Time the server's own path: fetch is left out, parse + normalize + render_text is in."""
    engine = detect_engine(text)
    if engine is None:
        raise SystemExit(f"{name}: no known engine's metrics in the payload")
    plan = compile_plan(ADAPTERS[engine])
    signals = list(plan.parts)
    warm_cache, layout, render_cache = SeriesCache(), Layout(), RenderCache()
    scrapes = itertools.cycle([text, with_new_values(text)])  # steady: known series, new values each scrape

    def exporter_path(payload: str, cache: dict | None, target_layout: Layout | None,
                      rendered: RenderCache | None) -> str:
        normalized = parse_and_normalize(payload, plan, series=cache, layout=target_layout)
        return render_text([TargetReport(engine.value, "bench", True, 0.0, {}, normalized, signals)], "bench",
                           cache=rendered)

    def baseline_parse() -> None:
        for _ in text_string_to_metric_families(text):
            pass

    samples = count_samples(text)
    warm, cold, theirs = _medians([lambda: exporter_path(next(scrapes), warm_cache, layout, render_cache),
                                   lambda: exporter_path(text, {}, None, None), baseline_parse], repeat)
    return Result(name, samples, samples / warm, samples / cold, samples / theirs, theirs / warm)


class _Process:
    """``infersight exporter`` as a separate process, for RSS, latency and CPU figures."""

    def __init__(self, targets: list[str], timeout: float = 10):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infersight.cli", "exporter", "--listen", f"127.0.0.1:{self.port}",
             "--log-level", "error", "--scrape-timeout", str(timeout), *(f for t in targets for f in ("--target", t))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _set_affinity(self.process.pid, _ALL_CORES[-1:])
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise SystemExit("the exporter did not start")
            time.sleep(0.1)

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class _Engine:
    """A stand-in engine (``infersight replay``) serving ``text`` from its own process."""

    def __init__(self, text: str):
        import tempfile

        self._file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        self._file.write(text)
        self._file.close()
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infersight.cli", "replay", self._file.name, "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _set_affinity(self.process.pid, _ALL_CORES)
        self.url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url, timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise SystemExit("the stand-in engine did not start") from None
                time.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        os.unlink(self._file.name)


def measure_rss(text: str, scrapes: int = 20) -> tuple[int, int]:
    """(between scrapes, peak) RSS of an exporter process after ``scrapes`` scrapes of a target
    serving ``text``: read once the exporter has handed freed memory back (exporter.memory), as it
    is for most of a scrape interval."""
    engine = _Engine(text)
    exporter = _Process([f"bench={engine.url}"])
    try:
        for _ in range(scrapes):
            httpx.get(exporter.url + "/metrics", timeout=60).raise_for_status()
        time.sleep(RELEASE_MEMORY_AFTER_SECONDS + 1)
        return exporter.status("VmRSS"), exporter.status("VmHWM")
    finally:
        exporter.close()
        engine.close()


def _scrape_times(url: str, concurrency: int, requests: int) -> list[float]:
    """Seconds per scrape of ``url`` by ``concurrency`` clients making ``requests`` scrapes each."""
    times: list[float] = []

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(requests):
                started = time.perf_counter()
                client.get(url).raise_for_status()
                times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[98]


def measure_added_latency(text: str, concurrency: int = 4, requests: int = 100, rounds: int = 3) -> float:
    """p99 of scraping through the exporter minus p99 of scraping the engine directly, each under
    ``concurrency`` clients making ``requests`` scrapes, in ``rounds`` alternating rounds (a slow
    spell of the machine falls on both); each p99 is over all its rounds' scrapes."""
    engine = _Engine(text)
    exporter = _Process([f"bench={engine.url}"])
    try:
        _scrape_times(exporter.url + "/metrics", 1, 10)  # warm: the first scrapes build the layout and its plan
        direct: list[float] = []
        through: list[float] = []
        for _ in range(rounds):
            direct += _scrape_times(engine.url, concurrency, requests)
            through += _scrape_times(exporter.url + "/metrics", concurrency, requests)
        return _p99(through) - _p99(direct)
    finally:
        exporter.close()
        engine.close()


def measure_many_targets(text: str, targets: int, scrapes: int = 5, interval: float = 15.0) -> dict:
    """CPU an exporter carrying ``targets`` targets spends per scrape, and the share of one core that
    is at one scrape every ``interval`` seconds."""
    engine = _Engine(text)
    exporter = _Process([f"t{i}={engine.url}" for i in range(targets)], timeout=60)
    try:
        httpx.get(exporter.url + "/metrics", timeout=120).raise_for_status()  # warm the series caches
        before, started = exporter.cpu_seconds(), time.perf_counter()
        for _ in range(scrapes):
            response = httpx.get(exporter.url + "/metrics", timeout=120)
            response.raise_for_status()
        cpu = (exporter.cpu_seconds() - before) / scrapes
        wall = (time.perf_counter() - started) / scrapes
        time.sleep(RELEASE_MEMORY_AFTER_SECONDS + 1)  # RSS between scrapes, as measure_rss
        up = response.text.count(" 1.0\n", response.text.find("# TYPE llm_exporter_target_up"),
                                 response.text.find("# HELP llm_exporter_target_scrape_duration_seconds"))
        return {"targets": targets, "targets_up": up, "payload_samples": count_samples(text),
                "cpu_seconds_per_scrape": cpu, "wall_seconds_per_scrape": wall,
                "core_fraction_at_interval": cpu / interval, "interval_seconds": interval,
                "rss_bytes": exporter.status("VmRSS")}
    finally:
        exporter.close()
        engine.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure_prometheus_ingest(text: str, seconds: float = 20.0, interval: str = "200ms") -> dict | None:
    """Prometheus itself as the yardstick: Debian's ``prometheus`` (one core: GOMAXPROCS=1 and pinned)
    scrapes a stand-in engine serving ``text`` every ``interval``; samples it appended per CPU
    second of its process, over ``seconds`` after a warm-up. None where Prometheus is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    engine = _Engine(text)
    port, payload_samples = free_port(), count_samples(text)
    with tempfile.TemporaryDirectory(prefix="infersight-bench-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:\n"
                          f"  - job_name: engine\n    static_configs:\n      - targets: ['{engine.url.split('/')[2]}']\n")
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "GOMAXPROCS": "1"})
        _set_affinity(process.pid, _ALL_CORES[-1:])
        url = f"http://127.0.0.1:{port}/metrics"

        def appended() -> float:
            own = httpx.get(url, timeout=10).text
            return sum(s.value for f in text_string_to_metric_families(own)
                       if f.name == "prometheus_tsdb_head_samples_appended" for s in f.samples)

        try:
            deadline = time.monotonic() + 30
            while True:  # ready, and past the first scrapes (every series new)
                try:
                    if appended() >= 5 * payload_samples:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    return None
                time.sleep(0.5)
            samples, cpu = appended(), _cpu_seconds(process.pid)
            time.sleep(seconds)
            samples, cpu = appended() - samples, _cpu_seconds(process.pid) - cpu
            return {"samples_per_cpu_second": samples / cpu if cpu else None, "samples_appended": samples,
                    "cpu_seconds": cpu, "interval": interval, "payload_samples": payload_samples}
        finally:
            process.terminate()
            process.wait(timeout=30)
            engine.close()


def run(captures: list[Path], sizes: list[int], repeat: int, as_json: bool, many_targets: int = 0) -> int:
    core = _pin_to_one_core()
    payloads = [(f"capture:{p.name}", p.read_text(encoding="utf-8")) for p in captures]
    payloads += [(f"generated:vllm-0.33:{pairs}-pairs", vllm_payload(pairs)) for pairs in sizes]
    results = []
    for name, text in payloads:
        gc.collect()
        result = bench_payload(name, text, repeat)
        result.rss_bytes, result.peak_rss_bytes = measure_rss(text)
        results.append(result)
    generated = [(n, t) for n, t in payloads if n.startswith("generated:")]
    smallest = min(generated or payloads, key=lambda p: count_samples(p[1]))
    for result in results:
        if result.payload == smallest[0]:
            result.added_latency_p99_seconds = measure_added_latency(smallest[1])
    # Prometheus' own ingestion, the issue's yardstick, on the payload nearest 10k samples.
    yardstick = min(generated or payloads, key=lambda p: abs(count_samples(p[1]) - 10_000))
    prometheus = measure_prometheus_ingest(yardstick[1])
    for result in results:
        if result.payload == yardstick[0] and prometheus:
            result.prometheus_samples_per_cpu_second = prometheus["samples_per_cpu_second"]
    fleet = measure_many_targets(smallest[1], many_targets) if many_targets else None
    if as_json:
        print(json.dumps(fleet if fleet else [asdict(r) for r in results], indent=2))
        return 0
    print(f"infersight bench: parse+normalize+render vs prometheus_client.parser (parse only), median of "
          f"{repeat}, {core}, Python {sys.version.split()[0]}")
    print(f"{'payload':50} {'samples':>7} {'steady/s':>10} {'cold/s':>9} {'library/s':>9} {'speedup':>7} "
          f"{'RSS MiB':>7} {'peak MiB':>8}")
    for r in results:
        print(f"{r.payload:50} {r.payload_samples:7d} {r.samples_per_second:10,.0f} {r.cold_samples_per_second:9,.0f} "
              f"{r.baseline_samples_per_second:9,.0f} {r.speedup:6.1f}x {r.rss_bytes / 2**20:7.1f} "
              f"{r.peak_rss_bytes / 2**20:8.1f}")
    added = next(r.added_latency_p99_seconds for r in results if r.payload == smallest[0])
    print(f"added p99 latency of a scrape through the exporter ({smallest[0]}, 4 concurrent clients): "
          f"{added * 1000:.2f} ms")
    if prometheus:
        ours = next(r.samples_per_second for r in results if r.payload == yardstick[0])
        print(f"Prometheus itself ingesting {yardstick[0]} (one core, scrape every {prometheus['interval']}): "
              f"{prometheus['samples_per_cpu_second']:,.0f} samples per CPU second; the exporter's steady path "
              f"{ours / prometheus['samples_per_cpu_second']:.2f}x that")
    else:
        print("Prometheus is not installed (scripts/setup.sh installs it): no yardstick measured")
    if fleet:
        print(f"{fleet['targets']} targets ({fleet['targets_up']} up) of {fleet['payload_samples']} samples: "
              f"{fleet['cpu_seconds_per_scrape']:.2f} CPU s per scrape ({fleet['wall_seconds_per_scrape']:.2f} s wall), "
              f"{fleet['core_fraction_at_interval']:.0%} of one core at a {fleet['interval_seconds']:.0f} s interval, "
              f"RSS {fleet['rss_bytes'] / 2**20:.0f} MiB")
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
