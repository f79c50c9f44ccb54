"""A queueing model of an LLM engine with continuous batching, stepped one engine iteration at a time.

Every figure a simulated engine reports comes out of this model: requests wait in a FIFO queue,
are admitted while the batch has a free slot and the KV cache has room for their prompt, are
prefilled and then decoded one token per iteration, and leave when their output is complete. An
iteration takes longer as the batch and the prefill work in it grow, so latency rises with load
the way it does on a GPU. When the KV cache fills during decode, the newest request is preempted
(its KV freed, recomputed later), as vLLM does.

The model knows nothing about wall clocks: ``step(now)`` runs one iteration starting at ``now``
and returns when it ends. A real-time driver (``simulator.engine``) sleeps until then; tests and
calibration call it in a tight loop and get hours of engine time in seconds, deterministically.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"


@dataclass(frozen=True)
class Performance:
    """How fast the engine is. Step time = base + per_sequence * decoding sequences
    + per_context_token * tokens held by them + prefill tokens / prefill speed, times a jitter."""

    step_base_seconds: float = 0.012
    step_per_sequence_seconds: float = 0.00025
    step_per_context_token_seconds: float = 0.0
    prefill_tokens_per_second: float = 20000.0
    step_jitter: float = 0.1  # relative half-width of a uniform jitter on each step
    max_num_seqs: int = 256
    max_prefill_tokens_per_step: int = 8192  # chunked prefill budget per iteration
    kv_capacity_tokens: int = 200_000
    kv_block_tokens: int = 16
    admission_watermark: float = 0.01  # share of the cache kept free when admitting (vLLM's watermark)


@dataclass(frozen=True)
class Workload:
    """The built-in synthetic load: closed-loop clients, or Poisson arrivals when rate > 0."""

    concurrency: int = 32
    arrival_rate_per_second: float = 0.0
    prompt_tokens_mean: float = 512
    prompt_tokens_sigma: float = 0.4  # of the lognormal
    output_tokens_mean: float = 256
    output_tokens_sigma: float = 0.4
    max_tokens: int = 2048
    error_ratio: float = 0.0
    abort_ratio: float = 0.0
    # Closed-loop clients start spread over this many seconds, so they do not run in lockstep.
    ramp_seconds: float = 0.0


@dataclass
class Request:
    id: int
    prompt_tokens: int
    max_tokens: int
    target_output_tokens: int
    arrival: float
    synthetic: bool = True
    fail: bool = False  # ends with an engine error after its first token
    abort_at_token: int = 0  # the client goes away after this many tokens (0 = never)
    admitted: float | None = None
    first_admitted: float | None = None
    prefill_target: int = 0  # the prompt, plus the output so far after a preemption (recomputed)
    prefilled_tokens: int = 0
    output_tokens: int = 0
    first_token: float | None = None
    last_token: float | None = None
    kv_tokens: int = 0
    preemptions: int = 0
    finished: float | None = None
    finish_reason: FinishReason | None = None
    listener: Callable[[Request, int, float], None] | None = None  # (request, new tokens, time)

    @property
    def context_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


class Observer:
    """What a metrics format hears from the model. Every method is a no-op by default."""

    def on_iteration(self, start: float, end: float, prefill_tokens: int, decode_tokens: int) -> None: ...
    def on_first_token(self, request: Request, ttft: float) -> None: ...
    def on_token(self, request: Request, gap: float) -> None: ...
    def on_preemption(self, request: Request) -> None: ...
    def on_finish(self, request: Request) -> None: ...
    def on_arrival(self, request: Request) -> None: ...


@dataclass
class Faults:
    """Degradations applied to the model (the HTTP-level faults live in the server)."""

    ttft_delay_seconds: float = 0.0  # added to every prefill: a TTFT regression
    slowdown: float = 1.0  # multiplies every step: a slow GPU
    error_ratio: float | None = None  # overrides the workload's error ratio: an error burst
    kv_capacity_ratio: float = 1.0  # of the capacity still usable: KV saturation


@dataclass
class EngineModel:
    performance: Performance
    workload: Workload
    seed: int = 0
    observers: list[Observer] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.kv_used_tokens = 0
        self.busy_seconds = 0.0
        self.started_at: float | None = None
        self._next_id = 0
        self._next_arrival: float | None = None
        self._synthetic_in_flight = 0
        self._ramp: list[float] | None = None
        self._batch: tuple[float, list[tuple[Request, int]], list[Request]] = (0.0, [], [])

    # --- state read by the formats -----------------------------------------------------------

    @property
    def kv_capacity_tokens(self) -> int:
        return max(1, int(self.performance.kv_capacity_tokens * self.faults.kv_capacity_ratio))

    @property
    def kv_usage_ratio(self) -> float:
        return min(1.0, self.kv_used_tokens / self.kv_capacity_tokens)

    # --- arrivals --------------------------------------------------------------------------------

    def _lognormal(self, mean: float, sigma: float) -> int:
        mu = math.log(mean) - sigma * sigma / 2  # so that the mean is `mean`
        return max(1, round(self.rng.lognormvariate(mu, sigma)))

    def submit(self, now: float, prompt_tokens: int, max_tokens: int | None, *, synthetic: bool = False,
               listener: Callable[[Request, int, float], None] | None = None,
               ignore_eos: bool = False) -> Request:
        """Queue a request. Without ``ignore_eos`` it stops at a natural length drawn from the workload."""
        w = self.workload
        limit = max_tokens if max_tokens is not None else w.max_tokens
        natural = limit if ignore_eos else self._lognormal(w.output_tokens_mean, w.output_tokens_sigma)
        error_ratio = w.error_ratio if self.faults.error_ratio is None else self.faults.error_ratio
        request = Request(id=self._next_id, prompt_tokens=max(1, prompt_tokens), max_tokens=limit,
                          target_output_tokens=max(1, min(limit, natural)), arrival=now, synthetic=synthetic,
                          listener=listener, fail=self.rng.random() < error_ratio)
        if synthetic and self.rng.random() < w.abort_ratio:
            request.abort_at_token = self.rng.randint(1, request.target_output_tokens)
        self._next_id += 1
        self.waiting.append(request)
        for o in self.observers:
            o.on_arrival(request)
        return request

    def _synthetic_arrivals(self, now: float) -> None:
        w = self.workload
        if w.arrival_rate_per_second > 0:
            if self._next_arrival is None:
                self._next_arrival = now
            while self._next_arrival <= now:
                self._submit_synthetic(self._next_arrival)
                self._next_arrival += self.rng.expovariate(w.arrival_rate_per_second)
        else:
            if self._ramp is None:
                self._ramp = sorted(now + self.rng.uniform(0, w.ramp_seconds) for _ in range(w.concurrency))
                self._synthetic_in_flight = w.concurrency  # the ramp's clients count from the start
            while self._ramp and self._ramp[0] <= now:
                self._ramp.pop(0)
                self._synthetic_in_flight -= 1
                self._submit_synthetic(now)
            if not self._ramp:
                while self._synthetic_in_flight < w.concurrency:
                    self._submit_synthetic(now)

    def _submit_synthetic(self, at: float) -> None:
        w = self.workload
        self._synthetic_in_flight += 1
        self.submit(at, self._lognormal(w.prompt_tokens_mean, w.prompt_tokens_sigma), w.max_tokens,
                    synthetic=True)

    def cancel(self, request: Request, now: float) -> None:
        """The client went away (closed its stream)."""
        if request.finished is None:
            self._finish(request, now, FinishReason.ABORT)

    # --- one iteration ---------------------------------------------------------------------------

    def step(self, now: float) -> float:
        """Run one engine iteration starting at ``now``; return the time it ends (virtual time)."""
        end = self.begin(now)
        self.finish(end)
        return end

    def begin(self, now: float) -> float:
        """Schedule one iteration at ``now``: admit, pick the batch, say when it will end. Nothing is
        emitted until ``finish``, so a real-time driver can finish it when the step really ended."""
        if self.started_at is None:
            self.started_at = now
        self._synthetic_arrivals(now)
        self._admit(now)
        p = self.performance
        budget = p.max_prefill_tokens_per_step
        prefilling: list[tuple[Request, int]] = []
        decoding: list[Request] = []
        for request in self.running:
            remaining = request.prefill_target - request.prefilled_tokens
            if remaining > 0:
                if budget > 0:
                    chunk = min(remaining, budget)
                    budget -= chunk
                    prefilling.append((request, chunk))
            else:
                decoding.append(request)
        self._batch = (now, prefilling, decoding)
        if not prefilling and not decoding:
            # Idle: wake up when the next Poisson arrival is due (or shortly, for API requests).
            wake = now + 0.005
            if self._next_arrival is not None:
                wake = max(wake, min(self._next_arrival, now + 0.05))
            return wake
        prefill_tokens = sum(chunk for _, chunk in prefilling)
        context = sum(r.context_tokens for r in decoding)
        seconds = (p.step_base_seconds + p.step_per_sequence_seconds * len(decoding)
                   + p.step_per_context_token_seconds * context + prefill_tokens / p.prefill_tokens_per_second)
        if any(r.prefilled_tokens == 0 and r.first_token is None for r, _ in prefilling):
            seconds += self.faults.ttft_delay_seconds
        jitter = 1 + p.step_jitter * (2 * self.rng.random() - 1)
        return now + seconds * jitter * self.faults.slowdown

    def finish(self, end: float) -> None:
        """Complete the iteration ``begin`` scheduled, at ``end``: tokens out, KV grown, requests done."""
        now, prefilling, decoding = self._batch
        self._batch = (end, [], [])
        if not prefilling and not decoding:
            return
        self.busy_seconds += end - now
        for o in self.observers:
            o.on_iteration(now, end, sum(chunk for _, chunk in prefilling), len(decoding))
        for request, chunk in prefilling:
            if request.finished is not None or not request.kv_tokens:
                continue  # cancelled by its client, or preempted, while the step ran
            request.prefilled_tokens += chunk
            if request.prefilled_tokens >= request.prefill_target:
                self._emit(request, end)  # the prefill's last chunk yields the first token
        for request in decoding:
            # An earlier request's growth may have preempted this one in the same step.
            if request.finished is None and request.kv_tokens:
                self._grow_kv(request, end)
                if request.kv_tokens:
                    self._emit(request, end)

    def _blocks(self, tokens: int) -> int:
        b = self.performance.kv_block_tokens
        return -(-tokens // b) * b

    def _admit(self, now: float) -> None:
        while self.waiting and len(self.running) < self.performance.max_num_seqs:
            request = self.waiting[0]
            need = self._blocks(request.context_tokens + 1)
            limit = self.kv_capacity_tokens * (1 - self.performance.admission_watermark)
            if self.kv_used_tokens + need > limit and self.running:
                break
            self.waiting.popleft()
            request.admitted = now
            if request.first_admitted is None:
                request.first_admitted = now
            request.prefill_target = request.context_tokens
            request.prefilled_tokens = 0
            request.kv_tokens = need
            self.kv_used_tokens += need
            self.running.append(request)

    def _grow_kv(self, request: Request, now: float) -> None:
        """Room for one more token; a full cache preempts the newest request (possibly this one)."""
        need = self._blocks(request.context_tokens + 1) - request.kv_tokens
        while need > 0 and self.kv_used_tokens + need > self.kv_capacity_tokens and self.running:
            victim = self.running[-1]
            self._preempt(victim)
            if victim is request:
                return
        request.kv_tokens += need
        self.kv_used_tokens += need

    def _preempt(self, request: Request) -> None:
        self.running.remove(request)
        self.kv_used_tokens -= request.kv_tokens
        request.kv_tokens = 0
        request.preemptions += 1
        request.admitted = None
        self.waiting.appendleft(request)
        for o in self.observers:
            o.on_preemption(request)

    def _emit(self, request: Request, now: float) -> None:
        if request.first_token is None:
            request.first_token = now
            for o in self.observers:
                o.on_first_token(request, now - request.arrival)
        else:
            gap = now - (request.last_token or now)
            for o in self.observers:
                o.on_token(request, gap)
        request.last_token = now
        request.output_tokens += 1
        if request.listener is not None:
            request.listener(request, 1, now)
        if request.fail:
            self._finish(request, now, FinishReason.ERROR)
        elif request.abort_at_token and request.output_tokens >= request.abort_at_token:
            self._finish(request, now, FinishReason.ABORT)
        elif request.output_tokens >= request.target_output_tokens:
            reason = FinishReason.LENGTH if request.output_tokens >= request.max_tokens else FinishReason.STOP
            self._finish(request, now, reason)

    def _finish(self, request: Request, now: float, reason: FinishReason) -> None:
        request.finished = now
        request.finish_reason = reason
        if request in self.running:
            self.running.remove(request)
            self.kv_used_tokens -= request.kv_tokens
            request.kv_tokens = 0
        elif request in self.waiting:
            self.waiting.remove(request)
        if request.synthetic:
            self._synthetic_in_flight -= 1
        for o in self.observers:
            o.on_finish(request)
        if request.listener is not None:
            request.listener(request, 0, now)

    # --- restart -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """A restart: every request in flight is lost, the cache is empty."""
        for request in [*self.running, *self.waiting]:
            request.finished = request.finished or 0.0
            request.finish_reason = FinishReason.ABORT
            if request.listener is not None:
                request.listener(request, 0, 0.0)
        self.waiting.clear()
        self.running.clear()
        self.kv_used_tokens = 0
        self._synthetic_in_flight = 0
        self._ramp = None
        self.busy_seconds = 0.0
        self.started_at = None
        self._next_arrival = None


def run_for(model: EngineModel, seconds: float, start: float = 0.0) -> float:
    """Step the model in virtual time (no sleeping) for ``seconds``; return the end time."""
    now = start
    while now < start + seconds:
        now = model.step(now)
    return now
