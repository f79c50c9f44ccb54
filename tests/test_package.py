"""infersight as a user installs it: a wheel and an sdist built from the checkout, the wheel installed
into fresh environments outside the checkout, once core-only (the sidecar) and once with [all].

The environments take their packages from the package index (pip's cache makes the second run
fast); nothing comes from the checkout's .venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.processes import free_port, require_binary, running, stop_group
from tests.test_demo_steady import parse_table

pytestmark = pytest.mark.e2e

HEAVY = {"pandas", "plotly", "streamlit", "pyarrow", "numpy", "starlette", "grafana-foundation-sdk",
         "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"}  # [otlp] is optional too
CAPTURE = REPO / "tests" / "fixtures" / "engines" / "vllm-0.33.0.metrics.txt"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("infersight-*.whl")
    return wheel


def venv(where: Path, requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
                   check=True, capture_output=True, timeout=900)
    return python


def installed(python: Path) -> set[str]:
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format", "freeze"], check=True,
                             capture_output=True, text=True).stdout
    return {line.split("==")[0].lower() for line in listing.splitlines()}


def test_wheel_holds_one_import_namespace_and_its_data(dist: Path) -> None:
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = wheel.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"infersight"}
    for data in ("infersight/py.typed", "infersight/alerts/slos.yaml", "infersight/alerts/generated/slo-rules.yml",
                 "infersight/alerts/rules/llm-alerts.yml", "infersight/alerts/alertmanager.yml",
                 "infersight/grafana/dashboards/infersight-slos.json", "infersight/exporter/gpu_prices.yaml",
                 "infersight/dashboard/app.py", "infersight/exporter/adapters/vllm.py"):
        assert data in names, data
    (sdist,) = dist.glob("infersight-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "exporter/schema.py", "alerts/slos.yaml", "dashboard/app.py"} <= members


def test_core_install_is_the_sidecar_alone(dist: Path, tmp_path: Path) -> None:
    python = venv(tmp_path / "core", str(wheel_of(dist)))
    assert installed(python) & HEAVY == set()
    bin_dir = python.parent
    engine_port, exporter_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": ""}
    with running([str(bin_dir / "infersight"), "replay", str(CAPTURE), "--listen", f"127.0.0.1:{engine_port}"],
                 f"http://127.0.0.1:{engine_port}/metrics", log=tmp_path / "replay.log", env=env), \
         running([str(bin_dir / "infersight"), "exporter", "--engine", "vllm", "--listen",
                  f"127.0.0.1:{exporter_port}", "--target", f"engine=http://127.0.0.1:{engine_port}/metrics"],
                 f"http://127.0.0.1:{exporter_port}/-/ready", log=tmp_path / "exporter.log", env=env, cwd=tmp_path):
        body = httpx.get(f"http://127.0.0.1:{exporter_port}/metrics", timeout=10).text
    assert 'llm_exporter_target_up{engine="vllm",target="engine"} 1.0' in body.splitlines()
    # What the running sidecar imported: nothing of the UI, the simulator or the tools.
    probe = ("import sys, infersight.cli, infersight.exporter.server, infersight.exporter.scraper; "
             "print(sorted(m.split('.')[0] if not m.startswith('infersight') else m for m in sys.modules "
             "if m.startswith(('pandas', 'plotly', 'streamlit', 'starlette', 'infersight.simulator', "
             "'infersight.dashboard', 'infersight.tools'))))")
    assert subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout == "[]\n"


def test_all_extras_run_the_demo_rules_and_ui_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    require_binary("prometheus")
    python = venv(tmp_path / "all", f"{wheel_of(dist)}[all]")
    assert {"pandas", "plotly", "streamlit", "starlette"} <= installed(python)
    infersight = str(python.parent / "infersight")
    env = {**os.environ, "PYTHONPATH": ""}
    work = tmp_path / "elsewhere"
    work.mkdir()

    rules = subprocess.run([infersight, "rules", "--check"], cwd=work, env=env, capture_output=True, text=True)
    assert (rules.returncode, rules.stdout) == (0, "")

    base = free_port()  # a free region above an ephemeral port; the demo checks each port it needs
    # 55 s: the demo prints its first comparison 45 s after its processes answer.
    demo = subprocess.Popen([infersight, "demo", "--duration", "55", "--base-port", str(base % 20000 + 20000)],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = demo.communicate(timeout=300)
    finally:
        stop_group(demo)  # and whatever it started, should it have hung
    assert demo.returncode == 0, stderr[-3000:]
    _, table = stdout.split("--- comparison over the last", 1)
    rows = parse_table([line for line in table.splitlines()[1:] if line.strip()])
    assert sorted(rows) == ["nim", "triton", "vllm"] and all(float(r["out tok/s"]) > 0 for r in rows.values()), stdout

    app_test = textwrap.dedent("""
        from importlib import resources
        from streamlit.testing.v1 import AppTest
        app = str(resources.files("infersight.dashboard").joinpath("app.py"))
        for page in ("app_pages/compare.py", "app_pages/cost.py", "app_pages/slos.py"):
            at = AppTest.from_file(app, default_timeout=60)
            at.run()
            if page != "app_pages/compare.py":
                at.switch_page(page)
                at.run()
            assert not at.exception, (page, at.exception)
            print(page, "ok")
    """)
    ui = subprocess.run([str(python), "-c", app_test], cwd=work, capture_output=True, text=True, timeout=300,
                        env={**env, "INFERSIGHT_UI_EXPORTERS": "http://127.0.0.1:9/metrics"})
    assert (ui.returncode, ui.stdout) == (0, "app_pages/compare.py ok\napp_pages/cost.py ok\napp_pages/slos.py ok\n"), \
        ui.stderr[-3000:]
