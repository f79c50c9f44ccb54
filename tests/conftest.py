"""Shared test plumbing: where the fixtures live, golden-file updating, process cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the project with ../shared beside it; INFERSIGHT_SHARED overrides.
SHARED = Path(os.environ.get("INFERSIGHT_SHARED", REPO.parent / "shared")).resolve()
CAPTURES = SHARED / "fixtures" / "engines"
OWN_FIXTURES = REPO / "tests" / "fixtures" / "engines"
GOLDEN = REPO / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files from the current output (review the diff!)")


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not CAPTURES.is_dir():
        raise pytest.UsageError(
            f"the shared engine captures are missing at {CAPTURES}; clone the project with ../shared beside it "
            "or set INFERSIGHT_SHARED")
