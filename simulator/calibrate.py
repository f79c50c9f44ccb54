"""Run a profile in virtual time and print what the pipeline would measure, beside the seed's figures.

``infersight simulate --profile seed-vllm --calibrate`` runs ten simulated minutes (after the
profile's warm start, as the real-time engine starts) in a few seconds. Quantiles are computed
from the engine format's own buckets with Prometheus' ``histogram_quantile``, as ``infersight
compare`` computes them, and exactly from the raw observations, so the bucket error is visible
too. A real-time engine steps the same model on the wall clock: its ``/control/truth`` over a
window is, to the token, a virtual-time run's of its profile and seed over the same stretch of
model time (``tests/test_demo_steady.py``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from infersight.quantile import histogram_quantile
from infersight.simulator.formats import ITL_V0, ITL_V1, TTFT_V0, TTFT_V1
from infersight.simulator.model import EngineModel, Observer, Request
from infersight.simulator.profiles import Profile
from infersight.simulator.signals import Recorder, Signal


class _Raw(Observer):
    def __init__(self) -> None:
        self.ttft: list[float] = []
        self.itl: list[float] = []

    def on_first_token(self, request: Request, ttft: float) -> None:
        self.ttft.append(ttft)

    def on_token(self, request: Request, gap: float) -> None:
        self.itl.append(gap)


@dataclass
class Calibration:
    figures: dict[str, float]
    exact: dict[str, float]


def _quantile(h, q: float) -> float:
    return histogram_quantile(q, [*zip(h.bounds, h.cumulative(), strict=True), (float("inf"), h.count)])


def calibrate(profile: Profile, seconds: float = 600.0, warmup: float | None = None, seed: int = 1,
              v0_buckets: bool = False) -> Calibration:
    """``warmup``: virtual seconds run before measuring; by default the profile's warm start (what
    a real-time engine of the profile runs before it listens), or 60 s without one."""
    if warmup is None:
        warmup = profile.warm_start_seconds or 60.0
    model = EngineModel(profile.performance, profile.workload, seed=seed)
    now, kv_area, gen_before = 0.0, 0.0, 0.0
    while now < warmup:
        now = model.step(now)
    recorder = Recorder(model)
    raw = _Raw()
    model.observers.append(raw)
    ttft = recorder.histogram(Signal.TTFT, TTFT_V0 if v0_buckets else TTFT_V1)
    itl = recorder.histogram(Signal.ITL, ITL_V0 if v0_buckets else ITL_V1)
    start = now
    gen_before = recorder.counters[Signal.GENERATION_TOKENS]
    while now < start + seconds:
        before, kv = now, model.kv_usage_ratio
        now = model.step(now)
        kv_area += kv * (now - before)
    elapsed = now - start
    figures = {
        "output_tokens_per_second": (recorder.counters[Signal.GENERATION_TOKENS] - gen_before) / elapsed,
        "ttft_p50_seconds": _quantile(ttft, 0.5),
        "ttft_p99_seconds": _quantile(ttft, 0.99),
        "itl_p50_seconds": _quantile(itl, 0.5),
        "kv_cache_usage_ratio": kv_area / elapsed,
        "gpu_utilization_ratio": recorder.gpu_utilization(),
        "preemptions_per_second": recorder.counters[Signal.PREEMPTIONS] / elapsed,
    }
    exact = {
        "ttft_p50_seconds": statistics.quantiles(raw.ttft, n=100)[49],
        "ttft_p99_seconds": statistics.quantiles(raw.ttft, n=100)[98],
        "itl_p50_seconds": statistics.median(raw.itl),
    }
    return Calibration(figures, exact)


def report(profile: Profile, result: Calibration) -> str:
    lines = [f"profile {profile.name}: {'figure':<28}{'pipeline':>12}{'exact':>12}{'seed':>12}{'diff':>9}"]
    for key, value in result.figures.items():
        expected = profile.expected.get(key)
        exact = result.exact.get(key)
        diff = f"{(value - expected) / expected:+.1%}" if expected else ""
        lines.append(f"{'':<{len(profile.name) + 10}}{key:<28}{value:>12.4g}"
                     f"{'' if exact is None else format(exact, '.4g'):>12}"
                     f"{'' if expected is None else format(expected, '.4g'):>12}{diff:>9}")
    return "\n".join(lines)
