"""The exporter's endpoint over TLS with client certificates (exporter-toolkit's client_auth_type),
served by uvicorn with the SSLContext exporter/webconfig.py builds; real TLS clients."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.engine_server import EngineServer
from tests.harness import running_exporter, series
from tests.processes import require_binary

pytestmark = pytest.mark.integration

PAYLOAD = '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 2\n'


def _openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA; and
    a client certificate from another, unknown CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ca}",
                 "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.crt"))
    for name, ca, extension in (("server", "ca", "subjectAltName=IP:127.0.0.1"),
                                ("client", "ca", "extendedKeyUsage=clientAuth"),
                                ("stranger", "other-ca", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"))
        (d / f"{name}.ext").write_text(extension + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{ca}.crt"), "-CAkey",
                 str(d / f"{ca}.key"), "-CAcreateserial", "-days", "1", "-extfile", str(d / f"{name}.ext"),
                 "-out", str(d / f"{name}.crt"))
    return d


def _client(pki: Path, cert: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        context.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return httpx.Client(verify=context, timeout=30)


@pytest.mark.parametrize(("client_auth_type", "answered"), [
    ("RequireAndVerifyClientCert", {"client": True, "stranger": False, None: False}),
    ("VerifyClientCertIfGiven", {"client": True, "stranger": False, None: True}),
    ("NoClientCert", {"client": True, "stranger": True, None: True}),
])
def test_client_certificates(pki: Path, tmp_path: Path, client_auth_type: str, answered: dict) -> None:
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
                      f"  client_ca_file: {pki / 'ca.crt'}\n  client_auth_type: {client_auth_type}\n")
    engine = EngineServer()
    engine.serve("/m", PAYLOAD)
    results = {}
    try:
        with running_exporter(engine="vllm", targets=[f"a={engine.url('/m')}"], web_config_file=config) as url:
            for cert in answered:
                with _client(pki, cert) as client:
                    try:
                        response = client.get(url + "/metrics")
                    except httpx.TransportError:  # the handshake (or, with TLS 1.3, the first read) fails
                        results[cert] = False
                    else:
                        assert 'llm_requests_running{engine="vllm",model="m",target="a"} 2.0' in series(
                            response.text, "a")
                        results[cert] = response.status_code == 200
    finally:
        engine.close()
    assert results == answered


def test_tls_1_2_is_refused_where_1_3_is_the_minimum(pki: Path, tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text(f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
                      "  min_version: TLS13\n")
    engine = EngineServer()
    engine.serve("/m", PAYLOAD)
    try:
        with running_exporter(engine="vllm", targets=[f"a={engine.url('/m')}"], web_config_file=config) as url:
            old = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            old.maximum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises(httpx.ConnectError):
                httpx.get(url + "/-/healthy", verify=old, timeout=30)
            with _client(pki, None) as client:
                response = client.get(url + "/-/healthy")
                version = response.extensions["network_stream"].get_extra_info("ssl_object").version()
    finally:
        engine.close()
    assert (response.status_code, response.text, version) == (200, "Healthy\n", "TLSv1.3")
