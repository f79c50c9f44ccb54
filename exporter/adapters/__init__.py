"""One declarative adapter per engine, and engine detection for ``--engine auto``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from infersight.exporter.adapters import dcgm, nim, sglang, tgi, triton, trtllm, vllm
from infersight.exporter.adapters.base import Adapter
from infersight.exporter.schema import Engine

ADAPTERS: dict[Engine, Adapter] = {
    Engine.VLLM: vllm.ADAPTER,
    Engine.TRITON: triton.ADAPTER,
    Engine.NIM: nim.ADAPTER,
    Engine.SGLANG: sglang.ADAPTER,
    Engine.TGI: tgi.ADAPTER,
    Engine.TRTLLM: trtllm.ADAPTER,
}

DCGM: Adapter = dcgm.ADAPTER

# Only breaks ties between equal scores. vLLM before NIM: a NIM that passes vLLM's own names
# through is indistinguishable from vLLM (its series are the same; only the engine label differs).
_TIE_ORDER = (Engine.TRITON, Engine.SGLANG, Engine.TRTLLM, Engine.VLLM, Engine.NIM, Engine.TGI)

# A family's name from a TYPE line or a sample line (suffixes are stripped below).
_TYPE_LINE = re.compile(r"^#\s*TYPE\s+(\S+)\s+(\S+)", re.MULTILINE)
_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.MULTILINE)
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gsum", "_gcount", "_info")


@cache
def _markers(engine: Engine) -> frozenset[str]:
    """The family names that speak for ``engine``: every family its rows read, under every
    spelling its prefix aliases allow, and its ``detect`` names."""
    adapter = ADAPTERS[engine]
    names = set(adapter.detect)
    for row in adapter.rows:
        names.add(row.source)
        if row.count_source:
            names.add(row.count_source)
    for seen_prefix, row_prefix in adapter.prefix_aliases.items():
        names |= {seen_prefix + n[len(row_prefix):] for n in list(names) if n.startswith(row_prefix)}
    return frozenset(names)


def payload_families(payload: str) -> frozenset[str]:
    """The family names of a /metrics payload, as the parser names them (counters without _total),
    with every sample name's suffix also stripped (a family without a TYPE line still counts)."""
    names = set()
    for name, kind in _TYPE_LINE.findall(payload):
        names.add(name[:-6] if kind == "counter" and name.endswith("_total") else name)
    for name in set(_SAMPLE_NAME.findall(payload)):
        names.add(name)
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                names.add(name[: -len(suffix)])
    return frozenset(names)


@dataclass(frozen=True)
class Detection:
    """Which engine wrote a payload, and why: how many of its families each engine knows."""

    engine: Engine | None
    scores: dict[Engine, int]

    def reason(self) -> str:
        ranked = sorted(((s, e.value) for e, s in self.scores.items() if s), reverse=True)
        return ", ".join(f"{name} {score}" for score, name in ranked) or "no known family"


def detect(payload: str) -> Detection:
    """Weigh every engine's markers: the engine that knows the most of the payload's families wins
    (ties: ``_TIE_ORDER``). A vLLM that also serves TGI-compatible ``tgi_*`` families (the
    vllm-tgis-adapter) is vLLM, since far more of its families are vLLM's."""
    families = payload_families(payload)
    scores = {engine: len(families & _markers(engine)) for engine in _TIE_ORDER}
    best = max(_TIE_ORDER, key=lambda engine: scores[engine])  # max keeps the first of equal scores
    return Detection(best if scores[best] else None, scores)


def detect_engine(payload: str) -> Engine | None:
    """Guess the engine that wrote a /metrics payload, or None when nothing matches."""
    return detect(payload).engine
