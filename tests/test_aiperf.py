"""NVIDIA AIPerf drives each simulated engine through its OpenAI API; the figures infersight reads
from the engine's /metrics agree with what AIPerf measured from the client side.

AIPerf comes from .venv-aiperf (scripts/setup.sh). The longer run is `infersight validate --aiperf`.
"""

from __future__ import annotations

import pytest

from infersight.tools.validate import ENGINES, TOLERANCE, aiperf_binary, tokenizer_dir, validate_engine
from infersight.simulator.formats import TTFT_V0

pytestmark = pytest.mark.e2e

CLIENT_ALLOWANCE_SECONDS = 0.005  # AIPerf's own share of its TTFT on loopback (see below)
# Both sides measure the same requests, so the count sets no sampling error between them; 100 give
# 9,900 inter-token gaps and 100 TTFTs, whose p99 lies in one bucket (the bound below allows for
# it). The run is wall time (requests of 100 tokens, 4 at a time: ~45 s), not CPU.
REQUESTS = 100


def test_aiperf_is_installed_with_an_offline_tokenizer() -> None:
    assert aiperf_binary().name == "aiperf"
    assert (tokenizer_dir() / "tokenizer.json").is_file()


@pytest.mark.parametrize(("engine", "version"), ENGINES, ids=[f"{e}-{v}" for e, v in ENGINES])
def test_engine_side_figures_agree_with_aiperf(engine: str, version: str, tmp_path) -> None:
    result = validate_engine(engine, version, requests=REQUESTS, concurrency=4, workdir=tmp_path)
    assert result.requests == REQUESTS
    # Every token AIPerf counted (from `usage`) went through the engine's counter; the engine also
    # finished the tail of AIPerf's warm-up requests inside the window (at most 4 x 100 tokens).
    assert result.aiperf_tokens == REQUESTS * 100
    assert 0 <= result.engine_tokens - result.aiperf_tokens <= 400
    # ITL p50 and throughput within the 10% of AIPerf's.
    for column in ("itl_p50_seconds", "output_tokens_per_second"):
        ours, theirs = result.infersight[column], result.aiperf[column]
        assert ours == pytest.approx(theirs, rel=TOLERANCE), (column, ours, theirs, result.exact[column])
    # TTFT p50: the client's clock also holds its own request sending and the event-loop turn that
    # reads the first chunk, 2-5 ms of a 40 ms TTFT on this 2-core VM (measured: the engine's exact
    # p50 6-10% below AIPerf's), so the engine may be up to 5 ms lower beyond the 10%. The bug this
    # check found (Nagle: every TTFT under 43 ms read as 43) put it 10-14 ms lower.
    ours, theirs = result.infersight["ttft_p50_seconds"], result.aiperf["ttft_p50_seconds"]
    client = theirs - result.exact["ttft_p50_seconds"]  # AIPerf's TTFT less the engine's exact one
    print(f"\n{engine} {version}: TTFT p50 AIPerf {theirs * 1e3:.1f} ms, engine exact "
          f"{result.exact['ttft_p50_seconds'] * 1e3:.1f} ms, buckets {ours * 1e3:.1f} ms; the client's share "
          f"{client * 1e3:.1f} ms ({client / theirs:.1%}; allowance {CLIENT_ALLOWANCE_SECONDS * 1e3:.0f} ms + 10%)")
    assert theirs * (1 - TOLERANCE) - CLIENT_ALLOWANCE_SECONDS <= ours <= theirs * (1 + TOLERANCE), (
        ours, theirs, result.exact)
    # TTFT p99 sits in the tail bucket, where histogram_quantile can only interpolate: 10% plus half
    # the width of the bucket it falls in (measured: bucket p99 3-20% above the exact one in the
    # 60-80 ms bucket). `infersight validate --aiperf` reports the plain 10% verdict for all four.
    ours, theirs = result.infersight["ttft_p99_seconds"], result.aiperf["ttft_p99_seconds"]
    lower = max((b for b in TTFT_V0 if b < ours), default=0.0)
    upper = min(b for b in TTFT_V0 if b >= ours)
    assert abs(ours - theirs) <= TOLERANCE * theirs + (upper - lower) / 2, (ours, theirs, result.exact)
