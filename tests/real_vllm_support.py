"""Helpers for the real-vLLM tests (tests/test_real_vllm*.py), and the maker of the committed
real-vLLM fixture:

    .venv/bin/python -m tests.real_vllm_support capture     # from the repository root

starts a fresh real vLLM 0.32 (infersight.tools.real_engine.RealVllm, the tests' configuration),
sends the fixed requests of ``send_fixed_requests`` one after another, waits until the engine is
idle and writes its /metrics to tests/fixtures/engines/vllm-0.32.0-real.metrics.txt (or the path
given after ``capture``).

The expected unified values are computed here from the engine's own /metrics with
prometheus_client's parser and a mapping spelled out below from the vLLM adapter's table
(exporter/adapters/vllm.py), not through infersight's parser or normalizer.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infersight.tools.real_engine import MODEL_NAME, RealVllm
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "engines" / "vllm-0.32.0-real.metrics.txt"
# vLLM's CPU backend uses 128-token blocks (vllm:cache_config_info block_size="128"; --block-size is
# ignored there): 24 blocks hold 3072 tokens. AIPerf's 4 streams of ~300 tokens take 12 blocks (50%);
# the saturation load's ~760-token requests fit four at a time, so KV usage reaches 100% and a queue forms.
KV_BLOCKS = 24
BLOCK_TOKENS = 128

Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> [(labels, value)]
Key = tuple[str, frozenset]  # unified sample name, its labels


# --- reading /metrics with prometheus_client ---------------------------------------------------------

def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return samples(response.text)


def value(found: Samples, name: str, **labels: str) -> float | None:
    """The sum of ``name``'s series whose labels include ``labels``; None when there is none."""
    values = [v for l, v in found.get(name, ()) if all(l.get(k) == w for k, w in labels.items())]
    return sum(values) if values else None


# --- the vLLM adapter's table, spelled out independently ---------------------------------------------

GAUGES = {  # unified -> vLLM 0.32 (summed over data-parallel ranks; the KV ratio averaged)
    "llm_requests_running": "vllm:num_requests_running",
    "llm_requests_waiting": "vllm:num_requests_waiting",
    "llm_kv_cache_usage_ratio": "vllm:kv_cache_usage_perc",
}
COUNTERS = {
    "llm_prompt_tokens_total": "vllm:prompt_tokens_total",
    "llm_prompt_tokens_cached_total": "vllm:prompt_tokens_cached_total",  # local + external cache hits
    "llm_admission_rejections_total": "vllm:admission_rejections_total",
    "llm_generation_tokens_total": "vllm:generation_tokens_total",
    "llm_preemptions_total": "vllm:num_preemptions_total",
    "llm_prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "llm_prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
}
HISTOGRAMS = {
    "llm_time_to_first_token_seconds": "vllm:time_to_first_token_seconds",
    "llm_inter_token_latency_seconds": "vllm:inter_token_latency_seconds",
    "llm_time_per_output_token_seconds": "vllm:request_time_per_output_token_seconds",
    "llm_request_duration_seconds": "vllm:e2e_request_latency_seconds",
    "llm_request_queue_seconds": "vllm:request_queue_time_seconds",
    "llm_request_prefill_seconds": "vllm:request_prefill_time_seconds",
    "llm_request_decode_seconds": "vllm:request_decode_time_seconds",
}
WAITING_BY_REASON = "vllm:num_requests_waiting_by_reason"  # reason = capacity | deferred, summed over ranks
SLEEP_STATE = "vllm:engine_sleep_state"  # sleep_state="awake" is 1 on an awake rank: its mean is the awake ratio
SIGNALS = (*GAUGES, "llm_requests_waiting_by_reason", "llm_engine_awake_ratio", *COUNTERS, "llm_requests_total",
           *HISTOGRAMS)  # every signal a vLLM payload carries
HTTP_5XX = re.compile(r"5(xx|\d\d)")
HTTP_4XX = re.compile(r"4(xx|\d\d)")


def mapped_raw(found: Samples) -> dict[tuple[str, frozenset], float]:
    """The raw engine samples the unified series are made of (what must not move during a read)."""
    names = {*GAUGES.values(), *COUNTERS.values(), WAITING_BY_REASON, SLEEP_STATE, "vllm:request_success_total"}
    for h in HISTOGRAMS.values():
        names |= {f"{h}_bucket", f"{h}_count", f"{h}_sum"}
    out = {(n, frozenset(l.items())): v for n in names for l, v in found.get(n, ())}
    out |= {("http_requests_total", frozenset(l.items())): v for l, v in found.get("http_requests_total", ())
            if HTTP_5XX.fullmatch(l.get("status", "")) or HTTP_4XX.fullmatch(l.get("status", ""))}
    return out


def expected_unified(raw: Samples, target: str, engine: str = "vllm") -> dict[Key, float]:
    """What the exporter must serve for a vLLM target, computed from the raw samples."""
    models = sorted({l["model_name"] for l, _ in raw.get("vllm:num_requests_running", ())})
    out: dict[Key, float] = {}
    for model in models:
        base = {"engine": engine, "model": model, "target": target}

        def put(name: str, v: float, **extra: str) -> None:
            out[(name, frozenset({**base, **extra}.items()))] = v

        def total(name: str, keep=lambda labels: True) -> float:
            return sum(v for l, v in raw.get(name, ()) if l.get("model_name") == model and keep(l))

        for unified, name in GAUGES.items():
            series = [v for l, v in raw.get(name, ()) if l.get("model_name") == model]
            put(unified, sum(series) / len(series) if unified == "llm_kv_cache_usage_ratio" else sum(series))
        for reason in sorted({l["reason"] for l, _ in raw.get(WAITING_BY_REASON, ()) if l.get("model_name") == model}):
            put("llm_requests_waiting_by_reason", total(WAITING_BY_REASON, lambda l: l["reason"] == reason),
                reason=reason)
        awake = [v for l, v in raw.get(SLEEP_STATE, ()) if l.get("model_name") == model and l["sleep_state"] == "awake"]
        if awake:
            put("llm_engine_awake_ratio", sum(awake) / len(awake))
        for unified, name in COUNTERS.items():
            put(unified, total(name))
        # finished_reason: abort -> aborted, error -> error, anything else (stop, length, repetition) -> success;
        # the API server's 5xx answers are errors too (they carry no model label: the target's only model).
        reason = "vllm:request_success_total"
        put("llm_requests_total", total(reason, lambda l: l["finished_reason"] not in ("abort", "error")),
            outcome="success")
        put("llm_requests_total", total(reason, lambda l: l["finished_reason"] == "abort"), outcome="aborted")
        http_errors = sum(v for l, v in raw.get("http_requests_total", ()) if HTTP_5XX.fullmatch(l.get("status", "")))
        put("llm_requests_total", total(reason, lambda l: l["finished_reason"] == "error") + http_errors,
            outcome="error")
        # 4xx answers (a prompt over the context): refused before the engine saw them.
        put("llm_requests_total", sum(v for l, v in raw.get("http_requests_total", ())
                                      if HTTP_4XX.fullmatch(l.get("status", ""))), outcome="rejected")
        for unified, name in HISTOGRAMS.items():
            for l, v in raw.get(f"{name}_bucket", ()):
                if l.get("model_name") == model:
                    key = (f"{unified}_bucket", frozenset({**base, "le": _le(l["le"])}.items()))
                    out[key] = out.get(key, 0.0) + v
            put(f"{unified}_count", total(f"{name}_count"))
            put(f"{unified}_sum", total(f"{name}_sum"))
    return out


def _le(text: str) -> str:
    return repr(float(text))  # "0.001" and "1.0e-03" compare equal; "+Inf" -> "inf"


def unified(found: Samples, target: str) -> dict[Key, float]:
    """The exporter's engine series for one target (exporter health series left out)."""
    out: dict[Key, float] = {}
    for name, series in found.items():
        if not name.startswith("llm_") or name.startswith("llm_exporter_"):
            continue
        for labels, v in series:
            if labels.get("target") == target:
                if "le" in labels:
                    labels = {**labels, "le": _le(labels["le"])}
                out[(name, frozenset(labels.items()))] = v
    return out


# --- driving the engine -----------------------------------------------------------------------------

def wait_idle(engine_url: str, timeout: float = 120.0) -> float:
    """Until vLLM reports nothing running or waiting; the seconds it took."""
    start = time.monotonic()
    while True:
        found = scrape(f"{engine_url}/metrics")
        if value(found, "vllm:num_requests_running") == 0 and value(found, "vllm:num_requests_waiting") == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"vLLM at {engine_url} not idle after {timeout} s")
        time.sleep(0.2)


def _words(n: int, seed: int) -> str:
    vocabulary = ("river", "stone", "light", "paper", "green", "music", "table", "cloud", "horse", "glass",
                  "winter", "orange", "garden", "silver", "market", "window")
    return " ".join(vocabulary[(seed * 7 + i * 3) % len(vocabulary)] for i in range(n))


def send_fixed_requests(engine_url: str) -> dict[str, object]:
    """The fixed requests, one after another, greedy, fixed lengths; the same counters every run.

    - 4 completions of 16 tokens (finished_reason length), 2 chat completions of 8 tokens;
    - the same 300-token prompt twice: the second finds two 128-token blocks in the prefix cache;
    - a completion stopped by a stop string (its third generated word): finished_reason stop;
    - a stream the client drops after 3 chunks (vLLM 0.32 counts its TTFT and gaps, not a finish);
    - a prompt over the 1024-token context: a 400 answer (http_requests_total status 4xx, no engine work).
    """
    api = f"{engine_url}/v1"
    summary: Counter[str] = Counter()
    with httpx.Client(timeout=120) as client:
        def complete(prompt: str, max_tokens: int, **extra: object) -> dict:
            r = client.post(f"{api}/completions", json={"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens,
                                                         "temperature": 0, "ignore_eos": True, **extra})
            r.raise_for_status()
            summary[r.json()["choices"][0]["finish_reason"]] += 1
            return r.json()

        for i in range(4):
            complete(f"fixture request {i}: {_words(20 + 10 * i, i)}", 16)
        for i in range(2):
            r = client.post(f"{api}/chat/completions", json={
                "model": MODEL_NAME, "messages": [{"role": "user", "content": f"chat {i}: {_words(30, 10 + i)}"}],
                "max_tokens": 8, "temperature": 0, "ignore_eos": True})
            r.raise_for_status()
            summary[r.json()["choices"][0]["finish_reason"]] += 1
        shared = f"shared prefix: {_words(300, 99)}"
        complete(shared, 4)
        complete(shared, 4)
        text = complete("stop here", 12)["choices"][0]["text"].split()
        complete("stop here", 12, stop=[text[2] if len(text) > 2 else text[-1]])
        with client.stream("POST", f"{api}/completions", json={"model": MODEL_NAME, "prompt": "dropped stream",
                                                               "max_tokens": 500, "ignore_eos": True,
                                                               "stream": True}) as r:
            chunks = 0
            for line in r.iter_lines():
                chunks += line.startswith("data:")
                if chunks >= 3:
                    break
        summary["dropped"] += 1
        r = client.post(f"{api}/completions", json={"model": MODEL_NAME, "prompt": "x " * 1100, "max_tokens": 4})
        assert r.status_code == 400, r.text
        summary["http_400"] += 1
    time.sleep(0.5)  # the dropped stream's abort reaches the engine
    wait_idle(engine_url)
    return dict(summary)


@dataclass
class Load:
    """``concurrency`` client threads sending completions back to back until stopped. Connection
    errors (an engine that was killed) are counted, and the thread retries after 0.2 s."""

    url: str
    concurrency: int
    prompt_words: int
    max_tokens: int
    tag: str = "load"
    ok: int = 0
    failed: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _run(self, worker: int) -> None:
        n = 0
        with httpx.Client(timeout=httpx.Timeout(120, connect=2)) as client:
            while not self._stop.is_set():
                # A unique head: no two requests share a prefix-cache block.
                prompt = f"{self.tag} {worker} {n} {_words(self.prompt_words, worker * 1000 + n)}"
                n += 1
                try:
                    r = client.post(f"{self.url}/v1/completions", json={
                        "model": MODEL_NAME, "prompt": prompt, "max_tokens": self.max_tokens, "ignore_eos": True})
                    with self._lock:
                        if r.status_code == 200:
                            self.ok += 1
                        else:
                            self.failed[f"http {r.status_code}"] += 1
                except httpx.HTTPError as e:
                    with self._lock:
                        self.failed[type(e).__name__] += 1
                    self._stop.wait(0.2)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending; requests still in flight are left to finish or to die with the engine."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))


# --- the committed fixture --------------------------------------------------------------------------

def capture_fixture(dest: Path = FIXTURE, port: int | None = None) -> dict[str, object]:
    """Start a fresh real vLLM (the tests' configuration), send the fixed requests, save /metrics."""
    engine = RealVllm(port=port or free_port(), kv_blocks=KV_BLOCKS)
    with engine:
        summary = send_fixed_requests(engine.url)
        text = httpx.get(f"{engine.url}/metrics", timeout=10).text
    dest.write_text(text, encoding="utf-8")
    return {"path": str(dest), "lines": text.count("\n"), **summary}


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] != "capture":
        raise SystemExit("usage: python -m tests.real_vllm_support capture [PATH]")
    print(capture_fixture(Path(sys.argv[2]) if len(sys.argv) == 3 else FIXTURE))
