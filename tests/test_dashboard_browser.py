"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against `infersight ui`
reading three simulated engines through their exporters. Every page loads at its own URL, each
engine has one colour on every chart, the Cost page's $/h is what the exporters report, and the
developer toolbar is hidden. The Compare screenshot is kept in artifacts/."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from infersight.tools.screenshots import CHROMIUM_ARGS, PAGES
from tests.conftest import REPO
from tests.processes import free_port, infersight_command, require_binary, running

pytestmark = pytest.mark.e2e

ENGINES = (("vllm", "0.33"), ("triton", "vllm"), ("nim", "1.x"))
COLOURS = {"vllm": "#0072B2", "triton": "#E69F00", "nim": "#009E73"}  # written out: the palette's
# Every trace of every plotly chart on the page: (its engine, its colour).
TRACE_COLOURS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(div => div.data.map(
    t => [t.name.split(' ')[0], t.type === 'bar' ? t.marker.color : t.line.color]))"""


def wait_for_charts(page, expected: int) -> None:  # noqa: ANN001 (playwright's Page)
    """The first rates need two scrapes: reload until the page draws its charts (with a deadline)."""
    deadline = time.monotonic() + 90
    while page.locator(".js-plotly-plot .main-svg").count() < expected:
        assert time.monotonic() < deadline, f"{page.url}: fewer than {expected} charts"
        page.wait_for_timeout(1000)
        if page.locator(".js-plotly-plot").count() == 0:
            page.reload(wait_until="domcontentloaded")
    page.wait_for_timeout(500)  # plotly draws the legend after the chart element appears


def test_every_page_at_its_url_one_colour_per_engine_in_chromium(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = require_binary("chromium")
    cli = infersight_command()
    ui_port = free_port()
    with contextlib.ExitStack() as stack:
        exporters = []
        for engine, version in ENGINES:
            sim_port, exp_port = free_port(), free_port()
            stack.enter_context(running([*cli, "simulate", "--engine", engine, "--version", version, "--profile",
                                         "small", "--port", str(sim_port)], f"http://127.0.0.1:{sim_port}/health",
                                        log=tmp_path / f"sim-{engine}.log"))
            path = "/v1/metrics" if engine == "nim" else "/metrics"
            stack.enter_context(running([*cli, "exporter", "--engine", engine, "--listen", f"127.0.0.1:{exp_port}",
                                         "--target", f"{engine}=http://127.0.0.1:{sim_port}{path}",
                                         "--gpu-count", "1", "--gpu-hourly-dollars", "0.8"],
                                        f"http://127.0.0.1:{exp_port}/-/ready", log=tmp_path / f"exp-{engine}.log"))
            exporters.append(f"http://127.0.0.1:{exp_port}/metrics")
        env = {"INFERSIGHT_UI_EXPORTERS": ",".join(exporters), "INFERSIGHT_UI_REFRESH_SECONDS": "2",
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        stack.enter_context(running([*cli, "ui", "--port", str(ui_port)],
                                    f"http://127.0.0.1:{ui_port}/_stcore/health", log=tmp_path / "streamlit.log",
                                    env=env))
        base = f"http://127.0.0.1:{ui_port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1500})
                # / goes on to /compare: the default page has a URL of its own too
                page.goto(base + "/", wait_until="domcontentloaded", timeout=60000)
                wait_for_charts(page, 4)
                assert page.url == base + "/compare"
                os.makedirs(REPO / "artifacts", exist_ok=True)
                page.screenshot(path=str(REPO / "artifacts" / "dashboard-compare.png"))
                colours = {}
                headings = {}
                for path, heading, _ in PAGES:
                    page.goto(f"{base}/{path}", wait_until="domcontentloaded", timeout=60000)
                    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60000)
                    if path in ("compare", "live", "cost"):
                        wait_for_charts(page, 2)
                        colours[path] = sorted({tuple(trace) for trace in page.evaluate(TRACE_COLOURS)})
                    headings[path] = (page.url.split("?")[0], page.get_by_text("Page not found").count(),
                                      page.locator('[data-testid="stException"]').count())
                    if path == "cost":
                        # the grid's cells, as its accessible table has them (the grid itself is a canvas)
                        cells = page.locator('[data-testid="stDataFrame"]').first.locator('td[role="gridcell"]')
                        cells.first.wait_for(state="attached", timeout=30000)
                        cost_cells = cells.all_inner_texts()
                # Streamlit's developer toolbar ("Deploy") is hidden: the product's UI
                deploy = page.get_by_text("Deploy", exact=True).count()
            finally:
                browser.close()
    print(f"\npages (URL, 'Page not found', exceptions): {headings}\ntrace colours per page: {colours}\n"
          f"Cost grid's $/h cells: {[c for c in cost_cells if c.startswith('$')]}; 'Deploy' shown {deploy} times")
    assert headings == {path: (f"{base}/{path}", 0, 0) for path, _, _ in PAGES}
    assert colours == {path: sorted(COLOURS.items()) for path in ("compare", "live", "cost")}
    # the exporters' llm_hourly_cost_dollars: 1 GPU at $0.80
    assert [c for c in cost_cells if c.startswith("$0.8")] == ["$0.80"] * 3
    assert deploy == 0
