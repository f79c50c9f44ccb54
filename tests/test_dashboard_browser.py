"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run`
reading three simulated engines through their exporters. The screenshot is kept in artifacts/."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from tests.conftest import REPO
from tests.processes import free_port, infersight_command, require_binary, running

pytestmark = pytest.mark.e2e

ENGINES = (("vllm", "0.33"), ("triton", "vllm"), ("nim", "1.x"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_compare_page_renders_all_three_engines_in_chromium(tmp_path) -> None:
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
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1500})
                page.goto(f"http://127.0.0.1:{ui_port}/", wait_until="domcontentloaded", timeout=60000)
                chart = page.locator(".js-plotly-plot").first
                # The first rates need two scrapes; the page reruns on the selector, so reload until then.
                for _ in range(20):
                    try:
                        chart.wait_for(timeout=3000)
                        break
                    except Exception:  # noqa: BLE001 (playwright's TimeoutError)
                        page.reload(wait_until="domcontentloaded")
                chart.wait_for(timeout=30000)
                # plotly draws the legend after the chart element appears: poll for the three engines.
                deadline = time.monotonic() + 30
                while not {"vllm", "triton", "nim"} <= set(labels := chart.inner_text().split()):
                    assert time.monotonic() < deadline, f"legend never showed the three engines: {labels}"
                    page.wait_for_timeout(200)
                os.makedirs(REPO / "artifacts", exist_ok=True)
                page.screenshot(path=str(REPO / "artifacts" / "dashboard-compare.png"))
                assert page.locator('[data-testid="stException"]').count() == 0
                assert page.get_by_text("Compare engines").count() == 1
            finally:
                browser.close()
    assert {"vllm", "triton", "nim"} <= set(labels)
