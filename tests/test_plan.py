"""The plan (infersight.plan, the Plan page's and `infersight plan`'s functions): replicas, $/month,
$ per 1M output tokens and headroom per engine, checked against hand computations of fixture values
written here; `infersight plan` against a Prometheus stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from infersight import plan
from infersight.cli import main
from tests.test_ui_promapi import answer, serving

# unit (tests/conftest.py's MODULE_TIERS), but for the one test marked integration


def row(engine: str, output: float, ttft: float, itl: float, hourly: float | None, prompt: float | None = None
        ) -> dict:
    return {"engine": engine, "model": "m", "target": f"t-{engine}", "output_tokens_per_second": output,
            "input_tokens_per_second": 2 * output if prompt is None else prompt, "ttft_p99_seconds": ttft,
            "itl_p99_seconds": itl, "ttft_p50_seconds": ttft / 2, "itl_p50_seconds": itl / 2,
            "hourly_cost_dollars": hourly}


# Three instants 30 s apart. SLO: TTFT p99 <= 0.5 s, ITL p99 <= 0.05 s.
POINTS = [
    (1000.0, [row("vllm", 600, 0.2, 0.02, 1.5), row("nim", 900, 0.3, 0.03, 7.5)]),
    (1030.0, [row("vllm", 1200, 0.45, 0.04, 1.5), row("nim", 1800, 0.5, 0.05, 7.5)]),  # both met (at the bound)
    (1060.0, [row("vllm", 1500, 0.9, 0.04, 1.5), row("nim", 2400, 0.4, 0.08, 7.5)]),  # TTFT / ITL missed
]
TRAFFIC = plan.Traffic(requests_per_second=10, prompt_tokens=512, output_tokens=256)
SLO = plan.Objective(ttft_seconds=0.5, itl_seconds=0.05)


def test_replicas_and_cost_equal_the_hand_computation() -> None:
    nim, vllm = plan.plan(POINTS, TRAFFIC, SLO)
    # vLLM: best within the SLO 1200 tok/s -> 1200 / 256 = 4.6875 req/s a replica; 10 / 4.6875 = 2.13 -> 3
    assert (vllm.engine, vllm.goodput_tokens_per_second, vllm.goodput_requests_per_second) == ("vllm", 1200, 4.6875)
    assert vllm.replicas == 3
    assert vllm.monthly_cost_dollars == pytest.approx(3 * 1.5 * 730)  # $3,285
    assert vllm.cost_per_million_output_tokens_dollars == pytest.approx(4.5 / (10 * 256 * 3600) * 1e6)  # $0.488
    assert vllm.headroom == pytest.approx(3 * 4.6875 / 10 - 1)  # 0.40625
    # NIM: 1800 tok/s -> 7.03125 req/s; 10 / 7.03125 = 1.42 -> 2 replicas at $7.50/h
    assert (nim.goodput_requests_per_second, nim.replicas) == (7.03125, 2)
    assert nim.monthly_cost_dollars == pytest.approx(2 * 7.5 * 730)  # $10,950
    assert nim.cost_per_million_output_tokens_dollars == pytest.approx(15 / (10 * 256 * 3600) * 1e6)
    assert nim.headroom == pytest.approx(2 * 7.03125 / 10 - 1)
    assert (vllm.span_start, vllm.span_end, vllm.instants, vllm.instants_met) == (1000.0, 1060.0, 3, 2)
    # the asked 10 req/s is above one replica's highest measured load (1500 / 256, 2400 / 256 req/s)
    assert vllm.warnings == ["the asked 10 req/s is above the highest load measured on one replica (5.86 req/s): "
                             "the plan assumes replicas add capacity linearly"]
    assert nim.warnings == ["the asked 10 req/s is above the highest load measured on one replica (9.38 req/s): "
                            "the plan assumes replicas add capacity linearly"]


def test_a_traffic_within_the_measured_range_has_no_warning_and_one_replica() -> None:
    nim, vllm = plan.plan(POINTS, plan.Traffic(4, 512, 256), SLO)
    assert (vllm.replicas, nim.replicas) == (1, 1)  # 4 req/s <= 4.6875 and 7.03125
    assert vllm.headroom == pytest.approx(4.6875 / 4 - 1)
    assert vllm.warnings == nim.warnings == []


def test_the_p50_quantile_and_no_instant_within_the_slo() -> None:
    strict = plan.plan(POINTS, TRAFFIC, plan.Objective(0.1, 0.05))  # every TTFT p99 is over 0.1 s
    assert [(r.engine, r.replicas, r.monthly_cost_dollars, r.instants_met, r.warnings) for r in strict] == [
        ("nim", None, None, 0, ["no measured instant met the SLO: no plan"]),
        ("vllm", None, None, 0, ["no measured instant met the SLO: no plan"])]
    nim, vllm = plan.plan(POINTS, TRAFFIC, plan.Objective(0.2, 0.025, "p50"))  # p50 = half the p99 here
    # p50s (TTFT, ITL): vLLM (0.1, 0.01) (0.225, 0.02) (0.45, 0.02), NIM (0.15, 0.015) (0.25, 0.025) (0.2, 0.04):
    # only the first instant is within 0.2 s and 0.025 s for both
    assert (vllm.goodput_tokens_per_second, nim.goodput_tokens_per_second) == (600, 900)
    assert (vllm.instants_met, nim.instants_met) == (1, 1)


def test_a_far_token_mix_and_no_cost_are_said() -> None:
    points = [(0.0, [row("tgi", 1000, 0.1, 0.01, None, prompt=8000)])]
    (tgi,) = plan.plan(points, TRAFFIC, SLO)
    assert tgi.monthly_cost_dollars is None and tgi.replicas == 3  # 10 / (1000 / 256) = 2.56 -> 3
    assert tgi.warnings == [
        "the exporter reports no hourly cost: no $ figures",
        "the asked 10 req/s is above the highest load measured on one replica (3.91 req/s): the plan assumes "
        "replicas add capacity linearly",
        "the asked prompt:output mix (2) is far from the measured one (8): the goodput was measured on other requests"]


def test_inputs_that_cannot_plan() -> None:
    with pytest.raises(ValueError, match="traffic needs"):
        plan.Traffic(0, 512, 256)
    with pytest.raises(ValueError, match="quantile must be one of p99, p50"):
        plan.Objective(0.5, 0.05, "p90")


def test_the_table_says_what_the_plan_rests_on() -> None:
    assert plan.to_table(plan.plan(POINTS, TRAFFIC, SLO), TRAFFIC, SLO) == (
        "Traffic 10 req/s, 512 prompt + 256 output tokens; SLO TTFT p99 <= 0.5 s, ITL p99 <= 0.05 s\n"
        "engine  model  target  goodput req/s  replicas  $/h    $/month  $/1M output  headroom  data span  "
        "instants met\n"
        "nim     m      t-nim   7.03           2         $7.50  $10,950  $1.63        41%       1 min      2/3\n"
        "vllm    m      t-vllm  4.69           3         $1.50  $3,285   $0.49        41%       1 min      2/3\n"
        "warning: nim/m/t-nim: the asked 10 req/s is above the highest load measured on one replica (9.38 req/s): "
        "the plan assumes replicas add capacity linearly\n"
        "warning: vllm/m/t-vllm: the asked 10 req/s is above the highest load measured on one replica (5.86 req/s):"
        " the plan assumes replicas add capacity linearly\n")


@pytest.mark.integration
def test_infersight_plan_reads_prometheus_range_queries(capsys: pytest.CaptureFixture[str]) -> None:
    # Every range query answers the same series: 0.5 for every column at two instants 15 s apart, so
    # output 0.5 tok/s, TTFT and ITL p99 0.5 s (within 1 s), $0.50/h. One output token a request:
    # 0.5 req/s a replica; 2 req/s -> 4 replicas, 4 x $0.50 x 730 = $1,460 a month.
    now = time.time()
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"engine": "vllm", "model": "m", "target": "a"},
         "values": [[now - 15, "0.5"], [now, "0.5"]]}]}}
    with serving(answer(matrix)) as prometheus:
        code = main(["plan", "--prometheus-url", prometheus.url, "--rps", "2", "--prompt-tokens", "1",
                     "--output-tokens", "1", "--ttft", "1", "--itl", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["traffic"] == {"requests_per_second": 2.0, "prompt_tokens": 1, "output_tokens": 1}
    assert out["slo"] == {"ttft_seconds": 1.0, "itl_seconds": 1.0, "quantile": "p99"}
    (vllm,) = out["plans"]
    assert (vllm["engine"], vllm["replicas"], vllm["goodput_requests_per_second"]) == ("vllm", 4, 0.5)
    assert (vllm["hourly_cost_dollars"], vllm["monthly_cost_dollars"], vllm["headroom"]) == (0.5, 1460.0, 0.0)
    assert vllm["cost_per_million_output_tokens_dollars"] == pytest.approx(2.0 / (2 * 1 * 3600) * 1e6)
    assert (vllm["instants"], vllm["instants_met"]) == (2, 2)
    assert vllm["span_end"] - vllm["span_start"] == pytest.approx(15, abs=0.01)
