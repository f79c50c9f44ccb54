"""``infersight compare``: Prometheus' histogram_quantile and increase semantics, the row
arithmetic, and the whole path from simulated engines through exporters and Prometheus."""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import time

import httpx
import pytest

from infersight.compare import (COLUMNS, Snapshot, cluster_target, column_queries, embedded_rows, increase,
                                parse_duration, prometheus_rows, to_csv)
from infersight.promapi import APIError, Reader
from infersight.quantile import histogram_quantile
from tests.processes import free_port, infersight_command, require_binary, running
from tests.test_demo import poll

INF = math.inf


# Expected values computed by hand from promql/quantile.go's bucketQuantile.
@pytest.mark.parametrize(("q", "buckets", "expected"), [
    (0.5, [(0.1, 10), (0.25, 30), (INF, 40)], 0.1 + 0.15 * (20 - 10) / 20),
    (0.99, [(0.1, 10), (0.25, 30), (INF, 40)], 0.25),  # rank in +Inf: the highest finite bound
    (0.5, [(1.0, 4), (INF, 4)], 0.5),  # the first bucket interpolates from 0
    (0.5, [(-1.0, 2), (0.0, 4), (INF, 4)], -1.0),  # ... unless its bound is <= 0
    (0.5, [(0.1, 0), (INF, 0)], math.nan),  # no observations
    (0.5, [(0.1, 5), (0.2, 9)], math.nan),  # no +Inf bucket
    (-0.1, [(0.1, 5), (INF, 9)], -INF),
    (1.1, [(0.1, 5), (INF, 9)], INF),
    (0.5, [(0.2, 3), (0.1, 6), (INF, 10)], 0.1 * 5 / 6),  # sorted by bound; the 0.2 count forced up to 6
])
def test_histogram_quantile_follows_prometheus(q: float, buckets: list, expected: float) -> None:
    got = histogram_quantile(q, buckets)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_increase_treats_a_drop_as_a_restart_from_zero() -> None:
    assert increase([10, 15, 3, 8]) == 5 + 3 + 5
    assert increase([7]) == 0


def test_durations() -> None:
    assert [parse_duration(d) for d in ("30s", "5m", "1h30m", "250ms")] == [30, 300, 5400, 0.25]
    with pytest.raises(ValueError, match="bad duration '5 minutes'"):
        parse_duration("5 minutes")


def _snapshot(at: float, generated: float, ttft: dict[float, float], kv: float, cost: float | None,
              errors: float, successes: float) -> Snapshot:
    row = (("engine", "vllm"), ("model", "m"), ("target", "a"))
    series = {
        "llm_generation_tokens_total": [(row, generated)],
        "llm_prompt_tokens_total": [(row, generated * 4)],
        "llm_time_to_first_token_seconds_bucket": [((("engine", "vllm"), ("le", str(le)), ("model", "m"),
                                                     ("target", "a")), n) for le, n in ttft.items()],
        "llm_kv_cache_usage_ratio": [(row, kv)],
        "llm_requests_running": [(row, 4.0)],
        "llm_requests_total": [(row + (("outcome", "error"),), errors), (row + (("outcome", "success"),), successes)],
        "llm_gpu_utilization_ratio": [((("engine", "vllm"), ("gpu", "0"), ("target", "a")), 0.5),
                                      ((("engine", "vllm"), ("gpu", "1"), ("target", "a")), 0.7)],
    }
    if cost is not None:
        series["llm_hourly_cost_dollars"] = [((("engine", "vllm"), ("target", "a")), cost)]
    return Snapshot(at, {k: [(tuple(sorted(labels)), v) for labels, v in vals] for k, vals in series.items()})


def test_rows_from_scrapes_with_a_counter_reset() -> None:
    window = [
        _snapshot(0, 1000, {0.1: 0, 0.25: 0, INF: 0}, 0.5, 6.5, 0, 10),
        _snapshot(10, 2000, {0.1: 10, 0.25: 30, INF: 40}, 0.7, 6.5, 1, 19),
        # the engine restarted: counters from zero again
        _snapshot(20, 500, {0.1: 0, 0.25: 0, INF: 0}, 0.9, 6.5, 0, 10),
    ]
    [row] = embedded_rows(window)
    output = (1000 + 500) / 20
    assert row == {
        "engine": "vllm", "model": "m", "target": "a",
        "output_tokens_per_second": output, "input_tokens_per_second": output * 4,
        "ttft_p50_seconds": pytest.approx(0.175), "ttft_p99_seconds": 0.25,
        "itl_p50_seconds": None, "itl_p99_seconds": None, "e2e_p99_seconds": None,
        "kv_cache_usage_ratio": pytest.approx(0.7), "gpu_utilization_ratio": pytest.approx(0.6),
        "requests_running": 4.0, "requests_waiting": None,
        "error_ratio": pytest.approx(1 / 20), "hourly_cost_dollars": 6.5,
        "cost_per_million_output_tokens_dollars": pytest.approx(6.5 / (output * 3600) * 1e6),
        "cost_per_million_tokens_dollars": pytest.approx(6.5 / (output * 5 * 3600) * 1e6),
        "energy_per_million_output_tokens_joules": None,  # no GPU energy counter in these scrapes
        "prefill_p50_seconds": None, "decode_p50_seconds": None, "spec_decode_acceptance_ratio": None,
        "prompt_tokens_cached_ratio": None, "requests_waiting_deferred": None,
        "admission_rejections_per_second": None, "engine_awake_ratio": None,
    }
    assert list(row) == list(COLUMNS)
    assert to_csv([row]).splitlines()[0] == ",".join(COLUMNS)


def test_joules_per_million_output_tokens_beside_dollars() -> None:
    """The target's GPUs' energy increase over its output tokens, as cost is: two GPUs at 300 and
    200 W for 10 s (5,000 J) while the target generated 1,000 tokens: 5 J a token, 5e6 per million."""
    def at(t: float, tokens: float, joules: tuple[float, float]) -> Snapshot:
        snapshot = _snapshot(t, tokens, {INF: 0}, 0.5, 6.5, 0, 1)
        snapshot.series["llm_gpu_energy_joules_total"] = [
            ((("engine", "vllm"), ("gpu", str(i)), ("target", "a")), j) for i, j in enumerate(joules)]
        return snapshot

    [row] = embedded_rows([at(0, 1000, (8_000_000.0, 7_000_000.0)), at(10, 2000, (8_003_000.0, 7_002_000.0))])
    assert row["energy_per_million_output_tokens_joules"] == pytest.approx(5e6)
    assert row["cost_per_million_output_tokens_dollars"] == pytest.approx(6.5 / (100 * 3600) * 1e6)

# The keys of shared/reference/interfaces.md: unchanged, in their order, before every added one.
INTERFACE_KEYS = ("engine, model, target, output_tokens_per_second, input_tokens_per_second, ttft_p50_seconds, "
                  "ttft_p99_seconds, itl_p50_seconds, itl_p99_seconds, e2e_p99_seconds, kv_cache_usage_ratio, "
                  "gpu_utilization_ratio, requests_running, requests_waiting, error_ratio, hourly_cost_dollars, "
                  "cost_per_million_output_tokens_dollars, cost_per_million_tokens_dollars").split(", ")


def test_the_published_keys_come_first_and_unchanged() -> None:
    assert list(COLUMNS[:len(INTERFACE_KEYS)]) == INTERFACE_KEYS
    assert COLUMNS[len(INTERFACE_KEYS)] == "energy_per_million_output_tokens_joules"


def test_the_new_signals_per_row() -> None:
    """Over 10 s: a prefill histogram whose window increase puts the median in its first bucket,
    speculative decoding accepting 140 of 200 draft tokens, 250 of 1,000 prompt tokens from cache,
    2 then 4 requests deferred (mean 3), 5 admission rejections, ranks awake 1 then 0.5."""
    row_labels = (("engine", "vllm"), ("model", "m"), ("target", "a"))

    def at(t: float, scale: int, deferred: float, awake: float) -> Snapshot:
        snapshot = _snapshot(t, 1000 * scale, {INF: 0}, 0.5, None, 0, 1)
        series = {
            "llm_request_prefill_seconds_bucket": [(row_labels + (("le", "0.5"),), 4 * scale),
                                                   (row_labels + (("le", "+Inf"),), 4 * scale)],
            "llm_spec_decode_draft_tokens_total": [(row_labels, 200 * scale)],
            "llm_spec_decode_accepted_tokens_total": [(row_labels, 140 * scale)],
            "llm_prompt_tokens_cached_total": [(row_labels, 1000 * scale)],  # prompt tokens: 4000 per scale
            "llm_requests_waiting_by_reason": [(row_labels + (("reason", "deferred"),), deferred),
                                               (row_labels + (("reason", "capacity"),), 7.0)],
            "llm_admission_rejections_total": [(row_labels, 5 * scale)],
            "llm_engine_awake_ratio": [(row_labels, awake)],
        }
        snapshot.series.update({k: [(tuple(sorted(labels)), v) for labels, v in vals] for k, vals in series.items()})
        return snapshot

    [row] = embedded_rows([at(0, 1, 2.0, 1.0), at(10, 2, 4.0, 0.5)])
    assert {c: row[c] for c in COLUMNS[COLUMNS.index("prefill_p50_seconds"):]} == {
        "prefill_p50_seconds": 0.25, "decode_p50_seconds": None, "spec_decode_acceptance_ratio": 0.7,
        "prompt_tokens_cached_ratio": 0.25, "requests_waiting_deferred": 3.0,
        "admission_rejections_per_second": 0.5, "engine_awake_ratio": 0.75}


def test_one_scrape_is_not_a_window() -> None:
    assert embedded_rows([_snapshot(0, 1, {INF: 0}, 0.1, None, 0, 0)]) == []


# --- end to end -------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_compare_from_prometheus_and_from_exporters_agree(tmp_path) -> None:
    """Two simulated engines (vLLM 0.33, Triton + vLLM backend) with a sidecar exporter each and a real
    Prometheus: both sources give the same rows, and Triton's missing KV gauge is null, not 0."""
    from infersight.dashboard import data

    prometheus_bin = require_binary("prometheus")
    engines = [("vllm", "0.33", "vllm"), ("triton", "vllm", "triton")]
    ports = {name: (free_port(), free_port()) for _, _, name in engines}
    prometheus_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: infersight\n"
        f"    static_configs: [{{targets: [{', '.join(repr(f'127.0.0.1:{p[1]}') for p in ports.values())}]}}]\n")
    cli = infersight_command()
    with contextlib.ExitStack() as stack:
        for engine, version, name in engines:
            sim_port, exp_port = ports[name]
            stack.enter_context(running([*cli, "simulate", "--engine", engine, "--version", version, "--profile",
                                         "small", "--port", str(sim_port)], f"http://127.0.0.1:{sim_port}/health",
                                        log=tmp_path / f"sim-{name}.log"))
            stack.enter_context(running([*cli, "exporter", "--engine", engine, "--listen", f"127.0.0.1:{exp_port}",
                                         "--target", f"{name}=http://127.0.0.1:{sim_port}/metrics",
                                         "--gpu-count", "1", "--gpu-hourly-dollars", "0.8"],
                                        f"http://127.0.0.1:{exp_port}/-/ready", log=tmp_path / f"exp-{name}.log"))
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        stack.enter_context(running([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp_path / 'data'}",
                                     f"--web.listen-address=127.0.0.1:{prometheus_port}"], f"{prometheus}/-/ready",
                                    log=tmp_path / "prometheus.log"))
        exporters = [a for _, (_, p) in ports.items() for a in ("--exporter", f"http://127.0.0.1:{p}/metrics")]
        # Prometheus' first scrape comes seconds after start: wait until it has read both exporters,
        # so that its data covers the whole window from here on (a deadline, not a fixed wait).
        def both_scraped() -> bool | None:
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": "count(up == 1)"}, timeout=5).json()
            return [r["value"][1] for r in answer["data"]["result"]] == [str(len(engines))] or None

        poll("Prometheus' first scrape of both exporters", both_scraped, timeout=30, every=0.2)
        started = time.time()
        out = subprocess.run([*cli, "compare", *exporters, "--window", "20s", "--interval", "1", "--format", "json"],
                             capture_output=True, text=True, timeout=60, check=True)
        ended = time.time()
        embedded = json.loads(out.stdout)
        from_prometheus = prometheus_rows(prometheus, f"{int(ended - started)}s", at=ended)
        # The same reader's other calls, and its reading of a real Prometheus error answer
        with Reader() as reader:
            up = reader.query_range(prometheus, {"up": "up"}, start=ended - 10, end=ended, step=1, timeout=10)
            with pytest.raises(APIError) as bad_query:
                reader.query(prometheus, {"bad": "sum("}, timeout=10)
            points = data.prometheus_points(prometheus, "20s", 10, 5, data.Connection())
        data.get_reader.clear()
        table = subprocess.run([*cli, "compare", "--prometheus", prometheus, "--window", "20s"], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    print(f"\ncompare over {int(ended - started)} s, from the exporters and from Prometheus:")
    for ours, theirs in zip(embedded, from_prometheus):
        print(f"{ours['engine']:<7} " + "  ".join(
            f"{key} {ours[key]:.4g} / {theirs[key]:.4g}" for key in ("output_tokens_per_second", "ttft_p50_seconds",
                                                                      "itl_p50_seconds")))
    assert [(r["engine"], r["model"], r["target"]) for r in embedded] == [
        ("triton", "Qwen/Qwen3-0.6B", "triton"), ("vllm", "Qwen/Qwen3-0.6B", "vllm")]
    assert all(list(r) == list(COLUMNS) for r in embedded)
    triton, vllm = embedded
    assert triton["kv_cache_usage_ratio"] is None and triton["requests_running"] is None  # not exported by it
    assert vllm["kv_cache_usage_ratio"] is not None and 0 < vllm["kv_cache_usage_ratio"] < 1
    assert vllm["hourly_cost_dollars"] == 0.8
    assert [(r["engine"], r["target"]) for r in from_prometheus] == [("triton", "triton"), ("vllm", "vllm")]
    for ours, theirs in zip(embedded, from_prometheus, strict=True):
        for key in ("output_tokens_per_second", "ttft_p50_seconds", "itl_p50_seconds"):
            # Prometheus extrapolates rate() to the window's edges (up to 1 s of 20 at each: 10%) and
            # scrapes at other instants than compare (up to one 1 s interval: 5%); measured 0.1-2.6%.
            # 0.2 is those 15% and some room.
            assert ours[key] == pytest.approx(theirs[key], rel=0.2), (ours["engine"], key)
    assert sorted(series.labels["instance"] for series in up["up"]) == sorted(
        f"127.0.0.1:{p}" for _, p in ports.values())
    for series in up["up"]:  # 11 steps of 1 s from ended - 10, each target up
        assert [v for _, v in series.points] == [1.0] * 11
        assert [round(t - series.points[0][0], 3) for t, _ in series.points] == [float(i) for i in range(11)]
        assert series.points[0][0] == pytest.approx(ended - 10, abs=0.001)
    assert str(bad_query.value) == (f"Prometheus at {prometheus} could not be queried: HTTP 400 Bad Request: "
                                    'bad_data: invalid parameter "query": 1:5: parse error: unclosed left parenthesis')
    # the UI's Live page series: both engines at the newest point, with throughput
    newest = {(r["engine"], r["target"]): r for r in points[-1][1]}
    assert sorted(newest) == [("triton", "triton"), ("vllm", "vllm")]
    assert all(r["output_tokens_per_second"] > 0 for r in newest.values())
    for rows in (embedded, from_prometheus):  # the new signals, from both sources (bundled queries in PromQL)
        triton_row, vllm_row = rows
        assert vllm_row["spec_decode_acceptance_ratio"] == pytest.approx(2 / 3, rel=0.05)  # the simulator's 2 of 3
        assert vllm_row["prefill_p50_seconds"] > 0 and vllm_row["engine_awake_ratio"] == 1.0
        assert triton_row["spec_decode_acceptance_ratio"] is None and triton_row["engine_awake_ratio"] is None
    assert table.splitlines()[0].split()[:4] == ["engine", "model", "target", "out"]
    assert len(table.splitlines()) == 3


def test_compare_reports_an_unreachable_prometheus() -> None:
    port = free_port()
    out = subprocess.run([*infersight_command(), "compare", "--prometheus", f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr == (f"infersight compare: Prometheus at http://127.0.0.1:{port} could not be queried: "
                          "connection refused\n")


def test_a_cluster_label_keeps_same_named_targets_apart() -> None:
    # One Prometheus (no external label in its own answers): rows as they always were. A store fed
    # by several clusters (remote_write, each its own `cluster`): the target is cluster/target.
    assert cluster_target({"engine": "vllm", "target": "vllm-0"}) == {"engine": "vllm", "target": "vllm-0"}
    assert cluster_target({"engine": "vllm", "target": "vllm-0", "cluster": "east"}) == {
        "engine": "vllm", "target": "east/vllm-0", "cluster": "east"}
    groupings = [g for q in column_queries("5m").values() for g in re.findall(r"\bby \(([^)]*)\)", q)]
    assert len(groupings) == 26 and all(g.startswith("cluster, engine") for g in groupings)
