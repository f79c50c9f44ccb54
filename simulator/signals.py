"""What the model measures, once, for every metrics format to read.

``Recorder`` listens to the model and keeps each signal as it happens: histograms get every
observation (each format buckets them with its own engine's bounds), counters count by finish
reason. A format is then a table mapping its engine's metric names onto these signals
(``simulator.formats``), so two engines simulated from the same load report the same truth.
"""

from __future__ import annotations

import math
from collections import deque
from enum import StrEnum

from infersight.simulator.model import EngineModel, FinishReason, Observer, Request


class Signal(StrEnum):
    # gauges, read from the model when rendered
    RUNNING = "running"
    WAITING = "waiting"
    KV_USAGE = "kv_usage"  # 0..1
    KV_BLOCKS_MAX = "kv_blocks_max"
    KV_BLOCKS_USED = "kv_blocks_used"
    KV_BLOCKS_FREE = "kv_blocks_free"
    KV_BLOCK_TOKENS = "kv_block_tokens"
    MAX_SEQS = "max_seqs"
    PROMPT_THROUGHPUT = "prompt_throughput"  # tokens/s over the last 10 s (vLLM V0's avg_* gauges)
    GENERATION_THROUGHPUT = "generation_throughput"
    GPU_UTILIZATION = "gpu_utilization"  # 0..1
    ZERO = "zero"
    ONE = "one"
    # counters
    PROMPT_TOKENS = "prompt_tokens"
    GENERATION_TOKENS = "generation_tokens"
    ALL_TOKENS = "all_tokens"
    PREEMPTIONS = "preemptions"
    FINISHED = "finished"  # by finished_reason
    SUCCEEDED = "succeeded"  # stop or length
    FAILED = "failed"  # error or abort
    REQUESTS = "requests"  # finished, any reason
    PREFIX_QUERIES = "prefix_queries"
    PREFIX_HITS = "prefix_hits"
    PROMPT_COMPUTED = "prompt_computed"  # prompt tokens not found in the prefix cache
    # Speculative decoding, as a draft model proposing 3 tokens per step with 2 of 3 accepted
    # would count it: every 3 decoded tokens are 1 draft, 3 draft tokens, 2 accepted (+1 bonus).
    SPEC_DRAFTS = "spec_drafts"
    SPEC_DRAFT_TOKENS = "spec_draft_tokens"
    SPEC_ACCEPTED = "spec_accepted"
    SPEC_ACCEPTED_POS0 = "spec_accepted_pos0"  # accepted tokens by draft position
    SPEC_ACCEPTED_POS1 = "spec_accepted_pos1"
    SPEC_ACCEPTED_POS2 = "spec_accepted_pos2"
    ABORTED = "aborted"  # finished with abort
    ITERATIONS = "iterations"
    E2E_SECONDS = "e2e_seconds"  # summed over finished requests (Triton's cumulative _duration_us)
    QUEUE_SECONDS = "queue_seconds"
    INFERENCE_SECONDS = "inference_seconds"
    # histograms
    TTFT = "ttft"
    ITL = "itl"
    TPOT = "tpot"  # a request's mean time per output token
    E2E = "e2e"
    QUEUE = "queue"
    PREFILL = "prefill"
    DECODE = "decode"
    INFERENCE = "inference"
    PROMPT_LENGTH = "prompt_length"
    GENERATION_LENGTH = "generation_length"
    MAX_TOKENS = "max_tokens"
    PARAMS_N = "params_n"
    ITERATION_TOKENS = "iteration_tokens"
    REQUEST_PREEMPTIONS = "request_preemptions"


TRUTH_SECONDS = 900.0  # how long raw observations are kept for /control/truth

HISTOGRAMS = frozenset({Signal.TTFT, Signal.ITL, Signal.TPOT, Signal.E2E, Signal.QUEUE, Signal.PREFILL, Signal.DECODE,
                        Signal.INFERENCE, Signal.PROMPT_LENGTH, Signal.GENERATION_LENGTH, Signal.MAX_TOKENS,
                        Signal.PARAMS_N, Signal.ITERATION_TOKENS, Signal.REQUEST_PREEMPTIONS})


class Histogram:
    """Cumulative bucket counts for fixed bounds, plus sum and count."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        out, total = [], 0
        for n in self.counts:
            total += n
            out.append(total)
        return out


class Recorder(Observer):
    """Counters and histograms of one engine, fed by the model's events."""

    def __init__(self, model: EngineModel):
        self.model = model
        self.counters: dict[Signal, float] = {s: 0.0 for s in Signal if s not in HISTOGRAMS}
        self.finished: dict[FinishReason, int] = {r: 0 for r in FinishReason}
        self._histograms: dict[Signal, list[Histogram]] = {}
        self._recent: deque[tuple[float, int, int, float]] = deque()  # (end, prefill, decode tokens, seconds)
        # Ground truth for checks: every TTFT, inter-token gap and generated token, timestamped,
        # for the last TRUTH_SECONDS (what a client would have measured, no buckets).
        self.truth: dict[str, deque[tuple[float, float]]] = {"ttft": deque(), "itl": deque(), "tokens": deque()}
        # GPU time integrated for energy: seconds stepped, weighted by the batch's occupancy of
        # the GPU (as gpu_utilization weighs the last 10 s), and the model clock's span.
        self.busy_weighted_seconds = 0.0
        self.first_step: float | None = None
        self.last_step: float | None = None
        self._decoded = 0  # decode tokens, for the speculative decoding counts
        model.observers.append(self)

    def histogram(self, signal: Signal, bounds: tuple[float, ...]) -> Histogram:
        """A histogram of ``signal`` with ``bounds``, fed from now on (formats register at start)."""
        h = Histogram(bounds)
        self._histograms.setdefault(signal, []).append(h)
        return h

    def _observe(self, signal: Signal, value: float) -> None:
        for h in self._histograms.get(signal, ()):
            h.observe(value)

    # --- model events ----------------------------------------------------------------------------

    def on_iteration(self, start: float, end: float, prefill_tokens: int, decode_tokens: int) -> None:
        self.counters[Signal.ITERATIONS] += 1
        self.busy_weighted_seconds += (end - start) * _occupancy(decode_tokens)
        if self.first_step is None:
            self.first_step = start
        self.last_step = end
        self._observe(Signal.ITERATION_TOKENS, prefill_tokens + decode_tokens)
        self._recent.append((end, prefill_tokens, decode_tokens, end - start))
        while self._recent and self._recent[0][0] < end - 10:
            self._recent.popleft()

    def on_first_token(self, request: Request, ttft: float) -> None:
        self._count_prompt(request)
        self._observe(Signal.TTFT, ttft)
        at = request.first_token or 0.0
        self._remember("ttft", at, ttft)
        self._generated(at)

    def on_token(self, request: Request, gap: float) -> None:
        self._observe(Signal.ITL, gap)
        self._decoded += 1
        if self._decoded % 3 == 0:
            c = self.counters
            c[Signal.SPEC_DRAFTS] += 1
            c[Signal.SPEC_DRAFT_TOKENS] += 3
            c[Signal.SPEC_ACCEPTED] += 2
            c[Signal.SPEC_ACCEPTED_POS0] += 1
            c[Signal.SPEC_ACCEPTED_POS1] += 1
        at = (request.last_token or 0.0) + gap
        self._remember("itl", at, gap)
        self._generated(at)

    def _generated(self, at: float) -> None:
        self.counters[Signal.GENERATION_TOKENS] += 1
        self.counters[Signal.ALL_TOKENS] += 1
        self._remember("tokens", at, 1.0)

    def _remember(self, kind: str, at: float, value: float) -> None:
        events = self.truth[kind]
        events.append((at, value))
        while events and events[0][0] < at - TRUTH_SECONDS:
            events.popleft()

    def ground_truth(self, start: float, end: float) -> dict[str, float | int | None]:
        """What really happened between ``start`` and ``end`` (model clock): exact percentiles of
        the raw observations (nearest rank), tokens and tokens per second."""
        def within(kind: str) -> list[float]:
            return sorted(v for t, v in self.truth[kind] if start < t <= end)

        def rank(values: list[float], q: float) -> float | None:
            return values[max(0, math.ceil(q * len(values)) - 1)] if values else None

        ttft, itl, tokens = within("ttft"), within("itl"), within("tokens")
        seconds = end - start
        return {"seconds": seconds, "generated_tokens": len(tokens),
                "output_tokens_per_second": len(tokens) / seconds if seconds > 0 else None,
                "requests_started": len(ttft), "ttft_p50_seconds": rank(ttft, 0.5), "ttft_p99_seconds": rank(ttft, 0.99),
                "itl_p50_seconds": rank(itl, 0.5), "itl_p99_seconds": rank(itl, 0.99)}

    def _count_prompt(self, request: Request) -> None:
        c = self.counters
        c[Signal.PROMPT_TOKENS] += request.prompt_tokens
        c[Signal.ALL_TOKENS] += request.prompt_tokens
        c[Signal.PREFIX_QUERIES] += request.prompt_tokens
        # Synthetic prompts share a system prompt of a quarter of their length with earlier ones.
        hits = (request.prompt_tokens // 4) // 16 * 16
        c[Signal.PREFIX_HITS] += hits
        c[Signal.PROMPT_COMPUTED] += request.prompt_tokens - hits

    def on_preemption(self, request: Request) -> None:
        self.counters[Signal.PREEMPTIONS] += 1

    def on_finish(self, request: Request) -> None:
        reason = request.finish_reason or FinishReason.ABORT
        c = self.counters
        self.finished[reason] += 1
        c[Signal.REQUESTS] += 1
        if reason is FinishReason.ABORT:
            c[Signal.ABORTED] += 1
        c[Signal.SUCCEEDED if reason in (FinishReason.STOP, FinishReason.LENGTH) else Signal.FAILED] += 1
        end = request.finished or 0.0
        self._observe(Signal.E2E, end - request.arrival)
        c[Signal.E2E_SECONDS] += end - request.arrival
        if request.first_admitted is not None:
            c[Signal.QUEUE_SECONDS] += request.first_admitted - request.arrival
            c[Signal.INFERENCE_SECONDS] += end - request.first_admitted
            self._observe(Signal.QUEUE, request.first_admitted - request.arrival)
            self._observe(Signal.INFERENCE, end - request.first_admitted)
            if request.first_token is not None:
                self._observe(Signal.PREFILL, request.first_token - request.first_admitted)
                self._observe(Signal.DECODE, end - request.first_token)
        self._observe(Signal.PROMPT_LENGTH, request.prompt_tokens)
        self._observe(Signal.GENERATION_LENGTH, request.output_tokens)
        self._observe(Signal.MAX_TOKENS, request.max_tokens)
        self._observe(Signal.PARAMS_N, 1)
        self._observe(Signal.REQUEST_PREEMPTIONS, request.preemptions)
        if request.output_tokens > 1 and request.first_token is not None and request.last_token is not None:
            self._observe(Signal.TPOT, (request.last_token - request.first_token) / (request.output_tokens - 1))

    # --- gauges ----------------------------------------------------------------------------------

    def gauge(self, signal: Signal) -> float:
        m = self.model
        block = m.performance.kv_block_tokens
        match signal:
            case Signal.RUNNING:
                return len(m.running)
            case Signal.WAITING:
                return len(m.waiting)
            case Signal.KV_USAGE:
                return m.kv_usage_ratio
            case Signal.KV_BLOCKS_MAX:
                return m.kv_capacity_tokens // block
            case Signal.KV_BLOCKS_USED:
                return m.kv_used_tokens // block
            case Signal.KV_BLOCKS_FREE:
                return max(0, (m.kv_capacity_tokens - m.kv_used_tokens) // block)
            case Signal.KV_BLOCK_TOKENS:
                return block
            case Signal.MAX_SEQS:
                return m.performance.max_num_seqs
            case Signal.PROMPT_THROUGHPUT | Signal.GENERATION_THROUGHPUT:
                if len(self._recent) < 2:
                    return 0.0
                span = self._recent[-1][0] - self._recent[0][0]
                index = 1 if signal is Signal.PROMPT_THROUGHPUT else 2
                return sum(item[index] for item in self._recent) / span if span > 0 else 0.0
            case Signal.GPU_UTILIZATION:
                return self.gpu_utilization()
            case Signal.ONE:
                return 1.0
            case Signal.ZERO:
                return 0.0
        return self.counters[signal]

    def gpu_utilization(self) -> float:
        """Share of the last 10 s the GPU was stepping, scaled by the decode batch size (a small
        batch leaves SMs idle between kernels): 64 sequences read about 89%, as nvidia-smi would."""
        if len(self._recent) < 2:
            return 0.0
        span = max(self._recent[-1][0] - self._recent[0][0] + self._recent[0][3], 1e-9)
        busy = sum(item[3] for item in self._recent)
        sequences = sum(item[2] for item in self._recent) / len(self._recent)
        return min(1.0, busy / span) * _occupancy(sequences)

    def energy_joules(self, idle_watts: float, limit_watts: float) -> float:
        """A GPU's energy since the first step: idle power over the model clock's span, plus the
        power above idle over the occupancy-weighted busy time (power follows utilization, as
        ``GpuSpec.readings`` has it)."""
        if self.first_step is None or self.last_step is None:
            return 0.0
        span = self.last_step - self.first_step
        return idle_watts * span + (limit_watts - idle_watts) * min(self.busy_weighted_seconds, span)


def _occupancy(sequences: float) -> float:
    """How much of the GPU a decode batch of ``sequences`` keeps busy while it steps."""
    return min(1.0, 0.85 + 0.15 * sequences / 256)
