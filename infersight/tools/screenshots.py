"""Screenshots of every page of the web UI, for the README:

    python -m infersight.tools.screenshots [--out docs/screenshots] [--warmup 360]

Runs ``infersight demo`` (three simulated engines, their exporters, Prometheus and Alertmanager
when installed, the UI), lets it measure for ``--warmup`` seconds, then opens each page at its
URL in headless Chromium (Debian's, driven by Playwright) and writes ``<page>.png``. Needs the
ui and test extras and ``chromium`` (scripts/setup.sh installs them)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from infersight.tools.demo import HOST, Demo, port_free

# (URL path, the page's heading, whether it draws charts once the data is in)
PAGES = (("compare", "Compare engines", True), ("live", "Live", True), ("cost", "Cost per token", True),
         ("slos", "SLOs", False), ("plan", "Plan", True))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The Plan page's inputs, in its URL: a traffic above one replica's, an SLO the demo's engines meet
SCREENSHOT_QUERY = {"plan": "?rps=20&prompt=512&output=256&ttft=1&itl=0.2&quantile=p99"}
VIEWPORT = {"width": 1440, "height": 1000}  # one screen, device scale 1: each PNG well under 300 KB


def capture(ui_url: str, out: Path, chromium: str, timeout: float = 120.0) -> list[Path]:
    """Open every page at its URL and write its screenshot; waits (with a deadline) for the heading
    and, where the page has charts, for plotly to have drawn them."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            for path, heading, charts in PAGES:
                deadline = time.monotonic() + timeout
                page.goto(f"{ui_url}/{path}{SCREENSHOT_QUERY.get(path, '')}", wait_until="domcontentloaded")
                page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=timeout * 1000)
                while charts and page.locator(".js-plotly-plot .main-svg").count() == 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"/{path}: no chart within {timeout:g} s")
                    page.wait_for_timeout(500)
                # Streamlit's "running" indicator gone, then a moment for plotly's last layout pass.
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout * 1000)
                page.wait_for_timeout(1500)
                if page.get_by_text("Page not found").count():
                    raise RuntimeError(f"/{path}: Page not found")
                target = out / f"{path}.png"
                page.screenshot(path=str(target))
                written.append(target)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infersight.tools.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--warmup", type=float, default=360.0,
                        help="seconds the demo measures first (default 360: the 5-min comparison window filled)")
    parser.add_argument("--base-port", type=int, default=18000, help="the demo's ports start here (default 18000)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("screenshots: chromium is not installed (bash scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    demo = Demo(args.base_port, prometheus=True, ui=True)
    if not port_free(demo.ui_port):
        print(f"screenshots: port {demo.ui_port} is taken; pick other ports with --base-port", file=sys.stderr)
        return 1
    try:
        demo.start()
        print(demo.describe(), flush=True)
        demo.loop(args.warmup)  # checks the children stay up while the history grows
        for path in capture(f"http://{HOST}:{demo.ui_port}", args.out, chromium):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
