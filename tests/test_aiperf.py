"""NVIDIA AIPerf drives each simulated engine through its OpenAI API; the figures infersight reads
from the engine's /metrics agree with what AIPerf measured from the client side.

AIPerf comes from .venv-aiperf (scripts/setup.sh). The longer run is `infersight validate --aiperf`.
"""

from __future__ import annotations

import pytest

from exporter.validate import ENGINES, FIGURES, TOLERANCE, aiperf_binary, tokenizer_dir, validate_engine

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
    # All four figures within the 10%: the engine's histograms (TTFT from arrival at the
    # server, through its buckets) against AIPerf's own clock on the client.
    for column, *_ in FIGURES:
        ours, theirs = result.infersight[column], result.aiperf[column]
        assert ours == pytest.approx(theirs, rel=TOLERANCE), (column, ours, theirs, result.exact[column])
