"""``infersight demo`` as a user meets it: the first comparison it prints, and a steady run.

The engines start in their steady state (their profiles' warm start: the synthetic load run in
virtual time before they listen) and keep the model's schedule on the wall clock however busy
the machine is, so what the demo shows is the seed table (README, "Simulated engines"), from the
first comparison on, and no page goes out while nothing is wrong.

Each test prints what it measured."""

from __future__ import annotations

from collections.abc import Iterator

import queue
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

from infersight.compare import prometheus_rows, to_table
from infersight.simulator.profiles import PROFILES
from infersight.tools.demo import Demo
from tests.processes import infersight_command, require_binary, stop_group
from tests.test_demo import free_base_port, poll
from tests.test_demo_engine_clock import midway, replay

pytestmark = pytest.mark.e2e

ENGINES = ("vllm", "triton", "nim")
SEED = {name: PROFILES[f"seed-{name}"].expected for name in ENGINES}  # the seed table's rows
FIRST_COMPARISON_SECONDS = 90.0
# From start() returning to the last measurement. Not shorter: the hour of SLO windows is already
# covered in virtual time (test_demo_alerts); this real-time part measures figures over the run,
# and their spread is the model's own. Replaying each seed profile in virtual time (seeds 1-3,
# 1,300 s in disjoint windows), the exact TTFT p50 of a window strays from the seed row by at most
# 9-19% over 230 s windows and 14-24% over 110 s ones, the p99 by 13-57% against 31-92% (one NIM
# seed has a far window at both lengths: 375% and 868%): halving the
# run would roughly double the spread against the same 10% / 25% tolerances, which the fixed demo
# seed passes with little room now. Four minutes it stays; the parallel run hides it.
STEADY_SECONDS = 240.0
LOWEST_SHORT_WINDOW_PAGE_BURN = 14.4  # what a 5-minute burn rate must exceed for a page (with 1 h's)


def within(measured: float | None, expected: float, tolerance: float) -> bool:
    return measured is not None and abs(measured - expected) <= tolerance * expected


# --- the first comparison -------------------------------------------------------------------------

def parse_table(lines: list[str]) -> dict[str, dict[str, str]]:
    """``to_table``'s text (header, then one row per engine) -> engine -> column title -> cell."""
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(header), (header, cells)
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


class DemoCli:
    """``infersight demo`` as a user starts it (Prometheus, Alertmanager and the web UI), its output
    read line by line with the time each line came. One demo serves both tests: the first
    comparison it prints, then the steady run that follows in the same processes."""

    def __init__(self) -> None:
        self.base_port = free_base_port()
        self.layout = Demo(self.base_port)  # its ports only (a Demo not started starts nothing)
        self.started = time.monotonic()
        self.process = subprocess.Popen([*infersight_command(), "demo", "--base-port", str(self.base_port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                        start_new_session=True)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.running_since: float | None = None  # when it printed "is running": every process answers

    def _read(self) -> None:
        for line in self.process.stdout:  # until the demo's end closes the pipe
            self.lines.put((time.monotonic(), line))

    def next_line(self) -> tuple[float, str] | None:
        try:
            at, line = self.lines.get(timeout=1)
        except queue.Empty:
            assert self.process.poll() is None, "the demo exited:\n" + "".join(self.output)
            return None
        self.output.append(line)
        if self.running_since is None and "infersight demo is running" in line:
            self.running_since = at
        return at, line

    def wait_running(self, timeout: float) -> float:
        """When the demo printed that it runs (every process answered), reading up to it."""
        deadline = time.monotonic() + timeout
        while self.running_since is None:
            assert time.monotonic() < deadline, "the demo did not start:\n" + "".join(self.output)
            self.next_line()
        return self.running_since

    def drain(self) -> list[str]:
        """Every line printed so far and not yet read."""
        while not self.lines.empty():
            self.next_line()
        return self.output

    def stop(self) -> None:
        # SIGTERM, as a pod is stopped: the demo stops everything it started. Not Ctrl-C's SIGINT: a
        # script's background job (scripts/test.sh's cpu_bound pass) starts with SIGINT ignored, and
        # the demo would wait out the timeout (60 s of every CI run until this was seen).
        stop_group(self.process, signal.SIGTERM, timeout=60)
        self.reader.join(timeout=10)  # the pipe's end: everything the demo printed is read
        self.process.stdout.close()
        assert self.process.returncode == 0, "the demo did not stop on SIGTERM:\n" + "".join(self.output[-20:])


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoCli]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    running = DemoCli()
    try:
        yield running
    finally:
        running.stop()


def test_the_first_comparison_comes_within_90_s_at_the_seed_throughput(demo: DemoCli) -> None:
    """``infersight demo`` prints its first comparison within 90 s, each engine's output tokens/s
    within 10% of the seed table: the engines start steady, not on their clients' ramp (560
    tokens/s for NIM before)."""
    table: list[str] = []
    printed_at = None
    deadline = demo.started + FIRST_COMPARISON_SECONDS + 30  # wait a little past 90 s, to say by how much
    while time.monotonic() < deadline and len(table) < 1 + len(ENGINES):
        read = demo.next_line()
        if read is None:
            continue
        at, line = read
        if line.startswith("--- comparison"):
            printed_at, table = at, []
        elif printed_at is not None and line.strip():
            table.append(line)
    assert printed_at is not None and len(table) == 1 + len(ENGINES), "no comparison:\n" + "".join(demo.output)
    elapsed = printed_at - demo.started
    rows = parse_table(table)
    print(f"\nfirst comparison {elapsed:.1f} s after `infersight demo` started:\n" + "".join(table))
    for engine in ENGINES:
        measured = float(rows[engine]["out tok/s"])
        expected = SEED[engine]["output_tokens_per_second"]
        print(f"{engine:<7} out tok/s {measured:>6.0f}   seed {expected:>5.0f}   "
              f"{(measured - expected) / expected:+.1%}")
    assert elapsed <= FIRST_COMPARISON_SECONDS
    assert sorted(rows) == sorted(ENGINES)
    for engine in ENGINES:
        assert within(float(rows[engine]["out tok/s"]), SEED[engine]["output_tokens_per_second"], 0.10), engine


# --- a steady run -----------------------------------------------------------------------------------

def pages(alerts: list[dict]) -> list[str]:
    return [f"{a['labels'].get('alertname')} {a['labels'].get('engine', '')} {a['labels'].get('slo', '')} "
            f"{a.get('state') or a.get('status', {}).get('state')}"
            for a in alerts if a["labels"].get("severity") == "page"]


def test_a_steady_run_holds_the_seed_figures_and_pages_no_one(demo: DemoCli) -> None:
    """Four minutes of the whole demo, no fault: through Prometheus (``compare --prometheus``),
    every engine's output tokens/s, TTFT p50, ITL p50 and KV cache are within 10% of the seed
    table and TTFT p99 within 25%; no page is pending or firing in Prometheus at any of its
    evaluations, nor held by Alertmanager; every SLO's 5-minute burn rate stays under 14.4, the
    page's threshold for it (``test_demo_alerts`` evaluates every page at its own windows over an
    hour of this same run, in virtual time). And each engine's exact figures over the window
    are, to the token, those of its profile run in virtual time (``--calibrate``'s model): the
    real-time loop keeps the model's schedule on a busy machine."""
    layout = demo.layout
    prometheus = f"http://127.0.0.1:{layout.prometheus_port}"
    alertmanager = f"http://127.0.0.1:{layout.alertmanager_port}"
    started = demo.wait_running(timeout=180)  # the run counts from when every process answered
    started_wall = time.time() - (time.monotonic() - started)
    seen_pages: set[str] = set()

    def pages_checked_until_the_end() -> bool:
        seen_pages.update(pages(httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]))
        seen_pages.update(pages(httpx.get(f"{alertmanager}/api/v2/alerts", timeout=10).json()))
        return time.monotonic() - started >= STEADY_SECONDS

    poll("the steady run", pages_checked_until_the_end, timeout=STEADY_SECONDS + 60, every=5)
    end = time.time()
    window = int(end - started_wall) - 10  # Prometheus' first scrapes are in it
    rows = {row["engine"]: row for row in prometheus_rows(prometheus, f"{window}s", at=end)}
    burn = {(s["metric"]["slo"], s["metric"]["engine"]): float(s["value"][1]) for s in httpx.get(
        f"{prometheus}/api/v1/query", params={"query": f"max_over_time(slo:burn_rate:ratio_rate5m[{window}s])",
                                               "time": end}, timeout=10).json()["data"]["result"]}
    states = {e.engine: httpx.get(f"http://127.0.0.1:{e.port}/control/state", timeout=10).json()
              for e in layout.engines}
    truths, replays = {}, {}
    for e in layout.engines:
        clock = states[e.engine]["clock"]
        origin = clock["origin_unix_seconds"]
        recorder, ends = replay(PROFILES[f"seed-{e.engine}"], clock["seed"], end - origin + 1)
        start_at, end_at = midway(ends, end - window - origin), midway(ends, end - origin)
        truths[e.engine] = httpx.get(f"http://127.0.0.1:{e.port}/control/truth", timeout=10, params={
            "start": origin + start_at, "end": origin + end_at}).json()
        replays[e.engine] = recorder.ground_truth(start_at, end_at)
    am_pages = pages(httpx.get(f"{alertmanager}/api/v2/alerts", timeout=10).json())
    printed_pages = [line.strip() for line in demo.drain() if line.startswith("[pager]")]

    print(f"\nsteady run: {time.monotonic() - started:.0f} s after start; Prometheus window {window} s")
    print(to_table(sorted(rows.values(), key=lambda row: row["engine"])))
    columns = [("output_tokens_per_second", 0.10, "{:.0f}"), ("ttft_p50_seconds", 0.10, "{:.3f}"),
               ("ttft_p99_seconds", 0.25, "{:.3f}"), ("itl_p50_seconds", 0.10, "{:.4f}"),
               ("kv_cache_usage_ratio", 0.10, "{:.3f}")]
    failures = []
    for engine in ENGINES:
        for column, tolerance, fmt in columns:
            expected, measured = SEED[engine][column], rows[engine][column]
            if engine == "triton" and column == "kv_cache_usage_ratio":
                assert measured is None  # Triton's vLLM backend exports no KV gauge: n/a, not a figure
                continue
            ok = within(measured, expected, tolerance)
            print(f"{engine:<7} {column:<26} {fmt.format(measured):>8}  seed {fmt.format(expected):>7}  "
                  f"{(measured - expected) / expected:+.1%}  (±{tolerance:.0%}) {'ok' if ok else 'OUT'}")
            if not ok:
                failures.append((engine, column, measured, expected))
        print(f"{engine:<7} exact (/control/truth): {truths[engine]}")
        print(f"{engine:<7} virtual-time replay:    {replays[engine]}")
        print(f"{engine:<7} real-time loop: {states[engine]['loop']}")
    print("max 5-minute burn rates:", {f"{slo}/{engine}": round(b, 2) for (slo, engine), b in sorted(burn.items())})
    print("pages seen:", sorted(seen_pages) or "none", "| in Alertmanager at the end:", am_pages or "none",
          "| printed by the demo:", printed_pages or "none")

    assert sorted(rows) == sorted(ENGINES)
    assert failures == []
    assert seen_pages == set() and am_pages == [] and printed_pages == []
    assert len(burn) == 3 * len(ENGINES)  # ttft, itl and availability of each engine
    assert max(burn.values()) < LOWEST_SHORT_WINDOW_PAGE_BURN
    for engine in ENGINES:
        assert states[engine]["restarts"] == 0 and states[engine]["loop"]["lost_seconds"] == 0
        truth, replayed = truths[engine], replays[engine]
        assert (truth["generated_tokens"], truth["requests_started"]) == (
            replayed["generated_tokens"], replayed["requests_started"]), engine
        for key in ("ttft_p50_seconds", "ttft_p99_seconds", "itl_p50_seconds", "itl_p99_seconds"):
            assert truth[key] == pytest.approx(replayed[key], rel=1e-9, abs=1e-9), (engine, key)
