"""Which Accept-Encoding headers get a gzipped /metrics (RFC 9110, 12.5.3)."""

from __future__ import annotations

import pytest

from infersight.exporter.server import accepts_gzip

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("header", "gzip"), [
    (None, False),
    ("", False),
    ("gzip", True),  # Prometheus
    ("gzip, deflate", True),  # httpx, curl --compressed
    ("GZIP", True),
    ("x-gzip", True),
    ("deflate, gzip;q=1.0, *;q=0.5", True),  # Go's net/http and others
    ("gzip;q=0.001", True),
    ("gzip;q=0", False),
    ("gzip; q=0.0", False),
    ("gzip;q=0.000", False),
    ("gzip;Q=0", False),
    ("gzip;q=0, identity", False),
    ("gzip;q=0, *", False),  # gzip named: * does not cover it
    ("*", True),
    ("*;q=0", False),
    ("identity", False),
    ("deflate, br", False),
    ("gzipper", False),
    ("gzip;q=x", False),  # a malformed weight accepts nothing
    ("x-gzip;q=0, gzip", True),
])
def test_accepts_gzip(header: str | None, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip
