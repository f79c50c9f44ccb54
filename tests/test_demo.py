"""``infersight demo``: its engines, exporters, Prometheus and Alertmanager start, and the comparison
they produce matches what the simulated engines really did (their ground truth, not constants)."""

from __future__ import annotations

import bisect
import random
import socket
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest

from infersight.compare import History, embedded_rows
from infersight.tools.demo import Demo
from infersight.simulator.formats import ITL_V0, ITL_V1, TTFT_V0, TTFT_V1
from tests.processes import infersight_command, require_binary

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def poll(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """``check()``'s first truthy answer, asked every ``every`` s; fails naming ``what`` after
    ``timeout`` s (a deadline, never a fixed sleep: a fast machine does not wait it out)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last answer {answer!r})")
        time.sleep(every)


def free_base_port() -> int:
    """A base port whose demo offsets (0-2, 1090-1095, 1400-1402) are all free. Drawn at random
    below the ephemeral range (32768+): demos of parallel test workers, checked free here and bound
    moments later, must not all try the same first free base."""
    for base in random.sample(range(20000, 32768 - 1502), 400):
        ports = [base + o for o in (0, 1, 2, 1090, 1093, 1095, 1400, 1401, 1402, 1501)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


def packaged_rules() -> list[dict]:
    """Every rule of the files the demo gives Prometheus."""
    import yaml

    from infersight import alerts

    return [rule for name in (alerts.GENERATED_RULES, alerts.ALERT_RULES)
            for group in yaml.safe_load(alerts.packaged(name).read_text(encoding="utf-8"))["groups"]
            for rule in group["rules"]]


def bucket(value: float, bounds: tuple[float, ...]) -> int:
    """Index of the histogram bucket holding ``value`` (len(bounds) for +Inf)."""
    return bisect.bisect_left(bounds, value)


def test_demo_comparison_matches_the_engines_ground_truth() -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    demo = Demo(free_base_port(), prometheus=True)
    try:
        demo.start()
        # Prometheus loads the project's rules and finds Alertmanager.
        prometheus = f"http://127.0.0.1:{demo.prometheus_port}"
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert httpx.get(f"http://127.0.0.1:{demo.ui_port}/_stcore/health", timeout=10).text == "ok"
        assert sum(len(g["rules"]) for g in groups) == len(packaged_rules())
        # The engines start in their steady state (warm start): no ramp to wait out. Scrape the
        # exporters until the history spans 20 s (about 11 scrapes, 2 s apart).
        history = History([f"http://127.0.0.1:{e.exporter_port}/metrics" for e in demo.engines])

        def spans_20_s() -> bool:
            history.scrape()
            return history.snapshots[-1].time - history.snapshots[0].time >= 20

        poll("20 s of exporter scrapes", spans_20_s, timeout=60, every=2)
        window = list(history.snapshots)
        rows = {row["engine"]: row for row in embedded_rows(window)}
        truths = {e.engine: httpx.get(f"http://127.0.0.1:{e.port}/control/truth",
                                      params={"start": window[0].time, "end": window[-1].time}, timeout=10).json()
                  for e in demo.engines}
    finally:
        demo.stop()
    print(f"\nembedded comparison over {window[-1].time - window[0].time:.1f} s against each engine's exact figures:")
    for engine, row in sorted(rows.items()):
        truth = truths[engine]
        print(f"{engine:<7} out tok/s {row['output_tokens_per_second']:7.1f} (exact {truth['output_tokens_per_second']:7.1f})"
              f"  TTFT p50 {row['ttft_p50_seconds'] * 1e3:6.1f} ms (exact {truth['ttft_p50_seconds'] * 1e3:6.1f})"
              f"  ITL p50 {row['itl_p50_seconds'] * 1e3:5.1f} ms (exact {truth['itl_p50_seconds'] * 1e3:5.1f})"
              f"  $/h {row['hourly_cost_dollars']:.2f}")
    assert sorted(rows) == ["nim", "triton", "vllm"]
    for engine, row in rows.items():
        truth = truths[engine]
        assert truth["generated_tokens"] > 1000
        # The truth's window edges are the snapshots' timestamps, taken as each scrape answered; a
        # scrape answered 300 ms late on a loaded machine moves an edge by 300 ms of 20 s (1.5%), at
        # both ends 3%. Measured: equal to 0.1 tokens/s.
        assert row["output_tokens_per_second"] == pytest.approx(truth["output_tokens_per_second"], rel=0.03), engine
        ttft_bounds, itl_bounds = (TTFT_V1, ITL_V1) if engine == "vllm" else (TTFT_V0, ITL_V0)
        # histogram_quantile lands in the bucket that holds the true percentile: that is all buckets can say.
        assert bucket(row["ttft_p50_seconds"], ttft_bounds) == bucket(truth["ttft_p50_seconds"], ttft_bounds), engine
        assert bucket(row["itl_p50_seconds"], itl_bounds) == bucket(truth["itl_p50_seconds"], itl_bounds), engine
        assert row["hourly_cost_dollars"] == pytest.approx(6.5 + (4500 / 730 if engine == "nim" else 0))
    assert rows["triton"]["kv_cache_usage_ratio"] is None  # Triton's vLLM backend exports no KV gauge
    assert rows["vllm"]["kv_cache_usage_ratio"] > 0


def test_demo_refuses_a_taken_port_with_a_clear_message() -> None:
    base = free_base_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        out = subprocess.run([*infersight_command(), "demo", "--base-port", str(base), "--no-prometheus"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr == (f"infersight demo: ports already in use: {base + 1} (triton simulator). Stop what holds "
                          f"them (another demo?) or pick other ports with --base-port.\n")
    assert out.stdout == ""
