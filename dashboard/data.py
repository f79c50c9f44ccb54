"""Data access for the UI: Prometheus and Alertmanager (through ``infersight.promapi``, one shared
client), or the exporters scraped directly into an in-memory history. Every figure comes from
``infersight.compare``, the functions ``infersight compare`` uses, so the UI and the CLI never
disagree. Each Prometheus data call has one deadline (``query_timeout_seconds``) over all of its
queries; a failure is a ``Result.error`` (or an ``APIError``) naming the URL and the reason."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from infersight.compare import (History, Row, Snapshot, SourceError, column_queries, embedded_rows,
                                parse_duration, prometheus_rows)
import infersight.plan as plan
from infersight.dashboard.settings import UISettings
from infersight.promapi import APIError, Reader
from infersight.exporter.schema import Label, M, Outcome
from infersight.alerts.slo_rules import (BUDGET_REMAINING_RECORD, OBJECTIVE_RECORD, REQUESTS_RECORD, burn_rate_record,
                                        error_ratio_record)
from infersight.alerts.slo_spec import Slo, SloSpec

HISTORY_SECONDS = 6 * 3600
LIVE_COLUMNS = ("output_tokens_per_second", "ttft_p50_seconds", "ttft_p99_seconds", "itl_p50_seconds",
                "kv_cache_usage_ratio", "requests_waiting", "prefill_p50_seconds", "decode_p50_seconds",
                "spec_decode_acceptance_ratio", "prompt_tokens_cached_ratio", "requests_waiting_deferred",
                "admission_rejections_per_second", "engine_awake_ratio", "gpu_utilization_ratio")


@dataclass
class Result:
    """What a page gets: the data, or why there is none (shown as an error, never a crash)."""

    value: object = None
    error: str | None = None


@dataclass(frozen=True)
class Connection:
    """How the UI reaches Prometheus and Alertmanager: the deadline per data call, TLS, credentials."""

    timeout: float = 10.0
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    bearer_token_file: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None

    @classmethod
    def of(cls, s: UISettings) -> Connection:
        def path(p: object) -> str | None:
            return str(p) if p else None
        return cls(s.query_timeout_seconds, path(s.ca_file), s.insecure_skip_verify, path(s.bearer_token_file),
                   s.basic_auth_username, path(s.basic_auth_password_file))

    def reader(self) -> Reader:
        return get_reader(self.ca_file, self.insecure_skip_verify, self.bearer_token_file, self.basic_auth_username,
                          self.basic_auth_password_file)


def _close(reader: Reader) -> None:
    reader.close()


@st.cache_resource(show_spinner=False, on_release=_close)
def get_reader(ca_file: str | None, insecure_skip_verify: bool, bearer_token_file: str | None,
               basic_auth_username: str | None, basic_auth_password_file: str | None) -> Reader:
    """The one HTTP client of this UI process (connection pool, TLS context), shared by every
    session and page; a new one only if the TLS or credential settings change."""
    return Reader(ca_file=ca_file, insecure_skip_verify=insecure_skip_verify, bearer_token_file=bearer_token_file,
                  basic_auth_username=basic_auth_username, basic_auth_password_file=basic_auth_password_file)


@st.cache_resource(show_spinner=False)
def get_history(urls: tuple[str, ...]) -> History:
    """One scrape history per set of exporters, shared by every session of this UI process."""
    return History(list(urls), max_age=HISTORY_SECONDS, timeout=3.0)


def refresh(history: History, every: float) -> dict[str, str]:
    """Scrape when the newest snapshot is older than ``every`` seconds; the exporters that failed."""
    newest = history.snapshots[-1].time if history.snapshots else 0.0
    if time.time() - newest >= every:
        return history.scrape().errors
    return history.snapshots[-1].errors


def comparison(prometheus_url: str | None, exporters: Sequence[str], window: str, refresh_seconds: float,
               connection: Connection = Connection()) -> Result:
    if prometheus_url:
        try:
            return Result(prometheus_rows(prometheus_url, window, timeout=connection.timeout,
                                          reader=connection.reader()))
        except SourceError as e:
            return Result([], str(e))
    if not exporters:
        return Result([], "No data source: set INFERSIGHT_UI_PROMETHEUS_URL or INFERSIGHT_UI_EXPORTERS.")
    history = get_history(tuple(exporters))
    errors = refresh(history, refresh_seconds)
    rows = embedded_rows(history.window(parse_duration(window)))
    message = "; ".join(f"{url} unreachable ({why})" for url, why in errors.items()) or None
    if not rows and message is None:
        message = "Waiting for a second scrape of the exporters to compute rates (one refresh interval)."
    return Result(rows, message)


_POINTS: dict[tuple[float, float, int], list[Row]] = {}  # (end, window, scrapes) -> rows: a past window never changes


def embedded_points(snapshots: Sequence[Snapshot], window_seconds: float, step_seconds: float
                    ) -> list[tuple[float, list[Row]]]:
    """Comparison rows at every ``step_seconds``, each over the ``window_seconds`` before it.
    Computed rows are kept, so a refresh computes only the new points."""
    if len(_POINTS) > 20000:
        _POINTS.clear()

    def rows(window: Sequence[Snapshot]) -> list[Row]:
        key = (window[-1].time, window_seconds, len(window))
        found = _POINTS.get(key)
        if found is None:
            found = _POINTS[key] = embedded_rows(window)
        return found

    return plan.embedded_points(snapshots, window_seconds, step_seconds, rows)


def prometheus_points(url: str, window: str, range_seconds: float, step_seconds: float,
                      connection: Connection = Connection(), columns: Sequence[str] = LIVE_COLUMNS
                      ) -> list[tuple[float, list[Row]]]:
    """The same columns from Prometheus range queries (PromQL of ``infersight.compare.column_queries``),
    all within one deadline. Raises ``APIError``."""
    end = time.time()
    return plan.prometheus_points(connection.reader(), url, window, end - range_seconds, end, step_seconds, columns,
                                  connection.timeout)


def timeseries(prometheus_url: str | None, exporters: Sequence[str], window: str, range_seconds: float,
               step_seconds: float, refresh_seconds: float, connection: Connection = Connection(),
               columns: Sequence[str] = LIVE_COLUMNS) -> Result:
    if prometheus_url:
        try:
            return Result(prometheus_points(prometheus_url, window, range_seconds, step_seconds, connection, columns))
        except APIError as e:
            return Result([], str(e))
    if not exporters:
        return Result([], "No data source: set INFERSIGHT_UI_PROMETHEUS_URL or INFERSIGHT_UI_EXPORTERS.")
    history = get_history(tuple(exporters))
    errors = refresh(history, refresh_seconds)
    end = history.snapshots[-1].time if history.snapshots else time.time()
    snapshots = [s for s in history.snapshots if s.time >= end - range_seconds - parse_duration(window)]
    points = [p for p in embedded_points(snapshots, parse_duration(window), step_seconds) if p[0] >= end - range_seconds]
    message = "; ".join(f"{url} unreachable ({why})" for url, why in errors.items()) or None
    return Result(points, message)


def firing_alerts(alertmanager_url: str | None, connection: Connection = Connection()) -> Result:
    if not alertmanager_url:
        return Result(None, None)
    try:
        return Result(connection.reader().alerts(alertmanager_url, timeout=connection.timeout))
    except APIError as e:
        return Result(None, str(e))


# --- SLOs ------------------------------------------------------------------------------------------------

@dataclass
class SloFigure:
    slo: str
    engine: str
    model: str
    objective: float
    attainment: float | None
    burn_rate: float | None
    budget_remaining: float | None
    # Where the rules keep them apart (Kubernetes target labels): one SLO per team and cluster.
    namespace: str = ""
    cluster: str = ""
    # Seconds of data the figures rest on: under the SLO window (30 d), attainment and budget are
    # over this span only.
    span_seconds: float | None = None


def _span_query() -> str:
    """Seconds since the first sample of the SLI's request rate Prometheus holds, per SLO and engine
    (within 30 d): the coarse 1-h subquery reaches back 30 days, the 1-min one places a start
    within the last hour; the older of the two."""
    by = "slo, engine, model, namespace, cluster"
    first = " or ".join(f'label_replace(min_over_time(timestamp({REQUESTS_RECORD})[{span}]), "res", "{res}", "", "")'
                        for span, res in (("30d:1h", "h"), ("1h:1m", "m")))
    return f"time() - min by ({by}) ({first})"


def slo_figures_prometheus(url: str, spec: SloSpec, burn_window: str = "1h",
                           connection: Connection = Connection()) -> list[SloFigure]:
    """From the recording rules, all five queries within one deadline. Raises ``APIError``."""
    records = {"errors": error_ratio_record("30d"), "burn": burn_rate_record(burn_window),
               "budget": BUDGET_REMAINING_RECORD, "objective": OBJECTIVE_RECORD, "span": _span_query()}
    answers = connection.reader().query(url, records, timeout=connection.timeout)

    def by_key(name: str) -> dict[tuple[str, ...], float]:
        return {tuple(r.labels.get(label, "") for label in ("slo", "engine", "model", "namespace", "cluster")): r.value
                for r in answers[name]}

    errors = by_key("errors")
    burn = by_key("burn")
    budget = by_key("budget")
    span = by_key("span")
    objective = {k[0]: v for k, v in by_key("objective").items()}
    out = []
    for key in sorted(set(errors) | set(burn) | set(budget)):
        slo = next((s for s in spec.slos if s.name == key[0]), None)
        if slo is None:
            continue
        error = _finite(errors.get(key))
        out.append(SloFigure(key[0], key[1], key[2], objective.get(key[0], slo.objective),
                             None if error is None else 1 - error,
                             _finite(burn.get(key)), _finite(budget.get(key)), namespace=key[3], cluster=key[4],
                             span_seconds=_finite(span.get(key))))
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def slo_figures_embedded(snapshots: Sequence[Snapshot], spec: SloSpec) -> list[SloFigure]:
    """Attainment and burn rate over the scrape history (its whole span); the 30-day budget needs
    Prometheus and is n/a here."""
    from infersight.compare import increase

    if len(snapshots) < 2:
        return []
    out = []
    for slo in spec.slos:
        good: dict[tuple[str, str], float] = {}
        total: dict[tuple[str, str], float] = {}
        for name, is_good in _sli_series(slo):
            values: dict[tuple[tuple[str, str], ...], list[float]] = {}
            for s in snapshots:
                for labels, value in s.series.get(name, ()):
                    values.setdefault(labels, []).append(value)
            for labels, series in values.items():
                d = dict(labels)
                if not is_good(d, slo) and not _counts_total(d, slo, name):
                    continue
                key = (d.get(Label.ENGINE.value, ""), d.get(Label.MODEL.value, ""))
                amount = increase(series)
                if is_good(d, slo):
                    good[key] = good.get(key, 0.0) + amount
                if _counts_total(d, slo, name):
                    total[key] = total.get(key, 0.0) + amount
        for key in sorted(total):
            if total[key] <= 0:
                continue
            attainment = good.get(key, 0.0) / total[key]
            out.append(SloFigure(slo.name, key[0], key[1], slo.objective, attainment,
                                 (1 - attainment) / (1 - slo.objective), None,
                                 span_seconds=snapshots[-1].time - snapshots[0].time))
    return out


def _sli_series(slo: Slo):
    latency = slo.sli.latency
    if latency is not None:
        threshold = latency.threshold_seconds

        def good_bucket(d: dict[str, str], _: Slo) -> bool:
            return "le" in d and d["le"] != "+Inf" and math.isclose(float(d["le"]), threshold)
        return [(f"{latency.histogram}_bucket", good_bucket)]

    def success(d: dict[str, str], _: Slo) -> bool:
        return d.get(Label.OUTCOME.value) == Outcome.SUCCESS.value
    return [(M.REQUESTS.name, success)]


def _counts_total(d: dict[str, str], slo: Slo, name: str) -> bool:
    if slo.sli.latency is not None:
        return d.get("le") == "+Inf"
    return d.get(Label.OUTCOME.value) in (Outcome.SUCCESS.value, Outcome.ERROR.value)


# --- alerts over a range, for the Live charts ---------------------------------------------------------------

FIRING = 'ALERTS{alertstate="firing"}'  # Prometheus' own series of its alerts, one per alert and labels


@dataclass(frozen=True)
class AlertSpan:
    name: str
    engine: str  # "" when the alert names no engine
    start: float
    end: float


def alert_spans(url: str, range_seconds: float, step_seconds: float,
                connection: Connection = Connection()) -> list[AlertSpan]:
    """The spans over the last ``range_seconds`` during which an alert was firing (from
    ``ALERTS``, at ``step_seconds`` resolution): consecutive steps make one span. Raises ``APIError``."""
    end = time.time()
    answers = connection.reader().query_range(url, {"alerts": FIRING}, start=end - range_seconds, end=end,
                                              step=step_seconds, timeout=connection.timeout)
    spans = []
    for series in answers["alerts"]:
        name, engine = series.labels.get("alertname", ""), series.labels.get(Label.ENGINE.value, "")
        times = sorted(at for at, _ in series.points)
        first = previous = None
        for at in times:
            if previous is not None and at - previous > step_seconds * 1.5:
                spans.append(AlertSpan(name, engine, first, previous + step_seconds))  # type: ignore[arg-type]
                first = None
            first = at if first is None else first
            previous = at
        if first is not None:
            spans.append(AlertSpan(name, engine, first, previous + step_seconds))  # type: ignore[operator]
    return sorted(spans, key=lambda s: (s.start, s.name, s.engine))
