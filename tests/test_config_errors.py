"""Configuration mistakes through the real CLI: each is one ``error: SETTING: why`` line on stderr
and exit code 2 (argparse's code for usage errors), never a traceback; ``--check-config`` catches
every one that can be known before serving. An address that cannot be bound is known only where
the exporter runs: it is the same one line when the exporter starts."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.processes import infersight_command, require_binary

pytestmark = pytest.mark.integration

TARGET = "http://127.0.0.1:1/metrics"


def exporter(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("INFERSIGHT_")}
    return subprocess.run([*infersight_command(), "exporter", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess, line: str) -> None:
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")


# --- the listening address ---------------------------------------------------------------------------

def test_a_port_in_use_is_one_line_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = exporter("--target", TARGET, "--listen", listen, timeout=30)
        assert_one_line(result, f"error: listen: {listen} is in use")
        # --check-config does not bind: it runs in CI, or beside the exporter that holds the port.
        check = exporter("--check-config", "--target", TARGET, "--listen", listen)
        assert (check.returncode, check.stderr) == (0, "")


@pytest.mark.parametrize(("listen", "problem"), [
    ("999.1.1.1:9400", "'999.1.1.1' is not an IP address or host name (expected HOST:PORT, e.g. 0.0.0.0:9400)"),
    ("foo bar:9400", "'foo bar' is not an IP address or host name (expected HOST:PORT, e.g. 0.0.0.0:9400)"),
    ("[nohost]:9400", "'[nohost]' is not an IP address or host name (expected HOST:PORT, e.g. 0.0.0.0:9400)"),
    ("1.2.3.4.5:9400", "'1.2.3.4.5' is not an IP address or host name (expected HOST:PORT, e.g. 0.0.0.0:9400)"),
    ("127.0.0.1:0", "expected HOST:PORT, e.g. 0.0.0.0:9400"),
    ("127.0.0.1:65536", "expected HOST:PORT, e.g. 0.0.0.0:9400"),
])
def test_a_malformed_listen_host_is_caught_by_check_config(listen: str, problem: str) -> None:
    assert_one_line(exporter("--check-config", "--target", TARGET, "--listen", listen), f"error: listen: {problem}")
    assert_one_line(exporter("--target", TARGET, "--listen", listen, timeout=30), f"error: listen: {problem}")


@pytest.mark.parametrize("listen", ["0.0.0.0:9400", ":9400", "[::]:9400", "[::1]:9400", "localhost:9400",
                                    "exporter-0.llm.svc.cluster.local:9400"])
def test_well_formed_listen_addresses_pass_check_config(listen: str) -> None:
    result = exporter("--check-config", "--target", TARGET, "--listen", listen)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(("listen", "line"), [
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    ("192.0.2.1:9400", "error: listen: 192.0.2.1:9400: 192.0.2.1 is not an address of this machine"),
    # .invalid never resolves (RFC 6761), with or without a DNS server.
    ("nohost.invalid:9400", "error: listen: nohost.invalid:9400: cannot resolve nohost.invalid"),
])
def test_an_address_that_cannot_be_bound_is_one_line_at_start(listen: str, line: str) -> None:
    assert_one_line(exporter("--target", TARGET, "--listen", listen, timeout=30), line)


# --- the file and the environment ---------------------------------------------------------------------

def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_bytes(b"targets: [http://a:1/metrics]\nlisten: \xff\xfe:9400\n")
    assert_one_line(exporter("--check-config", "--config", str(config)),
                    f"error: {config}: not UTF-8 text (byte 0xff at offset 38)")


@pytest.mark.parametrize(("name", "value", "line"), [
    ("INFERSIGHT_TARGETS", "[http://a:1/metrics", "error: INFERSIGHT_TARGETS: invalid JSON: Expecting value at line 1 "
                                                   "column 2"),
    ("INFERSIGHT_COST", "{gpu_count: 2}", "error: INFERSIGHT_COST: invalid JSON: Expecting property name enclosed in "
                                          "double quotes at line 1 column 2"),
    ("INFERSIGHT_GPU__DEVICES", "[GPU-1", "error: INFERSIGHT_GPU__DEVICES: invalid JSON: Expecting value at line 1 "
                                          "column 2"),
    # The value may hold a secret: the line gives the position, never the text.
    ("INFERSIGHT_AUTH", '{"bearer_token": "s3cr3t', "error: INFERSIGHT_AUTH: invalid JSON: Unterminated string "
                                                     "starting at at line 1 column 18"),
])
def test_bad_json_in_an_environment_variable_names_the_variable(name: str, value: str, line: str) -> None:
    args = () if name == "INFERSIGHT_TARGETS" else ("--target", TARGET)
    result = exporter("--check-config", *args, env={name: value})
    assert_one_line(result, line)
    assert "s3cr3t" not in result.stderr


# --- the scrape timeout ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "-inf", "1e999"])
def test_a_scrape_timeout_that_is_not_a_finite_positive_number(value: str) -> None:
    line = "error: scrape_timeout_seconds: must be a finite number > 0"
    assert_one_line(exporter("--check-config", "--target", TARGET, f"--scrape-timeout={value}"), line)
    assert_one_line(exporter("--check-config", "--target", TARGET, env={"INFERSIGHT_SCRAPE_TIMEOUT_SECONDS": value}),
                    line)
    # At start too: an infinite timeout would be a /metrics that never answers.
    assert_one_line(exporter("--target", TARGET, "--listen", "127.0.0.1:1", f"--scrape-timeout={value}",
                             timeout=30), line)


def test_a_scrape_timeout_of_yaml_infinity(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text(f"targets: [{TARGET}]\nscrape_timeout_seconds: .inf\n")
    assert_one_line(exporter("--check-config", "--config", str(config)),
                    f"error: {config}: scrape_timeout_seconds: must be a finite number > 0")


# --- credentials files -------------------------------------------------------------------------------

def test_an_unreadable_bearer_token_file(tmp_path: Path) -> None:
    missing, empty, binary = tmp_path / "missing", tmp_path / "empty", tmp_path / "binary"
    empty.write_text("\n")
    binary.write_bytes(b"\xff\xfe\x00")
    for path, why in ((missing, f"cannot read {missing}: No such file or directory"),
                      (tmp_path, f"cannot read {tmp_path}: Is a directory"),
                      (empty, f"{empty} is empty"), (binary, f"{binary} is not UTF-8 text")):
        assert_one_line(exporter("--check-config", "--target", TARGET, "--bearer-token-file", str(path)),
                        f"error: auth.bearer_token_file: {why}")


def test_an_unreadable_basic_auth_password_file(tmp_path: Path) -> None:
    missing = tmp_path / "password"
    assert_one_line(exporter("--check-config", "--target", TARGET, "--basic-auth-user", "u",
                             "--basic-auth-password-file", str(missing)),
                    f"error: auth.basic_auth.password_file: cannot read {missing}: No such file or directory")
    # A target's own auth, from the file: the location says which target.
    config = tmp_path / "exporter.yaml"
    config.write_text(f"targets:\n  - url: {TARGET}\n    auth: {{basic_auth: {{username: u, password_file: "
                      f"{missing}}}}}\n")
    assert_one_line(exporter("--check-config", "--config", str(config)),
                    f"error: {config}: targets.0.auth.basic_auth.password_file: cannot read {missing}: "
                    "No such file or directory")
    # And at start: the exporter does not serve a target whose every scrape would fail.
    assert_one_line(exporter("--config", str(config), "--listen", "127.0.0.1:1", timeout=30),
                    f"error: {config}: targets.0.auth.basic_auth.password_file: cannot read {missing}: "
                    "No such file or directory")


def test_readable_credentials_files_pass(tmp_path: Path) -> None:
    token, password = tmp_path / "token", tmp_path / "password"
    token.write_text("t0ken\n")
    password.write_text("")  # an empty password is a password
    for args in (("--bearer-token-file", str(token)),
                 ("--basic-auth-user", "u", "--basic-auth-password-file", str(password))):
        result = exporter("--check-config", "--target", "a=" + TARGET, *args)
        assert (result.returncode, result.stderr, result.stdout) == (
            0, "", f"ok: target a engine=auto url={TARGET} gpu=none auth=yes\n")


# --- the web config ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.parametrize("client_auth_type", ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"])
def test_verifying_client_certificates_needs_a_client_ca(tmp_path: Path, certificate, client_auth_type: str) -> None:
    cert, key = certificate
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                   f"  client_auth_type: {client_auth_type}\n")
    line = (f"error: web_config_file: {web}: tls_server_config: client_auth_type {client_auth_type} needs "
            "client_ca_file (the CA that signed the client certificates)")
    assert_one_line(exporter("--check-config", "--target", TARGET, "--web.config.file", str(web)), line)
    assert_one_line(exporter("--target", TARGET, "--listen", "127.0.0.1:1", "--web.config.file", str(web),
                             timeout=30), line)
    # With the CA it is accepted.
    web.write_text(web.read_text() + f"  client_ca_file: {cert}\n")
    result = exporter("--check-config", "--target", "a=" + TARGET, "--web.config.file", str(web))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == f"ok: web config {web} tls=yes basic_auth_users=0"


def test_a_web_config_that_is_not_utf8(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_bytes(b"basic_auth_users: {\xff: x}\n")
    assert_one_line(exporter("--check-config", "--target", TARGET, "--web.config.file", str(web)),
                    f"error: web_config_file: {web}: not UTF-8 text")


def test_an_address_taken_between_the_check_and_the_server_is_one_line_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI binds once before it starts anything; should the port be taken in the instant
    before the server binds it, serve()'s OSError is the same one line."""
    import errno
    import signal

    import infersight.exporter.server as server
    from infersight import cli

    def taken(_settings) -> None:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    for name in list(os.environ):
        if name.upper().startswith("INFERSIGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(server, "serve", taken)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # main() would install its SIGTERM handler here
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert cli.main(["exporter", "--target", TARGET, "--listen", f"127.0.0.1:{port}"]) == 2
    assert capsys.readouterr().err == f"error: listen: 127.0.0.1:{port} is in use\n"
