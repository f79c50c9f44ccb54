"""Run the real exporter HTTP server in-process and read what it serves."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infersight.exporter.server import Exporter, make_server
from infersight.exporter.settings import load_settings


@contextmanager
def running_exporter(**flags: Any) -> Iterator[str]:
    """The exporter serving on an ephemeral 127.0.0.1 port; yields its base URL."""
    exporter = Exporter(load_settings(flags))
    server = make_server(exporter, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if exporter.ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()


def scrape(base_url: str, **headers: str) -> str:
    response = httpx.get(base_url + "/metrics", headers=headers, timeout=60)
    response.raise_for_status()
    return response.text


def series(text: str, target: str | None = None, *, with_duration: bool = False) -> list[str]:
    """Sorted 'name{labels} value' lines of the llm_ series (of one target), for exact comparison."""
    lines = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.startswith("llm_") or (target is not None and s.labels.get("target") != target):
                continue
            if s.name == "llm_exporter_target_scrape_duration_seconds" and not with_duration:
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            value = "NaN" if math.isnan(s.value) else repr(float(s.value))
            lines.append(f"{s.name}{{{labels}}} {value}")
    return sorted(lines)


def failure_series(engine: str, target: str, reason: str, count: int = 1) -> list[str]:
    """Exactly what a failed target shows: up 0 and its error counters, nothing else."""
    from infersight.exporter.schema import ScrapeErrorReason

    lines = [f'llm_exporter_target_up{{engine="{engine}",target="{target}"}} 0.0',
             f'llm_exporter_dropped_series_total{{engine="{engine}",target="{target}"}} 0.0']
    for r in ScrapeErrorReason:
        n = float(count if r.value == reason else 0)
        lines.append(f'llm_exporter_scrape_errors_total{{engine="{engine}",reason="{r.value}",target="{target}"}} {n!r}')
    return sorted(lines)
