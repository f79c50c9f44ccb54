"""A simulated engine in real time: the queueing model stepped on the wall clock, its metrics
format, its faults, and the token streams of the API requests it is serving."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field

from infersight.simulator.formats import FORMATS, FormatState, dcgm_text
from infersight.simulator.model import EngineModel, Faults, Request
from infersight.simulator.profiles import Profile
from infersight.simulator.signals import Recorder

log = logging.getLogger("infersight.simulator")

FAULT_KINDS = ("ttft_regression", "outage", "error_burst", "kv_saturation", "slow_metrics", "restart")
DEFAULT_FAULT_VALUES = {"ttft_regression": 1.0, "error_burst": 0.5, "kv_saturation": 0.3, "slow_metrics": 5.0,
                        "outage": 0.0, "restart": 0.0}
FAULT_SYNTAX = re.compile(r"^(?P<kind>[a-z_]+)@(?P<start>\d+(?:\.\d+)?)(?:\+(?P<duration>\d+(?:\.\d+)?))?"
                          r"(?::(?P<value>\d+(?:\.\d+)?))?$")


@dataclass
class Fault:
    """One degradation. ``value``: the TTFT delay (s), the error ratio, the share of the KV cache
    left, or the /metrics delay (s). ``start``/``end`` are seconds since the engine started."""

    kind: str
    start: float = 0.0
    duration: float | None = None  # None: until cleared
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}: use one of {', '.join(FAULT_KINDS)}")
        if self.value is None:
            self.value = DEFAULT_FAULT_VALUES[self.kind]

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND@START[+DURATION][:VALUE]``, e.g. ``ttft_regression@60+120:0.8``."""
        m = FAULT_SYNTAX.match(text.strip())
        if not m:
            raise ValueError(f"bad fault {text!r}: expected KIND@START[+DURATION][:VALUE], "
                             f"e.g. ttft_regression@60+120:0.8")
        duration = m.group("duration")
        value = m.group("value")
        return cls(m.group("kind"), float(m.group("start")), float(duration) if duration else None,
                   float(value) if value else None)

    def active(self, elapsed: float) -> bool:
        return self.start <= elapsed and (self.duration is None or elapsed < self.start + self.duration)

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start_seconds": self.start, "duration_seconds": self.duration,
                "value": self.value}


@dataclass
class SimulatedEngine:
    engine: str
    version: str
    profile: Profile
    seed: int = 0
    synthetic_load: bool = True
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.engine, self.version) not in FORMATS:
            known = ", ".join(f"{e} {v}" for e, v in FORMATS)
            raise ValueError(f"no simulator format for {self.engine} {self.version}: known are {known}")
        self.spec = FORMATS[(self.engine, self.version)]
        self.format = self.spec.build(self.profile.max_model_len, self.profile.gpu)
        self.started = time.monotonic()
        self.restarts = 0
        self._restarted: set[int] = set()
        self._build()
        self._pending: list[tuple[Request, int, bool]] = []
        self._streams: dict[int, asyncio.Queue[tuple[int, bool]]] = {}

    def _build(self) -> None:
        workload = self.profile.workload
        if not self.synthetic_load:
            from dataclasses import replace
            workload = replace(workload, concurrency=0, arrival_rate_per_second=0.0)
        self.model = EngineModel(self.profile.performance, workload, seed=self.seed + self.restarts,
                                 faults=Faults())
        self.recorder = Recorder(self.model)
        self.state = FormatState(self.format, self.recorder, self.profile.model_name)
        self.born = time.time()

    # --- faults ----------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def active(self, kind: str) -> Fault | None:
        now = self.elapsed
        return next((f for f in self.faults if f.kind == kind and f.active(now)), None)

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _apply_faults(self) -> None:
        f = self.model.faults
        ttft = self.active("ttft_regression")
        f.ttft_delay_seconds = (ttft.value or 0.0) if ttft else 0.0
        burst = self.active("error_burst")
        f.error_ratio = burst.value if burst else None
        kv = self.active("kv_saturation")
        f.kv_capacity_ratio = (kv.value or 1.0) if kv else 1.0
        for fault in self.faults:
            if fault.kind == "restart" and fault.active(self.elapsed) and id(fault) not in self._restarted:
                self._restarted.add(id(fault))
                self.restart()

    def restart(self) -> None:
        """As if the engine process restarted: requests in flight fail, counters start from zero."""
        log.info("simulated restart of %s %s", self.engine, self.version)
        self.model.reset()
        self.restarts += 1
        self._build()

    @property
    def down(self) -> bool:
        return self.active("outage") is not None

    # --- the real-time loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        now = time.monotonic()
        while True:
            self._apply_faults()
            if self.down:
                await asyncio.sleep(0.05)
                now = time.monotonic()
                continue
            end = self.model.begin(now)
            delay = end - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # The step ends when it really did: if the event loop woke late (a busy CPU), the
            # tokens are stamped with that time, so every figure the engine reports is one a
            # client could observe, never the optimistic schedule.
            now = max(end, time.monotonic())
            self.model.finish(now)
            self._deliver()

    def _deliver(self) -> None:
        pending, self._pending = self._pending, []
        for request, tokens, done in pending:
            queue = self._streams.get(request.id)
            if queue is not None:
                queue.put_nowait((tokens, done))

    # --- API requests ------------------------------------------------------------------------------------

    def submit(self, prompt_tokens: int, max_tokens: int | None, ignore_eos: bool, arrival: float | None = None
               ) -> tuple[Request, asyncio.Queue[tuple[int, bool]]]:
        """Queue a request that reached the server at ``arrival`` (time.monotonic(); default now).
        Its queue yields (tokens so far, finished) at the end of every engine step that gave it a
        token, and once when it ends: never ahead of the model's clock."""
        queue: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()

        def listener(request: Request, _tokens: int, _at: float) -> None:
            self._pending.append((request, request.output_tokens, request.finished is not None))

        arrival = time.monotonic() if arrival is None else arrival
        request = self.model.submit(arrival, prompt_tokens, max_tokens, listener=listener,
                                    ignore_eos=ignore_eos)
        self._streams[request.id] = queue
        return request, queue

    def release(self, request: Request) -> None:
        """The response is done (or the client left): forget the stream, abort if still running."""
        self._streams.pop(request.id, None)
        if request.finished is None:
            self.model.cancel(request, time.monotonic())

    # --- metrics -----------------------------------------------------------------------------------------

    def metrics_text(self) -> bytes:
        return self.state.render()

    def dcgm_text(self) -> bytes:
        return dcgm_text(self.recorder, self.profile.gpu).encode()

    def snapshot(self) -> dict[str, object]:
        m = self.model
        return {"engine": self.engine, "version": self.version, "profile": self.profile.name,
                "model": self.profile.model_name, "metrics_path": self.format.path,
                "running": len(m.running), "waiting": len(m.waiting), "kv_cache_usage_ratio": m.kv_usage_ratio,
                "gpu_utilization_ratio": self.recorder.gpu_utilization(), "restarts": self.restarts,
                "uptime_seconds": round(self.elapsed, 3),
                "faults": [f.as_dict() for f in self.faults], "active_faults": [
                    f.kind for f in self.faults if f.active(self.elapsed)]}
