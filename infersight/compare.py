"""The engine comparison: one row per engine/model/target, from Prometheus or from scraping the
exporters directly (the embedded source), computed the same way in both.

Semantics (what Prometheus would answer for the same window):
- rates are the per-second increase over the window; counter resets inside it are handled as
  Prometheus' ``increase`` handles them (a drop means the counter restarted from zero);
- quantiles are ``histogram_quantile`` over the window's bucket increases (``infersight.quantile``);
- gauges are averages over the window's samples (``avg_over_time``);
- GPU utilization, cost and energy belong to a target, so every model row of a target shows the
  target's; cost and energy per token divide the target's dollars and GPU joules (the increase of
  its GPUs' energy counters) by the target's tokens.
Embedded mode differs in one way only: Prometheus' ``rate`` extrapolates to the window's edges,
the embedded source divides by the span between its first and last scrape.

``infersight compare`` prints the rows; the web UI calls the same functions.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import math
import ssl
import time
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from infersight.quantile import histogram_quantile
from infersight.exporter.schema import Label, M, Outcome

if TYPE_CHECKING:
    import httpx

    from infersight.promapi import Reader

COLUMNS = ("engine", "model", "target", "output_tokens_per_second", "input_tokens_per_second", "ttft_p50_seconds",
           "ttft_p99_seconds", "itl_p50_seconds", "itl_p99_seconds", "e2e_p99_seconds", "kv_cache_usage_ratio",
           "gpu_utilization_ratio", "requests_running", "requests_waiting", "error_ratio", "hourly_cost_dollars",
           "cost_per_million_output_tokens_dollars", "cost_per_million_tokens_dollars",
           "energy_per_million_output_tokens_joules", "prefill_p50_seconds", "decode_p50_seconds",
           "spec_decode_acceptance_ratio", "prompt_tokens_cached_ratio", "requests_waiting_deferred",
           "admission_rejections_per_second", "engine_awake_ratio")
# The columns after the cost and energy ones: per row, straight from one query each.
SIGNAL_COLUMNS = COLUMNS[COLUMNS.index("energy_per_million_output_tokens_joules") + 1:]

Row = dict[str, str | float | None]
LabelSet = tuple[tuple[str, str], ...]
RowKey = tuple[str, str, str]  # engine, model, target
T = TypeVar("T")


class SourceError(Exception):
    """A data source could not be read; the message says which and why."""


# --- the embedded source: scrapes of the exporters, kept in memory ---------------------------------

@dataclass(frozen=True)
class _Failed:
    """Why one exporter's answer could not be had."""

    reason: str


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` to completion on a fresh event loop: in this thread, or in a helper thread
    when this one already runs a loop (a caller inside async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="infersight-history") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@dataclass
class Snapshot:
    time: float
    series: dict[str, list[tuple[LabelSet, float]]]  # sample name -> (labels, value)
    errors: dict[str, str] = field(default_factory=dict)  # exporter URL -> why it could not be read


def parse_snapshot(texts: Iterable[str], at: float) -> Snapshot:
    series: dict[str, list[tuple[LabelSet, float]]] = defaultdict(list)
    for text in texts:
        for name, samples in _parse_exposition(text).items():
            series[name].extend(samples)
    return Snapshot(at, dict(series))


def _parse_exposition(text: str) -> dict[str, list[tuple[LabelSet, float]]]:
    """One exporter's answer: sample name -> (labels, value). ValueError if it is not the text format."""
    from prometheus_client.parser import text_string_to_metric_families

    series: dict[str, list[tuple[LabelSet, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            le = s.labels.get("le")
            if le is not None and s.name.endswith("_bucket"):
                try:
                    float(le)  # the comparison reads bucket bounds as numbers
                except ValueError:
                    raise ValueError(f"the bucket bound le={_printable(repr(le), 40)} of {s.name} is not a "
                                     "number") from None
            series[s.name].append((tuple(sorted(s.labels.items())), s.value))
    return series


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every scrape: httpx would build (and load CAs into) a new one
    per request, which cost more CPU than the scrape."""
    return ssl.create_default_context()


MAX_SCRAPE_BYTES = 32 * 2**20  # the largest exporter answer read (decompressed), as the exporter's own cap
_CONNECT_SLACK = 0.05  # seconds: connecting gives up this much before the round's deadline


def _printable(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class History:
    """Scrapes of a set of exporters, at most ``max_age`` seconds old (the UI's and demo's
    short memory when no Prometheus runs).

    A scrape asks every exporter at once, all within one deadline of ``timeout`` seconds over
    everything: connecting, TLS and every byte of every answer. (httpx's own timeouts are per
    socket operation: an exporter that sends a byte every 2 s never trips them.) An exporter that
    is down, late or answers something that is not the text format is an entry of the snapshot's
    ``errors``, never an exception; the others' series are kept."""

    def __init__(self, urls: Sequence[str], max_age: float = 3600.0, timeout: float = 5.0,
                 max_answer_bytes: int = MAX_SCRAPE_BYTES):
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError("timeout must be a finite number > 0")
        self.urls = list(urls)
        self.max_age = max_age
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.snapshots: deque[Snapshot] = deque()

    def scrape(self, at: float | None = None) -> Snapshot:
        answers = _run_coroutine(self._fetch_all)
        series: dict[str, list[tuple[LabelSet, float]]] = defaultdict(list)
        errors: dict[str, str] = {}
        for url, answer in zip(self.urls, answers, strict=True):
            if isinstance(answer, _Failed):
                errors[url] = answer.reason
                continue
            try:
                parsed = _parse_exposition(answer.decode("utf-8"))
            except UnicodeDecodeError:
                errors[url] = "the answer is not UTF-8 text"
                continue
            except Exception as e:  # noqa: BLE001 - whatever the parser makes of a bad answer is that URL's error
                errors[url] = f"the answer is not the Prometheus text format ({_printable(str(e), 120)})"
                continue
            for name, samples in parsed.items():
                series[name].extend(samples)
        snapshot = Snapshot(time.time() if at is None else at, dict(series), errors)
        self.add(snapshot)
        return snapshot

    async def _fetch_all(self) -> list[bytes | _Failed]:
        import httpx

        deadline = asyncio.get_running_loop().time() + self.timeout
        # No per-operation timeouts: the round's deadline bounds everything at once.
        async with httpx.AsyncClient(verify=_tls_context(), follow_redirects=False, timeout=None) as client:
            answers = await asyncio.gather(*(self._fetch(client, url, deadline) for url in self.urls),
                                           return_exceptions=True)
        # Anything _fetch did not foresee is that URL's error too, never the whole round's.
        return [_Failed(_printable(f"{type(a).__name__}: {a}", 160)) if isinstance(a, BaseException) else a
                for a in answers]

    async def _fetch(self, client: httpx.AsyncClient, url: str, deadline: float) -> bytes | _Failed:
        import httpx

        from infersight.promapi import _status_text, _transport_reason

        body = bytearray()
        late = _Failed(f"no complete answer within {self.timeout:g} s")
        # Connecting (TCP and TLS) gets its own timeout just before the deadline: httpcore,
        # cancelled inside a TLS handshake, leaves that socket to the garbage collector.
        connect = max(deadline - asyncio.get_running_loop().time() - _CONNECT_SLACK, 0.001)
        try:
            async with asyncio.timeout_at(deadline), client.stream(
                    "GET", url, timeout=httpx.Timeout(None, connect=connect)) as response:
                if not 200 <= response.status_code < 300:
                    return _Failed(_status_text(response.status_code))
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_answer_bytes:
                        return _Failed(f"the answer is larger than {self.max_answer_bytes:,} bytes")
        except (TimeoutError, httpx.TimeoutException):
            return late
        except httpx.HTTPError as e:
            return _Failed(_transport_reason(e))
        except (httpx.InvalidURL, OSError) as e:
            return _Failed(_printable(str(e) or type(e).__name__, 120))
        return bytes(body)

    def add(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)
        while self.snapshots and self.snapshots[0].time < snapshot.time - self.max_age:
            self.snapshots.popleft()

    def window(self, seconds: float, end: float | None = None) -> list[Snapshot]:
        if not self.snapshots:
            return []
        end = self.snapshots[-1].time if end is None else end
        return [s for s in self.snapshots if end - seconds <= s.time <= end]


def increase(values: Sequence[float]) -> float:
    """Prometheus' increase without extrapolation: a drop is a reset, counted from zero."""
    total = 0.0
    for previous, current in zip(values, values[1:], strict=False):
        total += current - previous if current >= previous else current
    return total


def _select(snapshot: Snapshot, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(labels), value) for labels, value in snapshot.series.get(name, ())]


def _key(labels: dict[str, str]) -> RowKey:
    return labels.get(Label.ENGINE, ""), labels.get(Label.MODEL, ""), labels.get(Label.TARGET, "")


def _series_over(window: Sequence[Snapshot], name: str, group: tuple[str, ...]
                 ) -> dict[tuple[str, ...], list[list[float]]]:
    """For each series of ``name``: its values across the window, grouped by the ``group`` labels."""
    by_series: dict[LabelSet, list[float]] = defaultdict(list)
    for snapshot in window:
        for labels, value in snapshot.series.get(name, ()):
            by_series[labels].append(value)
    grouped: dict[tuple[str, ...], list[list[float]]] = defaultdict(list)
    for labels, values in by_series.items():
        d = dict(labels)
        grouped[tuple(d.get(g, "") for g in group)].append(values)
    return grouped


_ROW = (Label.ENGINE.value, Label.MODEL.value, Label.TARGET.value)
CLUSTER_LABEL = "cluster"  # Prometheus' external label in a multi-cluster store (alerts.slo_rules.WORKLOAD_LABELS)
_TARGET = (Label.ENGINE.value, Label.TARGET.value)


def embedded_rows(window: Sequence[Snapshot]) -> list[Row]:
    """The comparison from a window of exporter scrapes (at least two)."""
    if len(window) < 2:
        return []
    span = window[-1].time - window[0].time
    if span <= 0:
        return []

    def rate(name: str, group: tuple[str, ...] = _ROW, where: tuple[str, str] | None = None
             ) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = defaultdict(float)
        by_series: dict[LabelSet, list[float]] = defaultdict(list)
        for snapshot in window:
            for labels, value in snapshot.series.get(name, ()):
                by_series[labels].append(value)
        for labels, values in by_series.items():
            d = dict(labels)
            if where is not None and d.get(where[0]) != where[1]:
                continue
            out[tuple(d.get(g, "") for g in group)] += increase(values) / span
        return out

    def quantiles(metric: str, qs: Sequence[float]) -> dict[RowKey, list[float]]:
        buckets: dict[RowKey, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        by_series: dict[LabelSet, list[float]] = defaultdict(list)
        for snapshot in window:
            for labels, value in snapshot.series.get(f"{metric}_bucket", ()):
                by_series[labels].append(value)
        for labels, values in by_series.items():
            d = dict(labels)
            buckets[_key(d)][float(d["le"])] += increase(values)
        return {key: [histogram_quantile(q, b.items()) for q in qs] for key, b in buckets.items()}

    def average(name: str, group: tuple[str, ...] = _ROW, combine: str = "sum",
                where: tuple[str, str] | None = None) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        series = window if where is None else [
            Snapshot(s.time, {name: [(labels, v) for labels, v in s.series.get(name, ())
                                     if dict(labels).get(where[0]) == where[1]]}) for s in window]
        for key, series_values in _series_over(series, name, group).items():
            means = [sum(v) / len(v) for v in series_values if v]
            out[key] = sum(means) if combine == "sum" else sum(means) / len(means)
        return out

    def latest(name: str, group: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for labels, value in window[-1].series.get(name, ()):
            d = dict(labels)
            out[tuple(d.get(g, "") for g in group)] = out.get(tuple(d.get(g, "") for g in group), 0.0) + value
        return out

    output = rate(M.GENERATION_TOKENS.name)
    prompt = rate(M.PROMPT_TOKENS.name)
    target_tokens_out = rate(M.GENERATION_TOKENS.name, _TARGET)
    target_tokens_in = rate(M.PROMPT_TOKENS.name, _TARGET)
    errors = rate(M.REQUESTS.name, where=(Label.OUTCOME.value, Outcome.ERROR.value))
    finished = rate(M.REQUESTS.name)
    ttft = quantiles(M.TIME_TO_FIRST_TOKEN.name, (0.5, 0.99))
    itl = quantiles(M.INTER_TOKEN_LATENCY.name, (0.5, 0.99))
    e2e = quantiles(M.REQUEST_DURATION.name, (0.99,))
    kv = average(M.KV_CACHE_USAGE_RATIO.name, combine="mean")
    running = average(M.REQUESTS_RUNNING.name)
    waiting = average(M.REQUESTS_WAITING.name)
    gpu = average(M.GPU_UTILIZATION_RATIO.name, _TARGET, combine="mean")
    cost = latest(M.HOURLY_COST_DOLLARS.name, _TARGET)
    energy = rate(M.GPU_ENERGY_JOULES.name, _TARGET)  # watts: joules per second, all the target's GPUs
    prefill = quantiles(M.REQUEST_PREFILL.name, (0.5,))
    decode = quantiles(M.REQUEST_DECODE.name, (0.5,))
    accepted, drafted = rate(M.SPEC_DECODE_ACCEPTED_TOKENS.name), rate(M.SPEC_DECODE_DRAFT_TOKENS.name)
    cached = rate(M.PROMPT_TOKENS_CACHED.name)
    deferred = average(M.REQUESTS_WAITING_BY_REASON.name, where=(Label.REASON.value, "deferred"))
    rejections = rate(M.ADMISSION_REJECTIONS.name)
    awake = average(M.ENGINE_AWAKE_RATIO.name, combine="mean")

    keys: set[RowKey] = set()
    for snapshot in window:
        for name in (M.GENERATION_TOKENS.name, M.REQUESTS_RUNNING.name, M.REQUESTS.name,
                     f"{M.TIME_TO_FIRST_TOKEN.name}_count", M.KV_CACHE_USAGE_RATIO.name, M.REQUESTS_WAITING.name):
            for labels, _ in snapshot.series.get(name, ()):
                key = _key(dict(labels))
                if all(key):
                    keys.add(key)
    rows = []
    for key in sorted(keys):
        target = (key[0], key[2])
        rows.append(_row(key, output.get(key), prompt.get(key), ttft.get(key, [None, None]),
                         itl.get(key, [None, None]), e2e.get(key, [None])[0], kv.get(key), gpu.get(target),
                         running.get(key), waiting.get(key),
                         _ratio(errors.get(key), finished.get(key)), cost.get(target),
                         target_tokens_out.get(target), target_tokens_in.get(target), energy.get(target),
                         [prefill.get(key, [None])[0], decode.get(key, [None])[0],
                          _ratio(accepted.get(key), drafted.get(key)) if key in accepted else None,
                          _ratio(cached.get(key), prompt.get(key)) if key in cached else None,
                          deferred.get(key), rejections.get(key), awake.get(key)]))
    return rows


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def _clean(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _row(key: RowKey, output: float | None, prompt: float | None, ttft: Sequence[float | None],
         itl: Sequence[float | None], e2e_p99: float | None, kv: float | None, gpu: float | None,
         running: float | None, waiting: float | None, error_ratio: float | None, hourly: float | None,
         target_output: float | None, target_input: float | None, watts: float | None = None,
         signals: Sequence[float | None] = ()) -> Row:
    def per_million(tokens_per_second: float | None) -> float | None:
        if hourly is None or not tokens_per_second:
            return None
        return hourly / (tokens_per_second * 3600) * 1e6

    total = None if target_output is None and target_input is None else (target_output or 0) + (target_input or 0)
    # Joules per second over tokens per second: joules per token, times a million.
    energy = None if watts is None or not target_output else watts / target_output * 1e6
    values: list[float | None] = [output, prompt, ttft[0], ttft[1], itl[0], itl[1], e2e_p99, kv, gpu, running,
                                  waiting, error_ratio, hourly, per_million(target_output), per_million(total), energy,
                                  *(list(signals) or [None] * len(SIGNAL_COLUMNS))]
    row: Row = {"engine": key[0], "model": key[1], "target": key[2]}
    for column, value in zip(COLUMNS[3:], values, strict=True):
        row[column] = _clean(value)
    return row


# --- the Prometheus source -------------------------------------------------------------------------

# Columns asked in one query each would make one call 24 queries, over the reader's 16 connections:
# these share a query, each series marked with its column in this label (PromQL's label_replace),
# so that a call stays at 16 queries, all in flight at once.
BUNDLE_LABEL = "infersight_column"
BUNDLES = {
    "target_tokens": ("target_output", "target_input"),
    "signals": ("target_energy", *SIGNAL_COLUMNS),
}


def promql(window: str) -> dict[str, str]:
    """The queries one comparison asks: a column's own, or a bundle of several (``BUNDLES``)."""
    queries = column_queries(window)
    bundled = {column for columns in BUNDLES.values() for column in columns}
    out = {name: query for name, query in queries.items() if name not in bundled}
    for name, columns in BUNDLES.items():
        out[name] = " or ".join(f'label_replace({queries[c]}, "{BUNDLE_LABEL}", "{c}", "", "")' for c in columns)
    return out


def unbundle(answers: dict[str, list]) -> dict[str, list]:
    """The answers of ``promql``'s queries per column (bundles split by ``BUNDLE_LABEL``)."""
    out = {name: samples for name, samples in answers.items() if name not in BUNDLES}
    for name, columns in BUNDLES.items():
        for column in columns:
            out[column] = [s for s in answers.get(name, ()) if s.labels.get(BUNDLE_LABEL) == column]
    return out


def column_queries(window: str) -> dict[str, str]:
    """The query behind each column (recording rules are not assumed: these run on any Prometheus).
    Grouped by ``cluster`` too: a store fed by several clusters (remote_write, each Prometheus its
    own external label) keeps same-named targets apart; without the label the grouping is as before."""
    by = "cluster, engine, model, target"
    tby = "cluster, engine, target"

    def q(metric: str, quantile: float) -> str:
        return (f"histogram_quantile({quantile}, sum by ({by}, le) (rate({metric}_bucket[{window}])))")

    return {
        "output_tokens_per_second": f"sum by ({by}) (rate({M.GENERATION_TOKENS.name}[{window}]))",
        "input_tokens_per_second": f"sum by ({by}) (rate({M.PROMPT_TOKENS.name}[{window}]))",
        "ttft_p50_seconds": q(M.TIME_TO_FIRST_TOKEN.name, 0.5),
        "ttft_p99_seconds": q(M.TIME_TO_FIRST_TOKEN.name, 0.99),
        "itl_p50_seconds": q(M.INTER_TOKEN_LATENCY.name, 0.5),
        "itl_p99_seconds": q(M.INTER_TOKEN_LATENCY.name, 0.99),
        "e2e_p99_seconds": q(M.REQUEST_DURATION.name, 0.99),
        "kv_cache_usage_ratio": f"avg by ({by}) (avg_over_time({M.KV_CACHE_USAGE_RATIO.name}[{window}]))",
        "requests_running": f"sum by ({by}) (avg_over_time({M.REQUESTS_RUNNING.name}[{window}]))",
        "requests_waiting": f"sum by ({by}) (avg_over_time({M.REQUESTS_WAITING.name}[{window}]))",
        "errors": f'sum by ({by}) (rate({M.REQUESTS.name}{{outcome="{Outcome.ERROR.value}"}}[{window}]))',
        "finished": f"sum by ({by}) (rate({M.REQUESTS.name}[{window}]))",
        "gpu_utilization_ratio": f"avg by ({tby}) (avg_over_time({M.GPU_UTILIZATION_RATIO.name}[{window}]))",
        "hourly_cost_dollars": f"max by ({tby}) ({M.HOURLY_COST_DOLLARS.name})",
        "target_output": f"sum by ({tby}) (rate({M.GENERATION_TOKENS.name}[{window}]))",
        "target_input": f"sum by ({tby}) (rate({M.PROMPT_TOKENS.name}[{window}]))",
        "target_energy": f"sum by ({tby}) (rate({M.GPU_ENERGY_JOULES.name}[{window}]))",
        "prefill_p50_seconds": q(M.REQUEST_PREFILL.name, 0.5),
        "decode_p50_seconds": q(M.REQUEST_DECODE.name, 0.5),
        "spec_decode_acceptance_ratio": (f"sum by ({by}) (rate({M.SPEC_DECODE_ACCEPTED_TOKENS.name}[{window}]))"
                                         f" / (sum by ({by}) (rate({M.SPEC_DECODE_DRAFT_TOKENS.name}[{window}])) > 0)"),
        "prompt_tokens_cached_ratio": (f"sum by ({by}) (rate({M.PROMPT_TOKENS_CACHED.name}[{window}]))"
                                       f" / (sum by ({by}) (rate({M.PROMPT_TOKENS.name}[{window}])) > 0)"),
        "requests_waiting_deferred": (f'sum by ({by}) (avg_over_time({M.REQUESTS_WAITING_BY_REASON.name}'
                                      f'{{{Label.REASON.value}="deferred"}}[{window}]))'),
        "admission_rejections_per_second": f"sum by ({by}) (rate({M.ADMISSION_REJECTIONS.name}[{window}]))",
        "engine_awake_ratio": f"avg by ({by}) (avg_over_time({M.ENGINE_AWAKE_RATIO.name}[{window}]))",
    }


def cluster_target(labels: dict[str, str]) -> dict[str, str]:
    """A series' labels with its target named ``cluster/target`` where it has a ``cluster`` label
    (a global view of several clusters); unchanged where it has none (one cluster, one Prometheus)."""
    cluster = labels.get(CLUSTER_LABEL)
    if not cluster:
        return labels
    return {**labels, Label.TARGET.value: f"{cluster}/{labels.get(Label.TARGET.value, '')}"}


def prometheus_rows(url: str, window: str = "5m", timeout: float = 10.0, at: float | None = None,
                    reader: Reader | None = None) -> list[Row]:
    """The comparison from Prometheus: every query of ``promql`` at once, all within ``timeout``
    seconds (one deadline for the whole table). ``reader``: a shared client (the UI's); by
    default one is made and closed here."""
    from infersight.promapi import APIError, Reader

    own = reader is None
    client = Reader() if reader is None else reader
    try:
        answers = unbundle(client.query(url, promql(window), timeout=timeout, at=at))
    except APIError as e:
        raise SourceError(str(e)) from None
    finally:
        if own:
            client.close()
    results: dict[str, dict[tuple[str, ...], float]] = {}
    for column, samples in answers.items():
        group = _TARGET if column in ("gpu_utilization_ratio", "hourly_cost_dollars", "target_output",
                                      "target_input", "target_energy") else _ROW
        results[column] = {tuple(cluster_target(s.labels).get(g, "") for g in group): s.value for s in samples}
    keys: set[RowKey] = set()
    for column in ("output_tokens_per_second", "requests_running", "finished", "kv_cache_usage_ratio",
                   "requests_waiting", "ttft_p50_seconds"):
        keys |= {k for k in results[column] if all(k)}  # type: ignore[misc]
    rows = []
    for key in sorted(keys):
        target = (key[0], key[2])
        r = {c: results[c].get(key) for c in results}
        rows.append(_row(key, r["output_tokens_per_second"], r["input_tokens_per_second"],
                         [r["ttft_p50_seconds"], r["ttft_p99_seconds"]], [r["itl_p50_seconds"], r["itl_p99_seconds"]],
                         r["e2e_p99_seconds"], r["kv_cache_usage_ratio"], results["gpu_utilization_ratio"].get(target),
                         r["requests_running"], r["requests_waiting"], _ratio(r["errors"], r["finished"]),
                         results["hourly_cost_dollars"].get(target), results["target_output"].get(target),
                         results["target_input"].get(target), results["target_energy"].get(target),
                         [r[column] for column in SIGNAL_COLUMNS]))
    return rows


# --- output -------------------------------------------------------------------------------------------

def parse_duration(text: str) -> float:
    """Prometheus durations: 30s, 5m, 1h, 1h30m."""
    import re

    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 5m, 1h")
    return sum(float(n) * units[u] for n, u in parts)


def to_json(rows: list[Row]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


_TABLE = (("engine", "engine", "{}"), ("model", "model", "{}"), ("target", "target", "{}"),
          ("output_tokens_per_second", "out tok/s", "{:.0f}"), ("ttft_p50_seconds", "TTFT p50", "ms"),
          ("ttft_p99_seconds", "TTFT p99", "ms"), ("itl_p50_seconds", "ITL p50", "ms"),
          ("e2e_p99_seconds", "e2e p99", "{:.2f}s"), ("kv_cache_usage_ratio", "KV", "%"),
          ("gpu_utilization_ratio", "GPU", "%"), ("requests_waiting", "queue", "{:.1f}"),
          ("error_ratio", "errors", "%2"), ("hourly_cost_dollars", "$/h", "{:.2f}"),
          ("cost_per_million_output_tokens_dollars", "$/1M out", "{:.2f}"),
          ("energy_per_million_output_tokens_joules", "J/1M out", "{:,.0f}"))


def _cell(value: str | float | None, spec: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if spec == "ms":
        return f"{value * 1000:.0f} ms"
    if spec == "%":
        return f"{value:.0%}"
    if spec == "%2":
        return f"{value:.2%}"
    return spec.format(value)


def to_table(rows: list[Row]) -> str:
    header = [title for _, title, _ in _TABLE]
    body = [[_cell(row.get(column), spec) for column, _, spec in _TABLE] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths,
                                                                                           strict=True)))]
    for r in body:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                 strict=True))))
    return "\n".join(lines) + "\n"


FORMATTERS = {"json": to_json, "csv": to_csv, "table": to_table}
