"""A vLLM-shaped engine whose metrics move: a background thread observes requests at a steady
rate, with a TTFT that a test can degrade. It serves real prometheus_client output on 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from infersight.exporter.adapters.vllm import ITL_BUCKETS, LATENCY_BUCKETS, TTFT_BUCKETS

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


class LiveEngine:
    def __init__(self, requests_per_tick: int = 20, tick_seconds: float = 0.1):
        self.registry = CollectorRegistry()
        labels = ["engine", "model_name"]
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "TTFT", labels, buckets=TTFT_BUCKETS,
                              registry=self.registry).labels("0", MODEL)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "ITL", labels, buckets=ITL_BUCKETS,
                             registry=self.registry).labels("0", MODEL)
        self.finished = Counter("vllm:request_success", "finished", labels + ["finished_reason"],
                                registry=self.registry).labels("0", MODEL, "stop")
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", labels, buckets=LATENCY_BUCKETS,
                             registry=self.registry).labels("0", MODEL)
        self.queue = Histogram("vllm:request_queue_time_seconds", "queue", labels, buckets=LATENCY_BUCKETS,
                               registry=self.registry).labels("0", MODEL)
        self.prompt = Counter("vllm:prompt_tokens", "prompt", labels, registry=self.registry).labels("0", MODEL)
        self.generation = Counter("vllm:generation_tokens", "generation", labels,
                                  registry=self.registry).labels("0", MODEL)
        self.preemptions = Counter("vllm:num_preemptions", "preemptions", labels,
                                   registry=self.registry).labels("0", MODEL)
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "q", labels, registry=self.registry).labels("0", MODEL)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "h", labels, registry=self.registry).labels("0", MODEL)
        Gauge("vllm:num_requests_running", "running", labels, registry=self.registry).labels("0", MODEL).set(12)
        Gauge("vllm:num_requests_waiting", "waiting", labels, registry=self.registry).labels("0", MODEL).set(3)
        Gauge("vllm:kv_cache_usage_perc", "kv", labels, registry=self.registry).labels("0", MODEL).set(0.42)
        # vLLM 0.21+/0.33 families (waiting by reason, sleep state, admission rejections, cached prompt
        # tokens, speculative decoding, prefill/decode time), so every panel has data.
        waiting = Gauge("vllm:num_requests_waiting_by_reason", "waiting", labels + ["reason"], registry=self.registry)
        waiting.labels("0", MODEL, "capacity").set(2)
        waiting.labels("0", MODEL, "deferred").set(1)
        Gauge("vllm:engine_sleep_state", "sleep", labels + ["sleep_state"],
              registry=self.registry).labels("0", MODEL, "awake").set(1)
        self.rejections = Counter("vllm:admission_rejections", "rejected", labels,
                                  registry=self.registry).labels("0", MODEL)
        self.cached = Counter("vllm:prompt_tokens_cached", "cached", labels, registry=self.registry).labels("0", MODEL)
        self.drafts = Counter("vllm:spec_decode_num_drafts", "drafts", labels, registry=self.registry).labels("0", MODEL)
        self.draft_tokens = Counter("vllm:spec_decode_num_draft_tokens", "draft tokens", labels,
                                    registry=self.registry).labels("0", MODEL)
        self.accepted = Counter("vllm:spec_decode_num_accepted_tokens", "accepted", labels,
                                registry=self.registry).labels("0", MODEL)
        self.prefill = Histogram("vllm:request_prefill_time_seconds", "prefill", labels, buckets=LATENCY_BUCKETS,
                                 registry=self.registry).labels("0", MODEL)
        self.decode = Histogram("vllm:request_decode_time_seconds", "decode", labels, buckets=LATENCY_BUCKETS,
                                registry=self.registry).labels("0", MODEL)
        self.slow_ttft_seconds: float | None = None  # set to inject a TTFT regression
        self._requests_per_tick, self._tick = requests_per_tick, tick_seconds
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True),
                         threading.Thread(target=self._traffic, daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/metrics"

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _traffic(self) -> None:
        while not self._stop.wait(self._tick):
            self.tick()

    def tick(self) -> None:
        """One tick's traffic (the traffic thread runs one every tick_seconds)."""
        for _ in range(self._requests_per_tick):
            self.ttft.observe(self.slow_ttft_seconds or 0.12)
            self.itl.observe(0.02)
            self.finished.inc()
            self.e2e.observe(2.2)
            self.queue.observe(0.01)
            self.prompt.inc(1200)
            self.generation.inc(240)
            self.prefix_queries.inc(1200)
            self.prefix_hits.inc(300)
            self.cached.inc(300)
            self.drafts.inc(60)
            self.draft_tokens.inc(180)
            self.accepted.inc(120)
            self.prefill.observe(0.1)
            self.decode.observe(2.0)
        self.preemptions.inc()
        self.rejections.inc()

    def _handler(self):
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler
