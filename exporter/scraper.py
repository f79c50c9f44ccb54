"""Scrape every configured target concurrently and report what each one gave.

One ``TargetScraper`` per target keeps what must outlive a scrape: its error counters, its
detected engine and whether it was up (to log changes once, not every scrape). Concurrent
exporter scrapes share a target fetch that is already in flight instead of doubling the load on
the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path


from infersight.exporter.adapters import ADAPTERS, DCGM, detect
from infersight.exporter.cost import hourly_cost_dollars
from infersight.exporter.fetch import Credentials, FetchClient, Payload, ScrapeError, fetch
from infersight.exporter.normalize import DEFAULT_CAPS, Caps, Normalized, Plan, compile_plan, normalize
from infersight.exporter.nvml import NvmlReader, NvmlUnavailable
from infersight.exporter.parse import DEFAULT_CACHE_BYTES, Family, Layout, ParseError, SeriesCache, parse
from infersight.exporter.program import parse_and_normalize
from infersight.exporter.render import TargetReport
from infersight.exporter.schema import (ENGINE_SIGNALS, UNDETECTED_ENGINE, Engine, GpuSource, Kind, Label,
                                        ScrapeErrorReason, UnifiedMetric)
from infersight.exporter.settings import Auth, ResolvedTarget

log = logging.getLogger("infersight.exporter")

_DCGM_PLAN = compile_plan(DCGM)
_DCGM_DEVICE_LABELS = ("UUID", "uuid", "gpu")


def _credentials(auth: Auth) -> Credentials:
    """Read per scrape: mounted token files (Kubernetes) rotate."""
    try:
        if auth.bearer_token is not None:
            return Credentials.bearer(auth.bearer_token.get_secret_value())
        if auth.bearer_token_file is not None:
            return Credentials.bearer(Path(auth.bearer_token_file).read_text(encoding="utf-8"))
        if auth.basic_auth is not None:
            basic = auth.basic_auth
            password = (basic.password.get_secret_value() if basic.password is not None
                        else Path(basic.password_file).read_text(encoding="utf-8").rstrip("\n"))  # type: ignore[arg-type]
            return Credentials.basic(basic.username, password)
    except OSError as exc:
        raise ScrapeError(ScrapeErrorReason.CONNECT, f"cannot read credentials file: {exc.strerror}") from None
    return Credentials()


def _only_devices(families: list[Family], devices: frozenset[str]) -> list[Family]:
    if not devices:
        return families
    return [Family(f.name, f.type, f.help,
                   [s for s in f.samples if any(s[1].get(label) in devices for label in _DCGM_DEVICE_LABELS)])
            for f in families]


class MonotonicGuard:
    """Keeps counters that an adapter computes with a subtraction from going down.

    SGLang's successes are its finished requests minus its aborted ones, and SGLang counts an
    abort per abort call rather than per request: the difference can shrink (or fall below 0)
    while nothing was reset, which Prometheus would read as a counter reset and a burst. Each
    such series is held at its highest value (and at least 0) until the target really restarts:
    the sum of the metric's series for the model (here, the finished requests) goes down."""

    def __init__(self, plan: Plan):
        self.metrics = tuple(metric for metric, parts in plan.parts.items() if metric.kind is Kind.COUNTER
                             and any(row.sign < 0 for aliases in parts for row in aliases))
        self.highest: dict[tuple[UnifiedMetric, tuple[str, ...]], float] = {}
        self.totals: dict[tuple[UnifiedMetric, str], float] = {}

    def apply(self, normalized: Normalized) -> None:
        for metric in self.metrics:
            series = normalized.series.get(metric)
            if not series:
                continue
            totals: dict[str, float] = {}
            for key, value in series.items():
                totals[key[0]] = totals.get(key[0], 0.0) + value  # type: ignore[operator]
            for unit, total in totals.items():
                if total < self.totals.get((metric, unit), 0.0):  # a restart: start over
                    for key in [k for k in self.highest if k[0] is metric and k[1][0] == unit]:
                        del self.highest[key]
                self.totals[(metric, unit)] = total
            for key, value in series.items():
                if value != value:  # NaN passes through
                    continue
                floor = self.highest.get((metric, key), 0.0)
                if value < floor:  # type: ignore[operator]
                    series[key] = value = floor
                self.highest[(metric, key)] = value  # type: ignore[assignment]
        # Models come and go (churned names): keep only the series this payload has once the
        # floors outnumber them, so they stay bounded by the model cap.
        if len(self.highest) > 4 * sum(len(normalized.series.get(m, ())) for m in self.metrics) + 1024:
            self.highest = {k: v for k, v in self.highest.items() if k[1] in normalized.series.get(k[0], ())}
            units = {(metric, key[0]) for metric in self.metrics for key in normalized.series.get(metric, ())}
            self.totals = {k: v for k, v in self.totals.items() if k in units}


class TargetScraper:
    def __init__(self, target: ResolvedTarget, max_body_bytes: int,
                 caches: dict[Engine | None, SeriesCache] | None = None, max_models: int = 100,
                 turn: asyncio.Lock | None = None, caps: Caps | None = None,
                 max_cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.target = target
        # Shared by the targets of one exporter: payloads are parsed one at a time, each in its own
        # pass of the loop, so that requests (a health probe) are answered between two targets
        # rather than after a thousand.
        self._turn = turn if turn is not None else asyncio.Lock()
        self.max_body_bytes = max_body_bytes
        self.max_models = max_models
        self.caps = caps if caps is not None else DEFAULT_CAPS
        self.max_cache_bytes = max_cache_bytes
        self.dropped_series = 0
        self.errors: Counter[ScrapeErrorReason] = Counter()
        self.engine: Engine | None = None if target.engine == "auto" else Engine(target.engine)
        self.plan: Plan | None = self._plan(self.engine) if self.engine else None
        self.guard: MonotonicGuard | None = MonotonicGuard(self.plan) if self.plan else None
        self._model_warned = False
        # Known series, shared by the targets of one engine (None: dcgm-exporter); see exporter.parse.
        self._caches = caches if caches is not None else {}
        self.nvml = NvmlReader(target.gpu.devices) if target.gpu.source is GpuSource.NVML else None
        cost = target.cost
        self.hourly_cost = (hourly_cost_dollars(cost.gpu_count, cost.gpu_hourly_dollars, cost.gpu_type,
                                                cost.licence_monthly_dollars) if cost.configured else None)
        self.layout = Layout()  # this target's last payload, for the values-only fast path
        self._was_up: bool | None = None
        self._inflight: asyncio.Future[TargetReport] | None = None

    def _plan(self, engine: Engine) -> Plan:
        return compile_plan(ADAPTERS[engine], gpu=self.target.gpu.source is GpuSource.ENGINE)

    @property
    def engine_label(self) -> str:
        return self.engine.value if self.engine else UNDETECTED_ENGINE

    def signals(self) -> list[UnifiedMetric]:
        """Every engine signal of the schema, once the engine is known: each gets a 1 or a 0, so a
        signal an engine cannot provide at all (TGI's TTFT) counts as missing, as a renamed one does."""
        return list(ENGINE_SIGNALS) if self.plan else []

    async def scrape(self, client: FetchClient, timeout: float) -> TargetReport:
        """Join a scrape of this target that is already running, else start one.

        Either way the answer comes within this caller's ``timeout``: a scrape that was started
        with a longer one (a curl without X-Prometheus-Scrape-Timeout-Seconds) is waited for only
        that long, then this target counts as timed out for this caller, while the shared scrape
        carries on for the callers still waiting on it."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._scrape(client, timeout))
            return await asyncio.shield(self._inflight)  # bounded by this same timeout
        try:
            # wait_for cancels only the shield, never the shared scrape.
            return await asyncio.wait_for(asyncio.shield(self._inflight), timeout)
        except TimeoutError:
            gpu_up = False if self.target.gpu.source in (GpuSource.DCGM, GpuSource.NVML) else None
            failure = ScrapeError(ScrapeErrorReason.TIMEOUT,
                                  f"no complete answer within {timeout:.3g}s (a scrape already in flight)")
            return self.report(None, failure, timeout, gpu_up, None)

    async def _scrape(self, client: FetchClient, timeout: float) -> TargetReport:
        started = time.monotonic()
        gpu_task = asyncio.ensure_future(self._scrape_gpu(client, timeout))
        normalized, failure = None, None
        try:
            payload = await fetch(client, self.target.url, timeout=timeout, max_bytes=self.max_body_bytes,
                                  credentials=_credentials(self.target.auth), pool=self.target.name)
            async with self._turn:
                normalized = self.ingest(payload)
        except ScrapeError as exc:
            # Neither its frames nor the exceptions it was raised from (``raise ... from None`` still
            # sets __context__) may keep a refused or unparsable body alive until a full GC.
            failure = exc.with_traceback(None)
            failure.__context__ = failure.__cause__ = None
        except Exception as exc:  # a bug must cost one target one scrape, never the exporter
            log.exception("unexpected error engine=%s target=%s", self.engine_label, self.target.name)
            failure = ScrapeError(ScrapeErrorReason.PARSE, f"internal error: {type(exc).__name__}")
        duration = time.monotonic() - started
        gpu_up, gpu = await gpu_task
        return self.report(normalized, failure, duration, gpu_up, gpu)

    def ingest(self, payload: Payload) -> Normalized:
        """Parse and normalize one engine payload (detecting the engine first if needed)."""
        if self.plan is None:
            detection = detect(payload.text)
            engine = detection.engine
            if engine is None:
                raise ScrapeError(ScrapeErrorReason.PARSE, "no known engine's metrics in the payload (set --engine)")
            log.info("detected engine=%s target=%s families_known=%r", engine.value, self.target.name,
                     detection.reason())
            self.engine, self.plan = engine, self._plan(engine)
            self.guard = MonotonicGuard(self.plan)
        try:
            normalized = parse_and_normalize(payload.text, self.plan, openmetrics=payload.openmetrics,
                                             series=self._cache(self.engine),
                                             layout=self.layout, model=self.target.config.model,
                                             max_models=self.max_models, caps=self.caps)
        except ParseError as exc:
            raise ScrapeError(ScrapeErrorReason.PARSE, str(exc)) from None
        if self.guard is not None and self.guard.metrics:
            self.guard.apply(normalized)
        if not self._model_warned and self.target.config.model is None:
            self._warn_if_no_model(normalized)
        self._count_dropped(normalized)
        return normalized

    def _cache(self, engine: Engine | None) -> SeriesCache:
        cache = self._caches.get(engine)
        if cache is None:
            cache = self._caches[engine] = SeriesCache(max_bytes=self.max_cache_bytes)
        return cache

    def _count_dropped(self, normalized: Normalized) -> None:
        if normalized.dropped_series:
            if not self.dropped_series:
                log.warning("series dropped engine=%s target=%s dropped_series=%d: over max_models=%d or "
                            "max_gpus=%s, a label value over max_label_bytes=%s, or a label value outside the "
                            "schema's set", self.engine_label, self.target.name, normalized.dropped_series,
                            self.max_models, self.caps.max_gpus, self.caps.max_label_bytes)
            self.dropped_series += normalized.dropped_series

    def _warn_if_no_model(self, normalized: Normalized) -> None:
        """Once per target: series whose model the payload does not name and no --model gives."""
        for metric, series in normalized.series.items():
            if Label.MODEL in metric.labels and any(key[0] == "" for key in series):
                self._model_warned = True
                log.warning("model unknown engine=%s target=%s: the engine's metrics name no model; series carry "
                            "model=\"\" (set the target's model, --model)", self.engine_label, self.target.name)
                return

    def report(self, normalized: Normalized | None, failure: ScrapeError | None, duration: float,
               gpu_up: bool | None = None, gpu: Normalized | None = None) -> TargetReport:
        """Count the failure, log a change of state, and describe this scrape."""
        if failure is not None:
            self.errors[failure.reason] += 1
        self._log_change(failure, duration)
        return TargetReport(
            engine=self.engine_label,
            target=self.target.name,
            up=failure is None,
            duration_seconds=duration,
            errors=dict(self.errors),
            normalized=normalized,
            signals=self.signals(),
            gpu_source=self.target.gpu.source,
            gpu_up=gpu_up,
            gpu=gpu,
            hourly_cost_dollars=self.hourly_cost,
            dropped_series=self.dropped_series,
        )

    async def _scrape_gpu(self, client: FetchClient, timeout: float) -> tuple[bool | None, Normalized | None]:
        gpu = self.target.gpu
        try:
            if gpu.source is GpuSource.DCGM:
                payload = await fetch(client, str(gpu.dcgm_url), timeout=timeout, max_bytes=self.max_body_bytes,
                                      pool=f"{self.target.name} gpu")
                families = parse(payload.text, _DCGM_PLAN.wanted, series=self._cache(None))
                families = _only_devices(families, frozenset(gpu.devices))
                normalized = normalize(_DCGM_PLAN, families, caps=self.caps)
                self._count_dropped(normalized)
                return True, normalized
            if gpu.source is GpuSource.NVML and self.nvml is not None:
                return True, await asyncio.to_thread(self.nvml.read)
        except (ScrapeError, ParseError, NvmlUnavailable) as exc:
            log.warning("gpu source failed source=%s target=%s error=%r", gpu.source.value, self.target.name, str(exc))
            return False, None
        return None, None

    def _log_change(self, failure: ScrapeError | None, duration: float) -> None:
        up = failure is None
        if up == self._was_up:
            return
        self._was_up = up
        if up:
            log.info("target up engine=%s target=%s duration_seconds=%.3f", self.engine_label, self.target.name,
                     duration)
        else:
            log.warning("target down engine=%s target=%s reason=%s detail=%r duration_seconds=%.3f",
                        self.engine_label, self.target.name, failure.reason.value, failure.detail, duration)


class Scraper:
    def __init__(self, targets: list[ResolvedTarget], max_body_bytes: int, max_models: int = 100,
                 max_gpus: int = 64, max_label_bytes: int = 1024, max_cache_bytes: int = DEFAULT_CACHE_BYTES):
        caps = Caps(max_gpus, max_label_bytes)
        caches: dict[Engine | None, SeriesCache] = {}
        turn = asyncio.Lock()
        self.targets = [TargetScraper(t, max_body_bytes, caches, max_models, turn, caps, max_cache_bytes)
                        for t in targets]

    async def scrape_all(self, client: FetchClient, timeout: float) -> list[TargetReport]:
        return list(await asyncio.gather(*(t.scrape(client, timeout) for t in self.targets)))
