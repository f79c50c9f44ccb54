"""The exporter's own endpoint behind TLS and basic auth (exporter-toolkit web config), with a
real TLS client; and what a bad web config says."""

from __future__ import annotations

import base64
import logging
import ssl
import subprocess
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.engine_server import EngineServer
from tests.harness import running_exporter, series
from tests.processes import infersight_command, require_binary

PASSWORD = "correct horse battery staple"
PAYLOAD = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 2\n'


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def web_config(tmp_path: Path, certificate) -> Path:
    cert, key = certificate
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                      f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return config


def test_tls_and_basic_auth_protect_metrics(web_config: Path, certificate, caplog) -> None:
    cert, _ = certificate
    engine = EngineServer()
    engine.serve("/m", PAYLOAD)
    try:
        with caplog.at_level(logging.DEBUG), running_exporter(
                engine="vllm", targets=[f"a={engine.url('/m')}"], web_config_file=web_config) as url:
            assert url.startswith("https://")
            tls = ssl.create_default_context(cafile=str(cert))
            ok = httpx.get(url + "/metrics", auth=("prometheus", PASSWORD), verify=tls, timeout=30)
            again = httpx.get(url + "/metrics", auth=("prometheus", PASSWORD), verify=tls, timeout=30)
            wrong = httpx.get(url + "/metrics", auth=("prometheus", "nope"), verify=tls, timeout=30)
            nobody = httpx.get(url + "/metrics", auth=("mallory", PASSWORD), verify=tls, timeout=30)
            anonymous = httpx.get(url + "/metrics", verify=tls, timeout=30)
            probe = httpx.get(url + "/-/ready", verify=tls, timeout=30)
            with pytest.raises(httpx.TransportError):
                httpx.get(url.replace("https://", "http://") + "/metrics", timeout=5)
    finally:
        engine.close()
    assert (ok.status_code, again.status_code) == (200, 200)
    assert 'llm_requests_running{engine="vllm",model="m",target="a"} 2.0' in series(ok.text, "a")
    for refused in (wrong, nobody, anonymous):
        assert (refused.status_code, refused.text) == (401, "Unauthorized\n")
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="infersight"'
    assert (probe.status_code, probe.text) == (200, "Ready\n")  # probes need no credentials
    # Neither the password nor the Authorization header that carries it (base64 of user:password).
    header = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    assert caplog.text != "" and PASSWORD not in caplog.text and header not in caplog.text


@pytest.mark.parametrize(("body", "problem"), [
    ("basic_auth_users: {prometheus: plaintext-password}",
     "basic_auth_users: prometheus: not a bcrypt hash (e.g. htpasswd -nBC 10 \"\" | tr -d ':\\n')"),
    ("tls_server_config: {cert_file: missing.crt, key_file: missing.key}",
     "tls_server_config: cannot load certificate or key: [Errno 2] No such file or directory"),
    ("tls_server_config: {cert_file: a, key_file: b, min_version: SSL3}",
     "tls_server_config.min_version: Input should be 'TLS10', 'TLS11', 'TLS12' or 'TLS13'"),
    ("basic_auth: {}", "basic_auth: Extra inputs are not permitted"),
])
def test_a_bad_web_config_is_reported_by_check_config(tmp_path: Path, body: str, problem: str) -> None:
    config = tmp_path / "web.yml"
    config.write_text(body + "\n")
    result = subprocess.run([*infersight_command(), "exporter", "--check-config", "--target", "http://a:1/metrics",
                             "--web.config.file", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    expected = f"error: web_config_file: {config}: {problem}"
    assert result.stderr == expected + "\n"
    assert "plaintext-password" not in result.stderr


def test_check_config_describes_a_good_web_config(web_config: Path) -> None:
    result = subprocess.run([*infersight_command(), "exporter", "--check-config", "--target", "x=http://a:1/metrics",
                             "--web.config.file", str(web_config)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"ok: web config {web_config} tls=yes basic_auth_users=1",
        "ok: target x engine=auto url=http://a:1/metrics gpu=none auth=no"]
