"""One declarative adapter per engine, and engine detection for ``--engine auto``."""

from infersight.exporter.adapters import dcgm, nim, sglang, tgi, triton, vllm
from infersight.exporter.adapters.base import Adapter
from infersight.exporter.schema import Engine

ADAPTERS: dict[Engine, Adapter] = {
    Engine.VLLM: vllm.ADAPTER,
    Engine.TRITON: triton.ADAPTER,
    Engine.NIM: nim.ADAPTER,
    Engine.SGLANG: sglang.ADAPTER,
    Engine.TGI: tgi.ADAPTER,
}

DCGM: Adapter = dcgm.ADAPTER

# Triton first: its vLLM backend also serves vllm: names. NIM before vLLM: NIM 1.x has no prefix.
_DETECTION_ORDER = (Engine.TRITON, Engine.SGLANG, Engine.TGI, Engine.NIM, Engine.VLLM)


def detect_engine(payload: str) -> Engine | None:
    """Guess the engine that wrote a /metrics payload, or None when nothing matches."""
    for engine in _DETECTION_ORDER:
        if any(marker in payload for marker in ADAPTERS[engine].detect):
            return engine
    return None
