"""A simulated engine in real time: the queueing model stepped on the wall clock, its metrics
format, its faults, and the token streams of the API requests it is serving."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import InitVar, dataclass

from infersight.simulator.formats import FORMATS, FormatState, dcgm_text
from infersight.simulator.model import EngineModel, Faults, FinishReason, Request
from infersight.simulator.profiles import Profile
from infersight.simulator.signals import Recorder

log = logging.getLogger("infersight.simulator")

FAULT_KINDS = ("ttft_regression", "outage", "error_burst", "kv_saturation", "slow_metrics", "restart")
DEFAULT_FAULT_VALUES = {"ttft_regression": 1.0, "error_burst": 0.5, "kv_saturation": 0.3, "slow_metrics": 5.0,
                        "outage": 0.0, "restart": 0.0}
FAULT_SYNTAX = re.compile(r"^(?P<kind>[a-z_]+)@(?P<start>\d+(?:\.\d+)?)(?:\+(?P<duration>\d+(?:\.\d+)?))?"
                          r"(?::(?P<value>\d+(?:\.\d+)?))?$")
MAX_FAULTS = 1000  # faults kept at once (scheduled or active); ended ones are dropped
MAX_FAULT_SECONDS = 3600.0  # the largest TTFT regression or /metrics delay
# How far the real-time loop may fall behind the model's schedule and still catch up (see
# SimulatedEngine._run). A stall longer than this (a suspended process) is lost time: the model
# resumes from the wall clock, as a GPU that stalled would.
CATCH_UP_SECONDS = 1.0

# What each kind's value means, and its range: (low, low included, high).
_VALUE_RANGES: dict[str, tuple[str, float, bool, float]] = {
    "ttft_regression": ("seconds added to each prefill", 0.0, True, MAX_FAULT_SECONDS),
    "error_burst": ("the share of requests that fail", 0.0, True, 1.0),
    "kv_saturation": ("the share of the KV cache left", 0.0, False, 1.0),
    "slow_metrics": ("the delay of /metrics in seconds", 0.0, True, MAX_FAULT_SECONDS),
}


def check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}")
    return kind


def check_start(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("must be a finite number >= 0")
    return seconds


def check_duration(seconds: float | None) -> float | None:
    if seconds is not None and (not math.isfinite(seconds) or seconds <= 0):
        raise ValueError("must be a finite number > 0 (or absent: until cleared)")
    return seconds


def check_value(kind: str, value: float | None) -> float | None:
    """``value`` for a fault of ``kind``: None (the default) or a number in the kind's range."""
    if value is None:
        return None
    if kind not in _VALUE_RANGES:
        raise ValueError(f"{kind} takes no value")
    meaning, low, low_included, high = _VALUE_RANGES[kind]
    if not (math.isfinite(value) and (low <= value if low_included else low < value) and value <= high):
        raise ValueError(f"{kind}'s value is {meaning}: a number {'>=' if low_included else '>'} {low:g} and "
                         f"<= {high:g}")
    return value


@dataclass
class Fault:
    """One degradation. ``value``: the TTFT delay (s), the error ratio, the share of the KV cache
    left, or the /metrics delay (s). ``start``/``end`` are seconds since the engine started.
    Every field is checked here (finite, in its kind's range): a NaN share of the KV cache would
    stop the engine's loop."""

    kind: str
    start: float = 0.0
    duration: float | None = None  # None: until cleared
    value: float | None = None

    def __post_init__(self) -> None:
        check_kind(self.kind)
        for name, check in (("start", check_start), ("duration", check_duration)):
            try:
                check(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{self.kind} {name}: {e}") from None
        check_value(self.kind, self.value)
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

    @property
    def end(self) -> float:
        return math.inf if self.duration is None else self.start + self.duration

    def active(self, elapsed: float) -> bool:
        return self.start <= elapsed < self.end

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start_seconds": self.start, "duration_seconds": self.duration,
                "value": self.value}


class TooManyFaults(ValueError):
    pass


class FaultSchedule:
    """The faults of an engine, kept in the order they were added. A fault of a kind that is
    active: the first added among the active ones of that kind.

    Adding a fault, and following the clock, costs O(log n) per fault (heaps of start and end
    times, a heap per kind of started faults), never a pass over every fault: the engine asks at
    every step, and a client may post thousands. Faults that ended are dropped."""

    def __init__(self, limit: int = MAX_FAULTS):
        self.limit = limit
        self.clear()

    def clear(self) -> None:
        self._seq = itertools.count()
        self._kept: dict[int, Fault] = {}  # insertion order
        self._starts: list[tuple[float, int]] = []  # not yet started
        self._ends: list[tuple[float, int]] = []  # with a duration
        self._started: dict[str, list[int]] = {kind: [] for kind in FAULT_KINDS}  # may hold ended ones
        self._restarts_due: list[Fault] = []

    def __len__(self) -> int:
        return len(self._kept)

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._kept.values()))

    def add(self, fault: Fault, now: float) -> None:
        self.advance(now)
        if len(self._kept) >= self.limit:
            raise TooManyFaults(f"at most {self.limit} faults are kept at once: wait for some to end, or clear "
                                "them (DELETE /control/faults)")
        seq = next(self._seq)
        self._kept[seq] = fault
        heapq.heappush(self._starts, (fault.start, seq))
        if fault.duration is not None:
            heapq.heappush(self._ends, (fault.end, seq))
        self.advance(now)

    def advance(self, now: float) -> None:
        """Follow the clock to ``now`` (seconds since the engine started)."""
        while self._ends and self._ends[0][0] <= now:
            self._kept.pop(heapq.heappop(self._ends)[1], None)
        while self._starts and self._starts[0][0] <= now:
            seq = heapq.heappop(self._starts)[1]
            fault = self._kept.get(seq)
            if fault is None:
                continue  # ended before it was seen to start
            started = self._started[fault.kind]
            heapq.heappush(started, seq)
            if len(started) > 2 * len(self._kept) + 16:  # ended ones not yet at the top: drop them
                started[:] = [s for s in started if s in self._kept]
                heapq.heapify(started)
            if fault.kind == "restart":
                self._restarts_due.append(fault)

    def active(self, kind: str, now: float) -> Fault | None:
        self.advance(now)
        started = self._started[kind]
        while started and started[0] not in self._kept:
            heapq.heappop(started)
        return self._kept[started[0]] if started else None

    def restarts_due(self, now: float) -> list[Fault]:
        """Restart faults that started since the last call: each restarts the engine once."""
        self.advance(now)
        due, self._restarts_due = self._restarts_due, []
        return due


@dataclass
class LoopStats:
    """How late the real-time loop woke for its steps: the machine's share of the story when the
    figures differ from the profile's calibration (``/control/state``'s ``loop``)."""

    steps: int = 0
    late_steps: int = 0  # woke more than 5 ms after the step's end
    late_seconds_max: float = 0.0
    late_seconds_total: float = 0.0
    lost_seconds: float = 0.0  # behind by more than CATCH_UP_SECONDS: not replayed

    def record(self, late: float) -> None:
        self.steps += 1
        if late > 0:
            self.late_seconds_total += late
            self.late_seconds_max = max(self.late_seconds_max, late)
        if late > 0.005:
            self.late_steps += 1
        if late > CATCH_UP_SECONDS:
            self.lost_seconds += late

    def as_dict(self) -> dict[str, float | int]:
        return {"steps": self.steps, "late_steps": self.late_steps,
                "late_seconds_max": round(self.late_seconds_max, 4),
                "late_seconds_mean": round(self.late_seconds_total / self.steps, 5) if self.steps else 0.0,
                "lost_seconds": round(self.lost_seconds, 3)}


@dataclass
class SimulatedEngine:
    engine: str
    version: str
    profile: Profile
    seed: int = 0
    synthetic_load: bool = True
    faults: InitVar[list[Fault] | None] = None  # scheduled at start, as --fault gives them

    def __post_init__(self, faults: list[Fault] | None) -> None:
        if (self.engine, self.version) not in FORMATS:
            known = ", ".join(f"{e} {v}" for e, v in FORMATS)
            raise ValueError(f"no simulator format for {self.engine} {self.version}: known are {known}")
        self.spec = FORMATS[(self.engine, self.version)]
        self.format = self.spec.build(self.profile.max_model_len, self.profile.gpu)
        self.started = time.monotonic()
        self.restarts = 0
        self.schedule = FaultSchedule()
        for fault in faults or ():
            self.schedule.add(fault, 0.0)
        # Why the real-time loop stopped, if it did: the engine then answers 503 everywhere but
        # /control (a real engine whose loop died is down), /health included.
        self.failure: str | None = None
        self._build()
        self._pending: list[tuple[Request, int, bool]] = []
        self._streams: dict[int, tuple[Request, asyncio.Queue[tuple[int, bool]]]] = {}
        # API requests not yet handed to the model: each joins the queue at the first step that
        # begins at or after its arrival, so no step that began earlier can serve it.
        self._held: list[Request] = []
        self.loop = LoopStats()
        # The model's clock: where the next step begins, and where it began (time.monotonic()
        # seconds; the origin is warm_start_seconds before the loop started, with a warm start).
        self.clock: float | None = None
        self.origin: float | None = None

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
        return self.schedule.active(kind, self.elapsed)

    def add_fault(self, fault: Fault) -> None:
        """Schedule ``fault``; TooManyFaults when MAX_FAULTS are kept already."""
        self.schedule.add(fault, self.elapsed)

    def clear_faults(self) -> None:
        self.schedule.clear()

    def _apply_faults(self) -> None:
        now = self.elapsed
        for _ in self.schedule.restarts_due(now):
            self.restart()
        f = self.model.faults
        ttft = self.schedule.active("ttft_regression", now)
        f.ttft_delay_seconds = (ttft.value or 0.0) if ttft else 0.0
        burst = self.schedule.active("error_burst", now)
        f.error_ratio = burst.value if burst else None
        kv = self.schedule.active("kv_saturation", now)
        f.kv_capacity_ratio = (kv.value or 1.0) if kv else 1.0

    def restart(self) -> None:
        """As if the engine process restarted: requests in flight fail, counters start from zero."""
        log.info("simulated restart of %s %s", self.engine, self.version)
        self.model.waiting.extend(r for r in self._held if r.finished is None)  # they fail too
        self._held = []
        self.model.reset()
        self.restarts += 1
        self._build()

    @property
    def down(self) -> bool:
        return self.active("outage") is not None

    # --- the real-time loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as e:  # noqa: BLE001 - whatever stopped the loop, the engine is down, and says so
            self._fail(e)

    def _fail(self, error: Exception) -> None:
        self.failure = f"{type(error).__name__}: {error}"
        log.error("the engine loop of %s %s stopped: %s", self.engine, self.version, self.failure, exc_info=error)
        # Its requests will never get another token: they end now, failed, so that no client waits.
        now = time.monotonic()
        for request, queue in list(self._streams.values()):
            if request.finished is None:
                request.finished, request.finish_reason = now, FinishReason.ERROR
            queue.put_nowait((request.output_tokens, True))

    def warm_up(self, until: float | None = None) -> None:
        """Start in the steady state: run the synthetic load in virtual time for the profile's
        ``warm_start_seconds`` ending at ``until`` (now), as if the engine had been serving it
        since then. Counters, histograms, the queue and the KV cache then hold what an engine
        that has been up that long holds, and the first minute measured is a steady one, not the
        clients' ramp."""
        seconds = self.profile.warm_start_seconds
        if not self.synthetic_load or seconds <= 0 or self.clock is not None:
            return
        now = self.origin = (time.monotonic() if until is None else until) - seconds
        while now < (time.monotonic() if until is None else until):
            now = self.model.step(now)
        self.clock = now

    async def _run(self) -> None:
        self.warm_up()
        now = time.monotonic() if self.clock is None else self.clock
        if self.origin is None:
            self.origin = now
        while True:
            self._apply_faults()
            if self.down:
                await asyncio.sleep(0.05)
                now = self.clock = time.monotonic()
                continue
            self._admit_arrived(now)
            end = self.model.begin(now)
            delay = end - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # catching up: still let the server answer in between
            woke = time.monotonic()
            # The model keeps its own schedule, anchored to the wall clock: a step ends when the
            # model says, and the next begins then, even when the event loop woke late (a busy
            # CPU) -- the next sleeps are shorter and the loop catches up. Stamping each step at
            # the late wake-up instead would add every wake-up's delay (about a millisecond per
            # 24 ms step, far more on a loaded machine) to the model's time: fewer tokens per
            # second, longer gaps, and a fuller queue than the profile's. Beyond CATCH_UP_SECONDS
            # behind, the time is lost rather than replayed in a burst.
            late = woke - end
            self.loop.record(late)
            now = self.clock = end if late <= CATCH_UP_SECONDS else woke
            self.model.finish(now)
            self._deliver()

    def _admit_arrived(self, now: float) -> None:
        """Hand the model the held API requests that arrived by ``now``, in arrival order."""
        if not self._held:
            return
        keep: list[Request] = []
        for request in self._held:
            if request.finished is not None:
                continue  # its client left before it reached the queue
            if request.arrival <= now:
                self.model.waiting.append(request)
            else:
                keep.append(request)
        self._held = keep

    def _deliver(self) -> None:
        pending, self._pending = self._pending, []
        for request, tokens, done in pending:
            stream = self._streams.get(request.id)
            if stream is not None:
                stream[1].put_nowait((tokens, done))

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
        # Held until a step begins at or after its arrival (_admit_arrived): when the loop is
        # catching up, the next step may begin (in model time) before the request arrived.
        if self.model.waiting and self.model.waiting[-1] is request:
            self.model.waiting.pop()
            self._held.append(request)
        self._streams[request.id] = (request, queue)
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

    def clock_state(self) -> dict[str, float | None]:
        """Where the model's clock began (Unix time: a run of the same profile and seed in virtual
        time from there replays this engine's synthetic load exactly) and how far behind the wall
        clock its next step is."""
        mono, wall = time.monotonic(), time.time()
        return {"seed": self.seed + self.restarts,
                "origin_unix_seconds": None if self.origin is None else wall - (mono - self.origin),
                "warm_start_seconds": self.profile.warm_start_seconds if self.synthetic_load else 0.0,
                "behind_seconds": None if self.clock is None else round(max(0.0, mono - self.clock), 4)}

    def snapshot(self) -> dict[str, object]:
        m = self.model
        now = self.elapsed
        self.schedule.advance(now)
        faults = list(self.schedule)
        return {"engine": self.engine, "version": self.version, "profile": self.profile.name,
                "model": self.profile.model_name, "metrics_path": self.format.path,
                "running": len(m.running), "waiting": len(m.waiting), "kv_cache_usage_ratio": m.kv_usage_ratio,
                "gpu_utilization_ratio": self.recorder.gpu_utilization(), "restarts": self.restarts,
                "uptime_seconds": round(now, 3), "failure": self.failure,
                "loop": self.loop.as_dict(), "clock": self.clock_state(),
                "faults": [f.as_dict() for f in faults], "active_faults": [f.kind for f in faults if f.active(now)]}
