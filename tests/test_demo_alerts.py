"""The demo pages no one at the rules' real time scale: an hour of each demo engine, in virtual time.

A real-time demo run in a test lasts minutes, and the page alerts' windows are 5 minutes to 6
hours. The demo's engines are deterministic in their model's time (their seed is fixed, they
start from a warm start run in virtual time, and the real-time loop keeps the model's schedule:
``test_demo_steady`` checks that a real run is its virtual-time replay, to the token). So the
hour that follows a demo's start is this replay, and every SLO page condition of
``alerts/generated/slo-rules.yml`` can be evaluated on it at its own windows, every 5 s (the
demo's evaluation interval), as Prometheus would from its first scrape: a window longer than the
data holds all of it (the riskiest reading, early in a run: one slow request among the first
ten reads as a burn of 10). Prometheus' first scrape comes some seconds after an engine's warm
start ends (the demo starts the exporters, waits for them, then Prometheus), so every start from
0 to 60 s after it is evaluated. No page's condition is ever true, so none goes pending, whatever
its ``for``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
import yaml

from infersight import alerts
from infersight.simulator.model import EngineModel, FinishReason, Observer, Request
from infersight.simulator.profiles import PROFILES

pytestmark = pytest.mark.e2e  # a long run (an hour of three engines, about a minute of CPU)

MINUTES = 60
EVALUATION_SECONDS = 5
PROMETHEUS_STARTS = range(0, 61, 5)  # seconds after the warm start ends
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PAGE = re.compile(r'^slo:burn_rate:ratio_rate(\w+)\{slo="(\w+)"\} > ([\d.]+) and '
                  r'slo:burn_rate:ratio_rate(\w+)\{slo="\w+"\} > ([\d.]+)$')


def seconds(duration: str) -> int:
    return int(duration[:-1]) * UNITS[duration[-1]]


def page_conditions() -> list[tuple[str, int, float, int, float]]:
    """(slo, long window s, its threshold, short window s, its threshold) of every SLO page."""
    rules = yaml.safe_load(alerts.packaged(alerts.GENERATED_RULES).read_text(encoding="utf-8"))
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") and rule.get("labels", {}).get("severity") == "page":
                m = PAGE.match(rule["expr"].strip())
                if m:  # LLMSLOMissingData and the like are no burn
                    long_w, slo, long_t, short_w, short_t = m.groups()
                    out.append((slo, seconds(long_w), float(long_t), seconds(short_w), float(short_t)))
    return out


class Bins(Observer):
    """Good and bad events of each SLI, per second of model time since ``start``."""

    def __init__(self, start: float, ttft_threshold: float, itl_threshold: float):
        self.start = start
        self.ttft_threshold, self.itl_threshold = ttft_threshold, itl_threshold
        size = MINUTES * 60 + 1
        self.counts = {sli: ([0] * size, [0] * size) for sli in ("ttft", "itl", "availability")}

    def _add(self, sli: str, at: float | None, bad: bool) -> None:
        i = int((at or self.start) - self.start)
        if 0 <= i < len(self.counts[sli][0]):
            self.counts[sli][1 if bad else 0][i] += 1

    def on_first_token(self, request: Request, ttft: float) -> None:
        self._add("ttft", request.first_token, ttft > self.ttft_threshold)

    def on_token(self, request: Request, gap: float) -> None:
        self._add("itl", request.last_token, gap > self.itl_threshold)

    def on_finish(self, request: Request) -> None:
        if request.finish_reason is not FinishReason.ABORT:  # aborts count as neither
            self._add("availability", request.finished, request.finish_reason is FinishReason.ERROR)


def burn_rates(bins: Bins, objective: float, sli: str, window: int, first: int) -> Iterator[tuple[int, float]]:
    """(evaluation second, burn rate over the window ending there) for a Prometheus whose first
    scrape was at second ``first``: a window reaching before it holds the data since then."""
    good = list(itertools.accumulate(bins.counts[sli][0], initial=0))
    bad = list(itertools.accumulate(bins.counts[sli][1], initial=0))
    for t in range(first + EVALUATION_SECONDS * 2, MINUTES * 60 + 1, EVALUATION_SECONDS):
        lo = max(first, t - window)
        total = good[t] - good[lo] + bad[t] - bad[lo]
        yield t, ((bad[t] - bad[lo]) / total if total else 0.0) / (1 - objective)


@pytest.mark.parametrize("engine", ["vllm", "triton", "nim"])
def test_an_hour_of_the_demo_meets_no_page_condition(engine: str) -> None:
    profile = PROFILES[f"seed-{engine}"]
    spec = yaml.safe_load(alerts.packaged(alerts.SPEC).read_text(encoding="utf-8"))
    slos = {s["name"]: s for s in spec["slos"]}
    model = EngineModel(profile.performance, profile.workload, seed=0)  # the demo's seed (`simulate`'s default)
    now = 0.0
    while now < profile.warm_start_seconds:
        now = model.step(now)
    bins = Bins(now, slos["ttft"]["sli"]["latency"]["threshold_seconds"],
                slos["itl"]["sli"]["latency"]["threshold_seconds"])
    model.observers.append(bins)
    while now < bins.start + MINUTES * 60:
        now = model.step(now)

    conditions = page_conditions()
    assert {slo for slo, *_ in conditions} == {"ttft", "itl", "availability"}
    report = []
    met = []
    for slo, long_w, long_t, short_w, short_t in conditions:
        objective = slos[slo]["objective"]
        highest = [0.0, 0.0]
        for first in PROMETHEUS_STARTS:
            long_burn = dict(burn_rates(bins, objective, slo, long_w, first))
            short_burn = dict(burn_rates(bins, objective, slo, short_w, first))
            highest = [max(highest[0], *long_burn.values()), max(highest[1], *short_burn.values())]
            met += [(slo, long_w, short_w, first, t) for t in long_burn
                    if long_burn[t] > long_t and short_burn[t] > short_t]
        report.append(f"{slo}: {long_w // 60}m>{long_t:g} & {short_w // 60}m>{short_t:g}: highest burn "
                      f"{highest[0]:.2f} & {highest[1]:.2f}")
    totals = {sli: (sum(good), sum(bad)) for sli, (good, bad) in bins.counts.items()}
    print(f"\n{engine}: {MINUTES} min after a {profile.warm_start_seconds:.0f} s warm start, seed 0; "
          f"bad/all: " + ", ".join(f"{sli} {bad}/{good + bad} ({bad / (good + bad):.2%})"
                                   for sli, (good, bad) in totals.items()))
    print("\n".join(f"  {line}" for line in report))
    print(f"  page conditions met (slo, windows, Prometheus' first scrape, evaluation s): {met[:10] or 'none'}")
    assert met == []
