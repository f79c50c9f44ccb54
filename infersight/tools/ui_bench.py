"""How long each page takes to render with 10 engines and 6 h of history at a 15 s step.

    python -m infersight.tools.ui_bench

The history is built from simulated engines in virtual time (10 targets, 1,440 scrapes each),
put in the UI's embedded history, and every page is rendered with Streamlit's AppTest; the
figures printed are the wall time of a page run (script and data): the first, with nothing
computed yet, and the median of the next two.
"""

from __future__ import annotations

import os
import statistics
import time
from importlib import resources
from pathlib import Path

from streamlit.testing.v1 import AppTest

from infersight.dashboard import data
from infersight.compare import parse_snapshot
from infersight.exporter.fetch import Payload
from infersight.exporter.render import render_text
from infersight.exporter.schema import Engine
from infersight.exporter.scraper import TargetScraper
from infersight.exporter.settings import load_settings

APP = str(Path(str(resources.files("infersight.dashboard").joinpath("app.py"))))
ENGINES = 10
HOURS = 6
STEP = 15.0


def normalized_exposition(text: str, engine: Engine, *, name: str) -> str:
    """What an exporter with one target serving ``text`` answers."""
    settings = load_settings({"targets": [{"name": name, "url": "http://engine:8000/metrics"}],
                              "engine": engine.value})
    scraper = TargetScraper(settings.resolved(settings.targets[0]), settings.max_body_bytes)
    normalized = scraper.ingest(Payload(text, openmetrics=False))
    return render_text([scraper.report(normalized, None, 0.0)], "bench")


def build_history(urls: tuple[str, ...]) -> int:
    from infersight.simulator.engine import SimulatedEngine
    from infersight.simulator.model import run_for
    from infersight.simulator.profiles import PROFILES

    kinds = [("vllm", "0.33", Engine.VLLM), ("triton", "vllm", Engine.TRITON), ("nim", "1.x", Engine.NIM)]
    sims = [(SimulatedEngine(*kinds[i % 3][:2], PROFILES["small"], seed=i), kinds[i % 3][2], f"engine-{i}")
            for i in range(ENGINES)]
    history = data.get_history(urls)
    end = time.time()
    steps = int(HOURS * 3600 / STEP)
    for n in range(steps):
        for sim, _, _ in sims:
            run_for(sim.model, 0.5, start=n * 0.5)  # a little traffic per step keeps the build quick
        texts = [normalized_exposition(sim.metrics_text().decode(), unified, name=name) for sim, unified, name in sims]
        history.add(parse_snapshot(texts, end - (steps - 1 - n) * STEP))
    return steps


def main() -> None:
    urls = tuple(f"http://127.0.0.1:9/e{i}" for i in range(ENGINES))
    started = time.perf_counter()
    steps = build_history(urls)
    print(f"history: {ENGINES} engines x {steps} scrapes ({HOURS} h at {STEP:g} s), built in "
          f"{time.perf_counter() - started:.0f} s")
    os.environ["INFERSIGHT_UI_EXPORTERS"] = ",".join(urls)
    os.environ["INFERSIGHT_UI_REFRESH_SECONDS"] = "86400"
    for page in (None, "live", "live-6h", "cost", "slos"):
        times = []
        data._POINTS.clear()  # the first render computes every point; the next ones reuse them
        for _ in range(3):
            at = AppTest.from_file(APP, default_timeout=120)
            if page == "live-6h":
                at.run()
            t0 = time.perf_counter()
            if page == "live-6h":
                at.switch_page("app_pages/live.py").run()
                t0 = time.perf_counter()
                at.selectbox[0].select("6 hours").run()  # the whole history, 120 points per series
            elif page:
                at.switch_page(f"app_pages/{page}.py").run()
            else:
                at.run()
            times.append(time.perf_counter() - t0)
            assert not at.exception, at.exception
        shown = sum(len(frame.value) for frame in at.dataframe) + len(at.get("plotly_chart"))
        print(f"{page or 'compare':<8} first render {times[0]:5.2f} s, then {statistics.median(times[1:]):5.2f} s; "
              f"{shown} table rows + charts shown, errors: {[e.value for e in at.error]}")


if __name__ == "__main__":
    main()
