"""Start real programs (Prometheus, the infersight CLI) for a test and always stop them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str) -> str:
    """The path of a program the setup script installs; a missing one fails (never skips) the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh (it installs the Debian packages)")
    return path


def infersight_command() -> list[str]:
    return [sys.executable, "-m", "infersight"]


def stop_group(process: subprocess.Popen, first: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Ask ``process`` to stop with ``first``, kill it after ``timeout`` s, then kill whatever is left
    of its process group: a parent killed mid-way (the demo's simulators, vLLM's engine core) must
    not leave its children running after the test. ``process`` must have started in its own
    session (``start_new_session=True``)."""
    if process.poll() is None:
        process.send_signal(first)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is gone: every child stopped with its parent


@contextmanager
def running(cmd: Sequence[str], ready_url: str, *, log: Path, timeout: float = 30,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` until the block ends; wait until ``ready_url`` answers 200 first."""
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                   cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready after {timeout}s:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield process
    finally:
        stop_group(process)
