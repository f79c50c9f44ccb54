"""An engine that mints label values: 100,000 GPUs, 20 KB label values churned every scrape,
finish and waiting reasons of its own. Each label dimension the exporter copies is capped with a
counted drop (``llm_exporter_dropped_series_total``), and its caches are bounded in bytes
(exporter.parse.SeriesCache, exporter.render.RenderCache); docs/reliability.md, "Attacks"."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from infersight.exporter.adapters import ADAPTERS
from infersight.exporter import parse as parse_module
from infersight.exporter.fetch import Payload
from infersight.exporter.normalize import Normalized, compile_plan
from infersight.exporter.parse import KEPT_SERIES_COST, SeriesCache, parse
from infersight.exporter.render import RenderCache, render_text
from infersight.exporter.schema import Engine, M, Outcome, WaitingReason
from infersight.exporter.scraper import MonotonicGuard, TargetScraper
from infersight.exporter.settings import load_settings
from tests.conftest import REPO
from tests.processes import free_port, infersight_command, running
from tests.test_attack_memory import _status_mib
from tests.test_fetch_client import ScriptedEngine

pytestmark = pytest.mark.e2e

MiB = 1 << 20
GPUS = 100_000
MAX_GPUS = 64  # the default --max-gpus
TRITON_GPU_FAMILIES = ("nv_gpu_utilization", "nv_gpu_memory_used_bytes")


def _uuid(i: int) -> str:
    return f"GPU-{i:08x}-1111-2222-3333-444455556666"


def _triton_gpus(n: int) -> bytes:
    lines = []
    for family in TRITON_GPU_FAMILIES:
        lines += [f"# HELP {family} GPU metric", f"# TYPE {family} gauge"]
        lines += [f'{family}{{gpu_uuid="{_uuid(i)}"}} {i % 100}' for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def _sample(text: str, line_start: str) -> float:
    values = [line.rpartition(" ")[2] for line in text.splitlines() if line.startswith(line_start)]
    assert len(values) == 1, (line_start, values)
    return float(values[0])


def _gpu_labels(text: str, metric: str) -> list[str]:
    return sorted(re.findall(r'gpu="([^"]*)"', "\n".join(line for line in text.splitlines()
                                                          if line.startswith(metric + "{"))))


def test_a_hundred_thousand_gpus_are_capped_with_a_counted_drop(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    engine.reply("/metrics", _triton_gpus(GPUS))
    port = free_port()
    command = [*infersight_command(), "exporter", "--engine", "triton", "--gpu-source", "engine",
               "--listen", f"127.0.0.1:{port}", "--target", f"gpus={engine.url('/metrics')}", "--log-level", "error"]
    try:
        with running(command, f"http://127.0.0.1:{port}/-/healthy", log=tmp_path / "exporter.log") as exporter:
            started = time.monotonic()
            answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            took = time.monotonic() - started
            memory = _status_mib(exporter.pid)
    finally:
        engine.close()
    assert answer.status_code == 200
    text = answer.text
    kept = [_uuid(i) for i in range(MAX_GPUS)]  # the first by UUID
    assert _gpu_labels(text, M.GPU_UTILIZATION_RATIO.name) == kept
    assert _gpu_labels(text, M.GPU_MEMORY_USED_BYTES.name) == kept
    assert _sample(text, f'{M.EXPORTER_DROPPED_SERIES.name}{{engine="triton",target="gpus"}}') == \
        len(TRITON_GPU_FAMILIES) * (GPUS - MAX_GPUS)
    assert len(text.splitlines()) < 400  # 128 GPU series and the exporter's own, not 200,000
    print(f"\n100k GPUs: scrape {took:.2f} s, exporter peak RSS {memory['VmHWM']:.0f} MiB")
    # Parsing the 14 MB payload is the cost (4-5 s measured on 2 busy cores, against 4.7-5.8 s and a
    # 21 MB answer of 200,000 series before the cap); what is served no longer grows with the GPUs.
    assert took < 30


CHURN_SERIES = 400
CHURN_VALUE_BYTES = 20_000
CHURN_SCRAPES = 12
CHURN_CACHE_BYTES = 16 * MiB


def _churned(scrape: int, series: int = CHURN_SERIES) -> bytes:
    """vLLM gauges whose model names are fresh 20 KB strings every scrape."""
    lines = ["# HELP vllm:num_requests_running Running requests.", "# TYPE vllm:num_requests_running gauge"]
    lines += [f'vllm:num_requests_running{{model_name="{scrape}-{i}-{"x" * CHURN_VALUE_BYTES}"}} {i}'
              for i in range(series)]
    lines += ["# HELP vllm:num_requests_waiting Waiting requests.", "# TYPE vllm:num_requests_waiting gauge",
              'vllm:num_requests_waiting{model_name="m"} 3']
    return ("\n".join(lines) + "\n").encode()


def _churned_line_bytes() -> int:
    """What one churned series adds to the series cache's estimate (exporter.parse)."""
    head = f'vllm:num_requests_running{{model_name="0-0-{"x" * CHURN_VALUE_BYTES}"}}'
    return 2 * len(head) + KEPT_SERIES_COST


def test_churned_20_kb_label_values_are_dropped_and_the_series_cache_stays_under_its_byte_cap() -> None:
    settings = load_settings({"engine": "vllm", "targets": [{"url": "http://127.0.0.1:1/metrics"}],
                              "max_cache_bytes": CHURN_CACHE_BYTES})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes,
                            max_cache_bytes=settings.max_cache_bytes)
    render_cache = RenderCache()
    payload_bytes = CHURN_SERIES * _churned_line_bytes()  # one scrape's worth in the cache's estimate
    assert payload_bytes > CHURN_CACHE_BYTES / 4  # the cache must start over several times
    highest = 0
    for scrape in range(CHURN_SCRAPES):
        normalized = scraper.ingest(Payload(_churned(scrape).decode(), False))
        assert normalized.dropped_series == CHURN_SERIES  # every 20 KB model name, no other
        assert normalized.series[M.REQUESTS_WAITING] == {("m",): 3.0}
        cache = scraper._caches[scraper.engine]
        assert cache.bytes <= CHURN_CACHE_BYTES + payload_bytes
        highest = max(highest, cache.bytes)
        report = scraper.report(normalized, None, 0.1)
        render_text([report], "test", cache=render_cache)
        assert render_cache.bytes <= render_cache.max_bytes
    assert scraper.dropped_series == CHURN_SCRAPES * CHURN_SERIES
    assert highest > CHURN_CACHE_BYTES  # it did fill up, and started over


def cache_estimate_and_held(series: int, value_bytes: int) -> tuple[int, int, int]:
    """(entries, the cache's estimate, what tracemalloc sees the parser's lines hold) for a payload
    of ``series`` kept and ``series`` skipped lines with ``value_bytes``-byte label values."""
    lines = ["# HELP kept_family x", "# TYPE kept_family gauge"]
    lines += [f'kept_family{{model="{i}-{"k" * value_bytes}"}} {i}' for i in range(series)]
    lines += ["# HELP skipped_family x", "# TYPE skipped_family gauge"]
    lines += [f'skipped_family{{model="{i}-{"s" * value_bytes}"}} {i}' for i in range(series)]
    text = "\n".join(lines) + "\n"
    cache = SeriesCache()
    tracemalloc.start()
    try:
        families = parse(text, {"kept_family"}, series=cache)
        del families
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, parse_module.__file__)])
        held = sum(stat.size for stat in snapshot.statistics("filename"))
    finally:
        tracemalloc.stop()
    return len(cache), cache.bytes, held


@pytest.mark.parametrize("series, value_bytes", [(10_000, 40), (400, CHURN_VALUE_BYTES)])
def test_the_series_caches_estimate_is_what_tracemalloc_measures(series: int, value_bytes: int) -> None:
    """The byte cap is as good as the estimate: within 0.9-1.3 of what the cache holds, short or
    long lines, kept families and skipped ones. Measured in a fresh interpreter: in a process that
    has run other tests, growing the interpreter's table of interned strings (the parser interns
    label names and values) is counted as the parser's and swamps the figure."""
    code = ("from tests.test_attack_labels import cache_estimate_and_held as m; "
            f"print(*m({series}, {value_bytes}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    entries, estimate, held = map(int, result.stdout.split())
    assert entries == 2 * series
    assert 0.9 < estimate / held < 1.3, (estimate, held)


def test_the_render_cache_stays_under_its_byte_cap_while_labels_churn() -> None:
    """Label values up to --max-label-bytes reach the renderer: churned every scrape, its cache of
    label strings starts over at its byte cap rather than at its line cap (50,000 lines of 1 KB)."""
    settings = load_settings({"engine": "vllm", "targets": [{"url": "http://127.0.0.1:1/metrics"}]})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)
    cache = RenderCache(max_bytes=MiB)
    line_bytes = 2 * len(f'{M.REQUESTS_RUNNING.name}{{engine="vllm",model="{"m" * 1000}",target="127.0.0.1:1"}} ') + \
        RenderCache.LINE_COST
    restarts, last = 0, 0
    for scrape in range(30):
        models = [f"{scrape:03d}-{i:02d}-" + "m" * 993 for i in range(100)]  # 1,000 bytes each, 100 models
        lines = ["# TYPE vllm:num_requests_running gauge"]
        lines += [f'vllm:num_requests_running{{model_name="{model}"}} 1' for model in models]
        normalized = scraper.ingest(Payload("\n".join(lines) + "\n", False))
        assert normalized.dropped_series == 0
        render_text([scraper.report(normalized, None, 0.1)], "test", cache=cache)
        assert cache.bytes < MiB + line_bytes
        restarts += cache.bytes < last
        last = cache.bytes
    # A line costs 2,332 bytes: 450 fill the MiB, midway through every 5th scrape; the next one
    # starts over (without the byte cap the 3,000 lines, 7 MB, would all stay: 50,000 lines fit).
    assert line_bytes == 2332
    assert restarts == 5


def test_churned_20_kb_label_values_do_not_grow_the_exporters_memory(tmp_path: Path) -> None:
    """The exporter process: what the series cache may hold is its byte cap plus one payload, so
    resident memory after warm-up grows by no more than that, however many scrapes churn."""
    engine = ScriptedEngine()
    scrapes = [0]

    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = _churned(scrapes[0])
        scrapes[0] += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; version=0.0.4")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    engine.routes["/metrics"] = answer
    port = free_port()
    command = [*infersight_command(), "exporter", "--engine", "vllm", "--listen", f"127.0.0.1:{port}",
               "--target", f"churn={engine.url('/metrics')}", "--max-cache-bytes", str(CHURN_CACHE_BYTES),
               "--log-level", "error"]
    rss = []
    try:
        with running(command, f"http://127.0.0.1:{port}/-/healthy", log=tmp_path / "exporter.log") as exporter:
            with httpx.Client(timeout=30) as prometheus:
                for _ in range(CHURN_SCRAPES):
                    before = scrapes[0]
                    deadline = time.monotonic() + 10
                    while True:  # past the reuse window: each scrape fetches the engine afresh
                        answer_ = prometheus.get(f"http://127.0.0.1:{port}/metrics")
                        assert answer_.status_code == 200
                        if scrapes[0] > before:
                            break
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                    time.sleep(1.2)  # the memory release after a scrape
                    rss.append(_status_mib(exporter.pid)["VmRSS"])
            text = answer_.text
    finally:
        engine.close()
    assert scrapes[0] == CHURN_SCRAPES
    assert _sample(text, f'{M.EXPORTER_DROPPED_SERIES.name}{{engine="vllm",target="churn"}}') == \
        CHURN_SCRAPES * CHURN_SERIES
    assert "x" * 1025 not in text
    payload = len(_churned(0)) / MiB
    growth = max(rss[2:]) - rss[1]
    print(f"\nchurn: RSS after each scrape {[round(r) for r in rss]} MiB; payload {payload:.1f} MiB, "
          f"cache cap {CHURN_CACHE_BYTES // MiB} MiB")
    # Bound: the cache's cap and the one payload's worth it may go over by (twice the text), and
    # one payload being read while the last one's text is still referenced.
    assert growth < CHURN_CACHE_BYTES / MiB + 4 * payload


def test_finish_and_waiting_reasons_of_the_engines_own_do_not_become_label_values() -> None:
    settings = load_settings({"engine": "vllm", "targets": [{"url": "http://127.0.0.1:1/metrics"}]})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)
    minted = [f"minted-{i}-{'r' * 100}" for i in range(500)]
    lines = ["# HELP vllm:request_success_total Finished requests.", "# TYPE vllm:request_success_total counter"]
    lines += [f'vllm:request_success_total{{finished_reason="{reason}",model_name="m"}} 1' for reason in minted]
    lines += ['vllm:request_success_total{finished_reason="abort",model_name="m"} 2',
              "# HELP vllm:num_requests_waiting_by_reason Waiting requests by reason.",
              "# TYPE vllm:num_requests_waiting_by_reason gauge",
              'vllm:num_requests_waiting_by_reason{model_name="m",reason="capacity"} 4',
              'vllm:num_requests_waiting_by_reason{model_name="m",reason="deferred"} 5']
    lines += [f'vllm:num_requests_waiting_by_reason{{model_name="m",reason="{reason}"}} 1' for reason in minted]
    text = "\n".join(lines) + "\n"
    for scrape in (1, 2):  # the second through the planned layout (exporter.program)
        normalized = scraper.ingest(Payload(text, False))
        assert normalized.series[M.REQUESTS] == {("m", Outcome.SUCCESS.value): 500.0,
                                                 ("m", Outcome.ABORTED.value): 2.0,
                                                 ("m", Outcome.ERROR.value): 0.0,
                                                 ("m", Outcome.REJECTED.value): 0.0}
        assert normalized.series[M.REQUESTS_WAITING_BY_REASON] == {("m", WaitingReason.CAPACITY.value): 4.0,
                                                                   ("m", WaitingReason.DEFERRED.value): 5.0,
                                                                   ("m", WaitingReason.OTHER.value): 500.0}
        assert normalized.dropped_series == 500  # the waiting reasons folded into "other"
        assert scraper.dropped_series == 500 * scrape
    rendered = render_text([scraper.report(normalized, None, 0.1)], "test")
    assert "minted" not in rendered


def test_the_counter_guards_floors_do_not_outgrow_the_models_an_engine_serves() -> None:
    """SGLang's successes are held at their highest value per series (exporter.scraper's
    MonotonicGuard); model names churned every scrape must not leave a floor each behind."""
    plan = compile_plan(ADAPTERS[Engine.SGLANG])
    guard = MonotonicGuard(plan)
    assert guard.metrics == (M.REQUESTS,)
    sizes = []
    for scrape in range(100):
        guard.apply(Normalized({M.REQUESTS: {(f"{scrape}-{i}", Outcome.SUCCESS.value): 1.0 for i in range(100)}}))
        sizes.append((len(guard.highest), len(guard.totals)))
    # Pruned to this scrape's 100 series once over 4 x 100 + 1,024 (at 1,500): a cycle of 14
    # scrapes, 1,400 floors at most (before: 10,000 after 100 scrapes, and growing).
    assert sizes == [(100 * (1 + scrape % 14),) * 2 for scrape in range(100)]
