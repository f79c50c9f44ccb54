"""Configuration: flags > env > YAML > defaults, exact error locations, secrets never echoed."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from infersight.exporter.settings import ConfigError, load_settings
from tests.engine_server import EngineServer
from tests.harness import running_exporter, scrape
from tests.processes import infersight_command

SECRET = "s3cr3t-t0ken-value"


def check_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFERSIGHT_")}
    return subprocess.run([*infersight_command(), "exporter", "--check-config", *args], capture_output=True,
                          text=True, env={**clean, **(env or {})}, timeout=60)


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text("""\
engine: vllm
listen: 127.0.0.1:9400
targets:
  - http://vllm-0:8000/metrics
  - name: nim-a
    url: http://nim:8000/v1/metrics
    engine: nim
    gpu: {source: dcgm, dcgm_url: "http://dcgm:9400/metrics"}
cost: {gpu_type: A100-80GB, gpu_count: 2}
""")
    result = check_config("--config", str(config))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "ok: target vllm-0:8000 engine=vllm url=http://vllm-0:8000/metrics gpu=none auth=no\n"
        "ok: target nim-a engine=nim url=http://nim:8000/v1/metrics gpu=dcgm auth=no\n")


def test_check_config_prints_every_problem_with_its_location(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text("""\
engine: vllm
listen: "9400"
scrape_timeout_seconds: -1
targets:
  - url: not-a-url
  - url: http://ok:8000/metrics
    urll: typo
    gpu: {source: dcgm}
cost: {gpu_type: Z100}
""")
    result = check_config("--config", str(config))
    assert result.returncode == 2  # configuration errors exit 2, as argparse's usage errors (was 1)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {config}: targets.0.url: Input should be a valid URL, relative URL without a base",
        f"error: {config}: targets.1.gpu: gpu.source=dcgm needs gpu.dcgm_url",
        f"error: {config}: targets.1.urll: Extra inputs are not permitted",
        f"error: {config}: listen: expected HOST:PORT, e.g. 0.0.0.0:9400",
        f"error: {config}: scrape_timeout_seconds: must be a finite number > 0",
        f"error: {config}: cost: unknown gpu_type 'Z100': give gpu_hourly_dollars or one of A100-40GB, A100-80GB, "
        "H100-80GB-PCIE, H100-80GB-SXM, H200-141GB, L4-24GB, L40S-48GB",
    ]


def test_check_config_reports_yaml_syntax_errors_with_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text("targets:\n  - url: [unclosed\n")
    result = check_config("--config", str(config))
    assert (result.returncode, result.stderr) == (
        2, f"error: {config}:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'\n")


def test_a_missing_target_is_an_error() -> None:
    result = check_config()
    assert (result.returncode, result.stderr) == (2, "error: targets: Field required\n")


def test_precedence_flags_over_env_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text("listen: 127.0.0.1:1111\nscrape_timeout_seconds: 3\nlog_level: debug\n"
                      "targets: [http://from-yaml:8000/metrics]\ncost: {gpu_count: 4, gpu_hourly_dollars: 2.5}\n")
    monkeypatch.setenv("INFERSIGHT_LISTEN", "127.0.0.1:2222")
    monkeypatch.setenv("INFERSIGHT_SCRAPE_TIMEOUT_SECONDS", "4")
    monkeypatch.setenv("INFERSIGHT_COST__GPU_COUNT", "8")
    settings = load_settings({"listen": "127.0.0.1:3333"}, config)
    assert settings.listen == "127.0.0.1:3333"  # flag
    assert settings.scrape_timeout_seconds == 4  # env over YAML
    assert settings.log_level == "debug"  # YAML over default
    assert (settings.cost.gpu_count, settings.cost.gpu_hourly_dollars) == (8, 2.5)  # nested keys merge
    assert [t.label for t in settings.targets] == ["from-yaml:8000"]


def test_targets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERSIGHT_TARGETS", '["a=http://a:8000/metrics", {"url": "http://b:8002/metrics"}]')
    assert [(t.label, str(t.url)) for t in load_settings({}).targets] == [
        ("a", "http://a:8000/metrics"), ("b:8002", "http://b:8002/metrics")]


def test_duplicate_target_names_are_refused() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"targets": ["http://a:1/metrics", "http://a:1/metrics"]})
    assert error.value.problems == ["(top level): target names must be unique; repeated: a:1 (set name=)"]


def test_secrets_never_appear_in_errors_output_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A misconfiguration next to an inline secret: the error names the location, not the value.
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    result = check_config("--target", "http://a:8000/metrics", "--bearer-token-file", str(token_file),
                          env={"INFERSIGHT_AUTH__BEARER_TOKEN": SECRET})
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    assert result.stderr == "error: auth: give only one of bearer_token, bearer_token_file and basic_auth\n"

    # The token reaches the engine as a header and nowhere else: not the exposition, not the logs.
    engine = EngineServer()
    engine.serve("/ok", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 1\n")
    engine.serve("/denied", mode="status", status=401)
    try:
        with caplog.at_level(logging.DEBUG), running_exporter(
                engine="vllm", auth={"bearer_token_file": token_file},
                targets=[f"ok={engine.url('/ok')}", f"denied={engine.url('/denied')}"]) as url:
            text = scrape(url)
    finally:
        engine.close()
    assert engine.behaviours["/ok"].requests[0]["Authorization"] == f"Bearer {SECRET}"
    assert engine.behaviours["/denied"].requests[0]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in text
    assert SECRET not in caplog.text
    assert "target down engine=vllm target=denied reason=http_status detail='HTTP 401'" in caplog.text


def test_a_urls_userinfo_is_the_targets_basic_auth_and_is_never_echoed() -> None:
    result = check_config("--target", "http://alice:secret@vllm-0:8000/metrics")
    assert (result.returncode, result.stderr, result.stdout) == (
        0, "", "ok: target vllm-0:8000 engine=auto url=http://vllm-0:8000/metrics gpu=none auth=yes\n")
    settings = load_settings({"targets": ["http://alice:p%40ss@vllm-0:8000/metrics"]})
    [target] = settings.targets
    basic = settings.resolved(target).auth.basic_auth
    assert basic is not None and basic.password is not None
    assert (str(target.url), target.label, basic.username, basic.password.get_secret_value()) == (
        "http://vllm-0:8000/metrics", "vllm-0:8000", "alice", "p@ss")


def test_a_urls_userinfo_beside_other_auth_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"  # a readable file: an unreadable one is its own error (test_config_errors)
    token.write_text("t0ken\n")
    top = check_config("--target", "http://alice:secret@a:8000/metrics", "--bearer-token-file", str(token))
    assert (top.returncode, top.stdout, top.stderr) == (
        2, "", "error: (top level): target a:8000: the URL holds user:password and auth is configured too "
               "(top-level auth): give one (the URL's user:password is this target's basic auth)\n")
    config = tmp_path / "exporter.yaml"
    config.write_text("targets:\n"
                      "  - url: http://alice:secret@a:8000/metrics\n"
                      f"    auth: {{bearer_token_file: {token}}}\n")
    own = check_config("--config", str(config))
    assert (own.returncode, own.stdout, own.stderr) == (
        2, "", f"error: {config}: targets.0: the URL holds user:password and auth is given too: give one "
               "(the URL's user:password is this target's basic auth)\n")


def test_query_values_are_hidden_by_check_config() -> None:
    result = check_config("--target", "q=http://a:8000/metrics?token=qs-secret-value&format")
    assert (result.returncode, result.stderr, result.stdout) == (
        0, "", "ok: target q engine=auto url=http://a:8000/metrics?token=***&*** gpu=none auth=no\n")


def test_basic_auth_from_a_password_file(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pa:ss\n")
    engine = EngineServer()
    engine.serve("/m", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 1\n")
    try:
        with running_exporter(engine="vllm", targets=[engine.url("/m")],
                              auth={"basic_auth": {"username": "infersight", "password_file": password}}) as url:
            scrape(url)
    finally:
        engine.close()
    assert engine.behaviours["/m"].requests[0]["Authorization"] == "Basic aW5mZXJzaWdodDpwYTpzcw=="


def test_the_example_configuration_is_valid() -> None:
    from tests.conftest import REPO

    result = check_config("--config", str(REPO / "examples" / "exporter.yaml"))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "ok: target vllm engine=vllm url=http://127.0.0.1:18000/metrics gpu=none auth=no",
        "ok: target triton engine=triton url=http://127.0.0.1:18002/metrics gpu=engine auth=no",
        "ok: target nim engine=nim url=http://127.0.0.1:18003/v1/metrics gpu=none auth=no",
    ]
