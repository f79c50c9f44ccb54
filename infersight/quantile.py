"""``histogram_quantile`` exactly as Prometheus computes it (promql/quantile.go, 2.x).

Used wherever infersight itself turns buckets into a percentile (``infersight compare``, the web
UI's embedded mode, the simulator's calibration), so a figure shown without Prometheus is the
figure Prometheus would show for the same buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """``buckets``: (upper bound, cumulative count) pairs, any order, +Inf included.

    Prometheus' rules: NaN without a +Inf bucket or with no observations; -Inf/+Inf for q < 0 or
    q > 1; non-monotonic counts are forced monotonic; a rank in the +Inf bucket returns the
    highest finite bound; the first bucket interpolates from 0 (unless its bound is <= 0).
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    bounds = [b for b, _ in ordered]
    counts = _monotonic([c for _, c in ordered])
    observations = counts[-1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    index = next(i for i, c in enumerate(counts) if c >= rank)
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end = (0.0, bounds[0]) if index == 0 else (bounds[index - 1], bounds[index])
    count = counts[index]
    if index > 0:
        count -= counts[index - 1]
        rank -= counts[index - 1]
    if count == 0:
        return math.nan  # q == 0 on an empty first bucket: 0/0 in Prometheus too
    return start + (end - start) * (rank / count)


def _monotonic(counts: list[float]) -> list[float]:
    out, highest = [], -math.inf
    for c in counts:
        highest = max(highest, c)
        out.append(highest)
    return out
