"""NVIDIA AIPerf drives each simulated engine through its OpenAI API; the figures infersight reads
from the engine's /metrics agree with what AIPerf measured from the client side.

AIPerf comes from .venv-aiperf (scripts/setup.sh). The longer run is `infersight validate --aiperf`.
"""

from __future__ import annotations

import pytest

from exporter.validate import ENGINES, TOLERANCE, aiperf_binary, tokenizer_dir, validate_engine

pytestmark = pytest.mark.e2e


def test_aiperf_is_installed_with_an_offline_tokenizer() -> None:
    assert aiperf_binary().name == "aiperf"
    assert (tokenizer_dir() / "tokenizer.json").is_file()


@pytest.mark.parametrize(("engine", "version"), ENGINES, ids=[f"{e}-{v}" for e, v in ENGINES])
def test_engine_side_figures_agree_with_aiperf(engine: str, version: str, tmp_path) -> None:
    result = validate_engine(engine, version, requests=200, concurrency=4, workdir=tmp_path)
    assert result.requests == 200
    # Every token AIPerf counted (from `usage`) went through the engine's counter; the engine also
    # finished the tail of AIPerf's warm-up requests inside the window (at most 4 x 100 tokens).
    assert result.aiperf_tokens == 200 * 100
    assert 0 <= result.engine_tokens - result.aiperf_tokens <= 400
    for column in ("itl_p50_seconds", "output_tokens_per_second"):
        ours, theirs = result.infersight[column], result.aiperf[column]
        assert ours == pytest.approx(theirs, rel=TOLERANCE), (column, ours, theirs)
    for column in ("ttft_p50_seconds", "ttft_p99_seconds"):
        # The client's TTFT holds the engine's plus the client's own request handling and HTTP.
        # On a 2-core CI machine shared with AIPerf's worker processes that is 5-10 ms of a 45 ms
        # TTFT (measured: engine p50 16-21% below AIPerf's in a fresh CI run, within 10% on a warm
        # machine), so here the engine's figure must not exceed the client's beyond bucket error
        # and must hold at least three quarters of it. `infersight validate --aiperf` reports
        # against the 10% for all four figures.
        ours, theirs = result.infersight[column], result.aiperf[column]
        assert theirs * 0.75 <= ours <= theirs * (1 + TOLERANCE), (column, ours, theirs)
