"""Shared test plumbing: where the fixtures live, golden-file updating, test tiers."""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the project with ../shared beside it; INFERSIGHT_SHARED overrides.
SHARED = Path(os.environ.get("INFERSIGHT_SHARED", REPO.parent / "shared")).resolve()
CAPTURES = SHARED / "fixtures" / "engines"
OWN_FIXTURES = REPO / "tests" / "fixtures" / "engines"
GOLDEN = REPO / "tests" / "golden"
# Property tests draw a few hundred examples in the everyday run (`--fast` stays under two minutes);
# INFERSIGHT_THOROUGH=1 draws the full counts (before a release, after changing a parser).
THOROUGH = os.environ.get("INFERSIGHT_THOROUGH") == "1"


def examples(thorough: int, everyday: int) -> int:
    """Hypothesis' max_examples for this run."""
    return thorough if THOROUGH else everyday


class _FoldersAreNotPackages(importlib.abc.MetaPathFinder):
    """From a checkout, the repository root is on sys.path and `exporter/` would import as a
    top-level `exporter`; an installed infersight has only `infersight.exporter`. Refuse the former
    so a test fails where a user's install would."""

    FOLDERS = frozenset({"exporter", "dashboard", "simulator", "alerts", "grafana"})

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.FOLDERS:
            raise ModuleNotFoundError(f"No module named {fullname!r} (it is infersight.{fullname})")
        return None


sys.meta_path.insert(0, _FoldersAreNotPackages())


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


# Test tiers (README, "Tests"): every test is exactly one of
#   unit         pure functions: no processes, no sockets
#   integration  local servers and infersight subprocesses, promtool, Helm through its library
#   e2e          real Prometheus/Alertmanager, Chromium, AIPerf, package builds, long runs
# `bash scripts/test.sh --fast` runs unit + integration; CI runs all three. A test module's tier is
# its own `pytestmark` or a test's own mark where it has one, else this table's.
TIERS = {"unit", "integration", "e2e"}
MODULE_TIERS = {
    "test_adapter_buckets": "unit", "test_architecture": "unit", "test_fuzz": "unit", "test_golden": "unit",
    "test_memory": "unit", "test_normalize": "unit", "test_parse": "unit", "test_program": "unit",
    "test_render": "unit", "test_schema": "unit", "test_simulator": "unit", "test_plan": "unit",
    "test_alerts": "integration", "test_config": "integration", "test_dashboard": "integration",
    "test_faults": "integration", "test_gpu_and_cost": "integration", "test_helm": "integration",
    "test_http_serve": "integration", "test_simulator_api": "integration", "test_web_security": "integration",
    "test_bench": "e2e", "test_compare": "unit", "test_http1": "integration",
    "test_grafana": "unit", "test_demo": "e2e", "test_aiperf": "e2e", "test_dashboard_browser": "e2e",
    "test_e2e_alerting": "e2e", "test_e2e_prometheus": "e2e", "test_package": "e2e",
}


# Modules that must not run beside each other on two cores: each holds a figure that needs the CPU.
# The steady demo asserts that its engines never stall (lost_seconds == 0); AIPerf's client-side TTFT
# grows under contention (two AIPerf runs at once: +50 ms at p50); the real vLLM must fill its KV cache
# within its load; the package test builds a wheel and pip-installs every extra (it stalled the demo's
# engines 1-3 s); the bench pins cores. They are marked `cpu_bound`: scripts/test.sh runs them one at
# a time in a pass of their own, beside the parallel pass of the rest.
CPU_BOUND = {f"tests/{name}.py" for name in (
    "test_demo_steady", "test_package", "test_aiperf", "test_real_vllm", "test_bench")}


# tryfirst: the tier and cpu_bound marks are set before `-m` selects by them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered, doubled = [], []
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if module in CPU_BOUND:
            item.add_marker(pytest.mark.cpu_bound)
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) > 1:
            doubled.append(item.nodeid)
        if tiers:
            continue
        tier = MODULE_TIERS.get(item.module.__name__.rsplit(".", 1)[-1]) if item.module else None
        if tier is None:
            untiered.append(item.nodeid)
        else:
            item.add_marker(tier)
    if doubled:  # a module's pytestmark and a test's own mark: give the module its tier in MODULE_TIERS
        raise pytest.UsageError("tests with more than one tier: " + ", ".join(doubled[:10]))
    if untiered:
        raise pytest.UsageError("tests without a tier (unit, integration or e2e; see tests/conftest.py): "
                                + ", ".join(untiered[:10]))


# What each e2e test measured (its printed figures), shown after the run, passed or not: pytest
# shows a passing test's output only with -s, and CI's log is where these figures are read. Works
# under xdist (a worker's report carries the captured output to the controller).
_MEASURED: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "e2e" in report.keywords and report.capstdout.strip():
        _MEASURED.append((report.nodeid, report.capstdout.strip()))


def pytest_terminal_summary(terminalreporter) -> None:
    if _MEASURED:
        terminalreporter.section("what the e2e tests measured")
        for nodeid, output in sorted(_MEASURED):
            terminalreporter.write_line(f"{nodeid}\n    " + output.replace("\n", "\n    "))
