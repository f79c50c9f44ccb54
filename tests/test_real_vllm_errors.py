"""What a user sees when the real vLLM cannot run: one clear message each, through RealVllm and
through `infersight real-engine vllm` (exit 1, the message on stderr, nothing left running)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from infersight.tools.real_engine import RealEngineError, RealVllm
from tests.processes import free_port, infersight_command

pytestmark = pytest.mark.e2e


def test_vllm_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    began = time.monotonic()
    missing = tmp_path / "no-such-venv"
    monkeypatch.setenv("INFERSIGHT_VLLM_VENV", str(missing))
    with pytest.raises(RealEngineError) as error:
        RealVllm(port=free_port(), model_dir=tmp_path / "model").start()
    assert str(error.value).startswith(f"vLLM is not installed at {missing}: run scripts/setup-vllm.sh")
    cli = subprocess.run([*infersight_command(), "real-engine", "vllm", "--port", str(free_port()), "--model-dir",
                          str(tmp_path / "model")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "INFERSIGHT_VLLM_VENV": str(missing)})
    assert cli.returncode == 1
    assert cli.stderr.startswith(f"infersight real-engine: vLLM is not installed at {missing}: "), cli.stderr
    assert not (tmp_path / "model").exists()  # nothing was built
    print(f"\n{cli.stderr.strip()}\ntook {time.monotonic() - began:.1f} s")


def test_port_taken(tmp_path: Path) -> None:
    began = time.monotonic()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        engine = RealVllm(port=port, log_path=tmp_path / "vllm.log")
        with pytest.raises(RealEngineError) as error:
            engine.start()
        assert str(error.value) == (f"port {port} on 127.0.0.1 is taken: stop what holds it or pick another "
                                    "with --port")
        assert engine.process is None  # refused before anything started
        cli = subprocess.run([*infersight_command(), "real-engine", "vllm", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1
    assert cli.stderr.startswith(f"infersight real-engine: port {port} on 127.0.0.1 is taken"), cli.stderr
    print(f"\n{cli.stderr.strip()}\ntook {time.monotonic() - began:.1f} s")


def test_server_dying_at_start_shows_its_log_tail(tmp_path: Path) -> None:
    began = time.monotonic()
    engine = RealVllm(port=free_port(), extra_args=["--no-such-flag"], log_path=tmp_path / "vllm.log")
    with pytest.raises(RealEngineError) as error:
        engine.start()
    message = str(error.value)
    assert message.startswith(f"vLLM exited with 2 while starting; the end of {tmp_path / 'vllm.log'}:\n"), message
    assert "unrecognized arguments: --no-such-flag" in message  # vLLM's own words, from the log's tail
    assert len(message.splitlines()) <= 31  # the tail, not the whole log
    assert not engine.alive()
    print(f"\n{message.splitlines()[0]} ... {message.splitlines()[-1]}\ntook {time.monotonic() - began:.1f} s")
