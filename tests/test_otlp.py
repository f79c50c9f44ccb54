"""OTLP push through a real `infersight exporter` process to an OTLP/HTTP receiver in the test,
which decodes each push with the official protos (opentelemetry-proto). No OpenTelemetry
Collector: Debian packages none (checked with apt-cache policy otelcol otelcol-contrib).

The engine is a replayed capture (static values), so one push and the /metrics scraped just
after it hold the same numbers: every series of every exported metric is compared."""

from __future__ import annotations

import gzip
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                          ExportMetricsServiceResponse)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client.parser import text_string_to_metric_families

from infersight import __version__
from infersight.exporter.otlp_names import ATTRIBUTES, RESOURCE_TARGET, otel_name, unit
from infersight.exporter.schema import CATALOGUE, Kind, Label, M
from tests.conftest import OWN_FIXTURES
from tests.processes import free_port, infersight_command, running

pytestmark = pytest.mark.integration

CAPTURE = OWN_FIXTURES / "vllm-0.33.0.metrics.txt"
BY_OTEL_NAME = {otel_name(m): m for m in CATALOGUE}
SECRET = "Bearer otlp-s3cret-token"


class Receiver:
    """An OTLP/HTTP metrics endpoint: each POST decoded as ExportMetricsServiceRequest. With
    ``hang`` set, it reads the request and answers nothing until the test ends."""

    def __init__(self, hang: bool = False) -> None:
        self.requests: list[tuple[dict[str, str], ExportMetricsServiceRequest]] = []
        self.arrived = threading.Condition()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportMetricsServiceRequest.FromString(body)
                with receiver.arrived:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, request))
                    receiver.arrived.notify_all()
                if hang:
                    receiver.release.wait(120)
                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                try:
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):  # a hung push the exporter gave up on
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"

    def wait_for(self, check: Callable[[ExportMetricsServiceRequest], bool], after: int = 0,
                 timeout: float = 30) -> tuple[int, ExportMetricsServiceRequest]:
        """The first push from index ``after`` on that passes ``check``."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            index = after
            while True:
                while index < len(self.requests):
                    if check(self.requests[index][1]):
                        return index, self.requests[index][1]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching push within {timeout}s ({len(self.requests)} received)")
                self.arrived.wait(left)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver(hang: bool = False) -> Iterator[Receiver]:
    r = Receiver(hang)
    try:
        yield r
    finally:
        r.close()


def _value(attribute) -> str | int:
    kind = attribute.WhichOneof("value")
    return getattr(attribute, kind)


def as_prometheus(request: ExportMetricsServiceRequest) -> dict[str, dict]:
    """The push as the schema's series: {metric name: {sorted label pairs: value}}, histograms as
    {le: cumulative count} plus _sum and _count, so that it compares with /metrics."""
    out: dict[str, dict] = {}
    for rm in request.resource_metrics:
        resource = {a.key: _value(a.value) for a in rm.resource.attributes}
        (scope,) = rm.scope_metrics
        assert (scope.scope.name, scope.scope.version) == ("infersight.exporter", __version__)
        for metric in scope.metrics:
            schema = BY_OTEL_NAME[metric.name]
            assert (metric.unit, metric.description) == (unit(schema), schema.help)
            points = {Kind.GAUGE: lambda: metric.gauge.data_points, Kind.COUNTER: lambda: metric.sum.data_points,
                      Kind.HISTOGRAM: lambda: metric.histogram.data_points}[schema.kind]()
            assert metric.WhichOneof("data") == {Kind.GAUGE: "gauge", Kind.COUNTER: "sum",
                                                 Kind.HISTOGRAM: "histogram"}[schema.kind]
            if schema.kind is Kind.COUNTER:
                assert metric.sum.is_monotonic
                assert metric.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            if schema.kind is Kind.HISTOGRAM:
                assert (metric.histogram.aggregation_temporality
                        == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE)
            for point in points:
                attributes = {a.key: _value(a.value) for a in point.attributes}
                labels = []
                for label in schema.labels:
                    labels.append((label.value, resource[RESOURCE_TARGET] if label is Label.TARGET
                                   else attributes.pop(ATTRIBUTES[label])))
                assert attributes == {}  # no attribute beyond the labels
                key = tuple(sorted(labels))
                if schema.kind is Kind.HISTOGRAM:
                    assert point.count == sum(point.bucket_counts)
                    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1
                    cumulative, buckets = 0, {}
                    for bound, count in zip([*point.explicit_bounds, math.inf], point.bucket_counts):
                        cumulative += count
                        buckets[bound] = float(cumulative)
                    out.setdefault(schema.name, {})[key] = {"buckets": buckets, "sum": point.sum,
                                                            "count": float(point.count)}
                else:
                    assert point.WhichOneof("value") == "as_double"
                    out.setdefault(schema.name, {})[key] = point.as_double
    return out


def from_metrics(text: str) -> dict[str, dict]:
    """The exporter's /metrics in the same form (its catalogue families only)."""
    out: dict[str, dict] = {}
    names = {m.name for m in CATALOGUE}
    for family in text_string_to_metric_families(text):
        if family.name not in names and family.name + "_total" not in names:
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            if family.type == "histogram":
                entry = out.setdefault(family.name, {}).setdefault(key, {"buckets": {}, "sum": None, "count": None})
                if sample.name.endswith("_bucket"):
                    entry["buckets"][float(sample.labels["le"])] = sample.value
                elif sample.name.endswith("_sum"):
                    entry["sum"] = sample.value
                elif sample.name.endswith("_count"):
                    entry["count"] = sample.value
            elif not sample.name.endswith("_created"):
                out.setdefault(sample.name, {})[key] = sample.value
    return out


def _target_up(request: ExportMetricsServiceRequest, value: float) -> bool:
    return any(m.name == "infersight.exporter.target_up" and m.gauge.data_points[0].as_double == value
               for rm in request.resource_metrics for s in rm.scope_metrics for m in s.metrics)


def _exporter(tmp_path: Path, engine_url: str, endpoint: str, *extra: str) -> tuple[list[str], str]:
    port = free_port()
    return ([*infersight_command(), "exporter", "--engine", "vllm", "--target", f"vllm={engine_url}",
             "--listen", f"127.0.0.1:{port}", "--otlp-endpoint", endpoint, "--otlp-interval", "1", *extra],
            f"http://127.0.0.1:{port}")


def test_a_push_holds_every_series_of_metrics_and_an_engine_down_shows(tmp_path: Path) -> None:
    engine_port = free_port()
    engine_url = f"http://127.0.0.1:{engine_port}/metrics"
    headers = tmp_path / "otlp-headers"
    headers.write_text(f"# the collector's token\nAuthorization: {SECRET}\n")
    log = tmp_path / "exporter.log"
    with receiver() as otlp:
        command, base = _exporter(tmp_path, engine_url, otlp.url, "--otlp-headers-file", str(headers))
        with running([*infersight_command(), "replay", str(CAPTURE), "--listen", f"127.0.0.1:{engine_port}"],
                     engine_url, log=tmp_path / "replay.log") as engine, \
                running(command, base + "/-/ready", log=log):
            index, push = otlp.wait_for(lambda r: _target_up(r, 1.0))
            text = httpx.get(base + "/metrics", timeout=10).text
            pushed, served = as_prometheus(push), from_metrics(text)
            # The scrape's own duration differs from one fetch to the next: present, in seconds.
            duration = M.EXPORTER_TARGET_SCRAPE_DURATION.name
            (pushed_duration,) = pushed.pop(duration).values()
            served.pop(duration)
            assert 0 < pushed_duration < 10
            assert pushed == served
            # Every family /metrics has for this capture was compared: all but what vLLM 0.33 without
            # spec decoding, GPU source or cost configured has not.
            absent = {M.SPEC_DECODE_DRAFTS, M.SPEC_DECODE_DRAFT_TOKENS, M.SPEC_DECODE_ACCEPTED_TOKENS,
                      M.GPU_UTILIZATION_RATIO, M.GPU_MEMORY_USED_BYTES, M.GPU_MEMORY_TOTAL_BYTES, M.GPU_POWER_WATTS,
                      M.GPU_ENERGY_JOULES, M.HOURLY_COST_DOLLARS, M.EXPORTER_GPU_SOURCE_UP,
                      M.EXPORTER_TARGET_SCRAPE_DURATION}
            assert set(served) == {m.name for m in CATALOGUE if m not in absent}
            # The conventions' names for the three latency histograms.
            names = {m.name: (m.unit, m.WhichOneof("data")) for rm in push.resource_metrics
                     for s in rm.scope_metrics for m in s.metrics}
            assert {n: names[n] for n in names if n.startswith("gen_ai.")} == {
                "gen_ai.server.time_to_first_token": ("s", "histogram"),
                "gen_ai.server.time_per_output_token": ("s", "histogram"),
                "gen_ai.server.request.duration": ("s", "histogram")}
            resources = sorted(sorted((a.key, _value(a.value)) for a in rm.resource.attributes)
                               for rm in push.resource_metrics)
            assert resources == [
                [("infersight.target", "vllm"), ("server.address", "127.0.0.1"), ("server.port", engine_port),
                 ("service.name", "infersight-exporter"), ("service.version", __version__)],
                [("service.name", "infersight-exporter"), ("service.version", __version__)],
            ]
            assert otlp.requests[index][0]["authorization"] == SECRET
            assert otlp.requests[index][0]["content-type"] == "application/x-protobuf"
            # Counters keep their start from one push to the next (the series did not reset).
            _, later = otlp.wait_for(lambda r: True, after=index + 1)
            starts = [{(m.name, tuple(sorted((a.key, _value(a.value)) for a in p.attributes))): p.start_time_unix_nano
                       for rm in r.resource_metrics for s in rm.scope_metrics for m in s.metrics
                       if m.WhichOneof("data") == "sum" for p in m.sum.data_points} for r in (push, later)]
            assert starts[0] == starts[1]
            assert len(starts[0]) == sum(len(served[m.name]) for m in CATALOGUE if m.kind is Kind.COUNTER
                                         and m.name in served) == 18
            # The engine goes away: the next pushes say so, with nothing else of the engine's.
            engine.terminate()
            engine.wait(10)
            _, down = otlp.wait_for(lambda r: _target_up(r, 0.0), after=index)
            down_names = sorted(m.name for rm in down.resource_metrics for s in rm.scope_metrics for m in s.metrics)
            assert down_names == ["infersight.exporter.build_info", "infersight.exporter.dropped_series",
                                  "infersight.exporter.scrape_errors", "infersight.exporter.target_scrape_duration",
                                  "infersight.exporter.target_up"]
    assert "s3cret" not in log.read_text()


def test_a_slow_or_absent_receiver_never_holds_up_metrics(tmp_path: Path) -> None:
    engine_port = free_port()
    engine_url = f"http://127.0.0.1:{engine_port}/metrics"
    with running([*infersight_command(), "replay", str(CAPTURE), "--listen", f"127.0.0.1:{engine_port}"],
                 engine_url, log=tmp_path / "replay.log"):
        # A receiver that takes the push and never answers (within the push's 60 s timeout).
        with receiver(hang=True) as slow:
            command, base = _exporter(tmp_path, engine_url, slow.url, "--otlp-timeout", "60")
            with running(command, base + "/-/ready", log=tmp_path / "slow.log") as process:
                slow.wait_for(lambda r: True)
                for _ in range(5):  # the push is still waiting for its answer meanwhile
                    started = time.monotonic()
                    response = httpx.get(base + "/metrics", timeout=10)
                    assert (response.status_code, response.text.count("llm_exporter_target_up{")) == (200, 1)
                    assert time.monotonic() - started < 2
                assert len(slow.requests) == 1  # one push at a time: none piled up behind it
                assert process.poll() is None
                # Stopping does not wait for the hung push (a pod's grace period is 30 s).
                started = time.monotonic()
                process.terminate()
                assert (process.wait(timeout=20), time.monotonic() - started < 5) == (0, True)
        # A receiver that closes every connection unanswered: each push fails; /metrics is
        # unaffected; one warning, not one a push.
        with socket.create_server(("127.0.0.1", 0)) as closer:
            pushes: list[None] = []

            def close_every_connection() -> None:
                while True:
                    try:
                        connection, _ = closer.accept()
                    except OSError:  # the listening socket closed: the test is over
                        return
                    connection.close()
                    pushes.append(None)

            threading.Thread(target=close_every_connection, daemon=True).start()
            dead = f"http://127.0.0.1:{closer.getsockname()[1]}/v1/metrics"
            log = tmp_path / "dead.log"
            command, base = _exporter(tmp_path, engine_url, dead, "--otlp-timeout", "0.5")
            with running(command, base + "/-/ready", log=log) as process:
                deadline = time.monotonic() + 30
                warning = f"OTLP push to {dead} failed; retrying every 1s"
                while warning not in log.read_text() or len(pushes) < 3:  # three failed pushes at least
                    assert time.monotonic() < deadline, (len(pushes), log.read_text())
                    time.sleep(0.1)
                response = httpx.get(base + "/metrics", timeout=10)
                assert (response.status_code, response.text.count("llm_exporter_target_up{")) == (200, 1)
                assert process.poll() is None
                ours = [line.split(" ", 2)[2] for line in log.read_text().splitlines() if "exporter.otlp msg=" in line]
                assert ours == [
                    f"level=INFO logger=infersight.exporter.otlp msg=pushing OTLP endpoint={dead} interval=1s",
                    f"level=WARNING logger=infersight.exporter.otlp msg={warning}"]
