"""Generate Prometheus recording rules and multi-window, multi-burn-rate alerts from the SLO spec.

The burn-rate table is the Google SRE workbook's (chapter "Alerting on SLOs", 30-day budget):
page when 2% of the budget burns in 1h or 5% in 6h, open a ticket when 10% burns in 1d or 100%
in 3d, each confirmed by a short window so the alert resets quickly after recovery. ``for``
durations follow Pyrra's. Recording-rule names follow ``level:metric:operations``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from infersight.exporter.adapters import ADAPTERS
from infersight.exporter.schema import BY_NAME, Engine, M, Outcome, UnifiedMetric
from infersight.alerts.slo_spec import Slo, SloSpec, duration_seconds

RUNBOOK_URL = "https://github.com/infersight/infersight/blob/main/alerts/runbook.md"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
MISSING_DATA_WINDOW = "15m"
# What one SLO is kept apart by: a team's workload. `cluster` (a Thanos/Mimir view) and
# `namespace` (the ServiceMonitor's target label) are absent outside Kubernetes; `by` over an
# absent label changes nothing, so the same rules serve the demo and a multi-tenant cluster.
WORKLOAD_LABELS = ("cluster", "namespace", "engine", "model")
BY_WORKLOAD = ", ".join(WORKLOAD_LABELS)
# Alert text naming the namespace where there is one (Go template; nothing outside Kubernetes).
IN_NAMESPACE = "{{ with $labels.namespace }} in {{ . }}{{ end }}"

# Recording-rule names (level:metric:operations); dashboards read them through these too.
OBJECTIVE_RECORD = "slo:objective:ratio"
BUDGET_REMAINING_RECORD = "slo:error_budget_remaining:ratio"
ERRORS_RECORD = "slo:sli_errors:rate5m"
REQUESTS_RECORD = "slo:sli_requests:rate5m"


# Signal recording rules, beside the SLOs' (one group, "infersight-signals").
SPEC_DECODE_ACCEPTANCE_RECORD = "workload:spec_decode_acceptance:ratio_rate5m"


def error_ratio_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def burn_rate_record(window: str) -> str:
    return f"slo:burn_rate:ratio_rate{window}"


@dataclass(frozen=True)
class BurnAlert:
    severity: str
    factor: float
    long_window: str
    short_window: str
    for_: str
    budget_share: str  # what the factor means, for the description


BURN_ALERTS = (
    BurnAlert("page", 14.4, "1h", "5m", "2m", "2% of the 30-day budget in 1 hour"),
    BurnAlert("page", 6, "6h", "30m", "15m", "5% of the 30-day budget in 6 hours"),
    BurnAlert("ticket", 3, "1d", "2h", "1h", "10% of the 30-day budget in 1 day"),
    BurnAlert("ticket", 1, "3d", "6h", "3h", "all of the budget over the SLO window at this pace"),
)


def _number(value: float) -> str:
    """A rounded constant for a rule (0.144, not 0.14400000000000013)."""
    return f"{value:.6g}"


def _scaled(duration: str, time_scale: int) -> str:
    seconds = duration_seconds(duration)
    if seconds % time_scale:
        raise ValueError(f"--time-scale {time_scale} does not divide {duration}")
    seconds //= time_scale
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _go_float(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


# --- which engines can express a latency threshold --------------------------------------------

def engine_capability(metric: UnifiedMetric, threshold: float) -> dict[Engine, str | None]:
    """Per engine: None when its buckets can express ``threshold`` exactly, else why not."""
    verdicts: dict[Engine, str | None] = {}
    for engine, adapter in ADAPTERS.items():
        rows = [row for row in adapter.rows if row.metric is metric]
        if not rows:
            verdicts[engine] = "has no such signal"
            continue
        reasons = []
        for row in rows:
            multiplier, divisor = row.unit.value
            if row.count_source is not None:
                reasons.append(f"{row.source} has no buckets (only a sum and a count)")
            elif row.buckets:
                bounds = [b * multiplier / divisor for b in row.buckets]
                if not any(math.isclose(b, threshold, rel_tol=1e-9) for b in bounds):
                    lower = max((b for b in bounds if b < threshold), default=None)
                    upper = min((b for b in bounds if b > threshold), default=None)
                    nearest = ", ".join(_number(b) for b in (lower, upper) if b is not None)
                    reasons.append(f"{row.source} has no {_number(threshold)} s bucket (nearest {nearest})")
        verdicts[engine] = "; ".join(reasons) or None
    return verdicts


def capability_report(spec: SloSpec) -> list[str]:
    lines = []
    for slo in spec.slos:
        if slo.sli.latency is None:
            lines.append(f"slo {slo.name}: availability from {M.REQUESTS.name}: all engines")
            continue
        latency = slo.sli.latency
        verdicts = engine_capability(BY_NAME[latency.histogram], latency.threshold_seconds)
        able = [e.value for e, why in verdicts.items() if why is None]
        skipped = [f"{e.value} ({why})" for e, why in verdicts.items() if why is not None]
        line = f"slo {slo.name}: {latency.histogram} <= {_number(latency.threshold_seconds)} s: {', '.join(able)}"
        lines.append(line + (f"; skipped: {'; '.join(skipped)}" if skipped else ""))
    return lines


# --- expressions --------------------------------------------------------------------------------

def _selector(slo: Slo, extra: list[str]) -> str:
    matchers = [f'{label}=~"{pattern}"' for label, pattern in sorted(slo.selector.items())] + extra
    return "{" + ",".join(matchers) + "}"


class _Sli:
    """PromQL for one SLO's bad and total event rates over a window, summed ``by`` the given labels
    (the workload for the rules; dashboards also by replica) over series matching ``matchers``."""

    def __init__(self, slo: Slo, by: str = BY_WORKLOAD, matchers: tuple[str, ...] = ()):
        self.slo = slo
        latency = slo.sli.latency
        if latency is not None:
            metric = BY_NAME[latency.histogram]
            verdicts = engine_capability(metric, latency.threshold_seconds)
            engines = "|".join(e.value for e, why in verdicts.items() if why is None)
            base = _selector(slo, [f'engine=~"{engines}"', *matchers])
            with_le = _selector(slo, [f'engine=~"{engines}"', *matchers, f'le="{_go_float(latency.threshold_seconds)}"'])
            self._total = f"sum by ({by}) (rate({metric.name}_count{base}[$WINDOW]))"
            good = f"sum by ({by}) (rate({metric.name}_bucket{with_le}[$WINDOW]))"
            self._bad = f"({self._total} - {good})"
            self.source = f"{metric.name}_count{base}"
        else:
            finished = _selector(slo, [f'outcome=~"{Outcome.SUCCESS.value}|{Outcome.ERROR.value}"', *matchers])
            errors = _selector(slo, [f'outcome="{Outcome.ERROR.value}"', *matchers])
            self._total = f"sum by ({by}) (rate({M.REQUESTS.name}{finished}[$WINDOW]))"
            self._bad = f"sum by ({by}) (rate({M.REQUESTS.name}{errors}[$WINDOW]))"
            self.source = f"{M.REQUESTS.name}{finished}"

    def total(self, window: str) -> str:
        return self._total.replace("$WINDOW", window)

    def bad(self, window: str) -> str:
        return self._bad.replace("$WINDOW", window)

    def error_ratio(self, window: str) -> str:
        # Dividing by (total > 0) drops idle series instead of producing NaN.
        return f"{self.bad(window)} / ({self.total(window)} > 0)"


def sli_error_ratio(slo: Slo, window: str, by: str, matchers: tuple[str, ...] = ()) -> str:
    """The SLO's error ratio over ``window`` from the raw series, summed ``by`` other labels than
    the rules' (a dashboard's per-replica view), over the series ``matchers`` select."""
    return _Sli(slo, by, matchers).error_ratio(window)


# --- rules -----------------------------------------------------------------------------------------

def _slo_group(slo: Slo, time_scale: int, interval: str | None, runbook_url: str) -> dict:
    sli = _Sli(slo)
    budget = 1 - slo.objective
    labels = {"slo": slo.name}
    on_slo = f'{{slo="{slo.name}"}}'
    rules: list[dict] = []
    for window in WINDOWS:
        rules.append({"record": error_ratio_record(window),
                      "expr": sli.error_ratio(_scaled(window, time_scale)), "labels": labels})
    rules += [
        {"record": ERRORS_RECORD, "expr": sli.bad(_scaled("5m", time_scale)), "labels": labels},
        {"record": REQUESTS_RECORD, "expr": sli.total(_scaled("5m", time_scale)), "labels": labels},
        {"record": error_ratio_record(slo.window),
         "expr": (f"sum_over_time({ERRORS_RECORD}{on_slo}[{_scaled(slo.window, time_scale)}])"
                  f" / (sum_over_time({REQUESTS_RECORD}{on_slo}[{_scaled(slo.window, time_scale)}]) > 0)"),
         "labels": labels},
        {"record": OBJECTIVE_RECORD, "expr": f"vector({_number(slo.objective)})", "labels": labels},
        {"record": BUDGET_REMAINING_RECORD,
         "expr": f"1 - {error_ratio_record(slo.window)}{on_slo} / {_number(budget)}", "labels": labels},
    ]
    for window in WINDOWS:
        rules.append({"record": burn_rate_record(window),
                      "expr": f"{error_ratio_record(window)}{on_slo} / {_number(budget)}", "labels": labels})
    what = _what(slo)
    for burn in BURN_ALERTS:
        if not getattr(slo.alerting, burn.severity):
            continue
        factor = _number(burn.factor)
        rules.append({
            "alert": "LLMErrorBudgetBurn",
            "expr": (f"{burn_rate_record(burn.long_window)}{on_slo} > {factor}"
                     f" and {burn_rate_record(burn.short_window)}{on_slo} > {factor}"),
            "for": _scaled(burn.for_, time_scale),
            "labels": {"slo": slo.name, "severity": burn.severity, "long_window": burn.long_window,
                       "short_window": burn.short_window},
            "annotations": {
                "summary": (f"{{{{ $labels.engine }}}} {{{{ $labels.model }}}}{IN_NAMESPACE}: {slo.name} SLO error "
                            f"budget burning {{{{ $value | printf \"%.1f\" }}}}x too fast"),
                "description": (f"{what} Over the last {burn.long_window} (confirmed over {burn.short_window}) "
                                f"{{{{ $labels.engine }}}} serving {{{{ $labels.model }}}}{IN_NAMESPACE} used its "
                                f"error budget "
                                f"{{{{ $value | printf \"%.1f\" }}}}x faster than the SLO allows; above {factor}x "
                                f"means {burn.budget_share}."),
                "runbook_url": f"{runbook_url}#llmerrorbudgetburn",
            },
        })
    rules.append({
        "alert": "LLMSLOMissingData",
        "expr": f"absent_over_time({sli.source}[{_scaled(MISSING_DATA_WINDOW, time_scale)}])",
        "for": _scaled("5m", time_scale),
        "labels": {"severity": "ticket", "slo": slo.name},
        "annotations": {
            "summary": f"No data for the {slo.name} SLO",
            "description": (f"{sli.source} has not been seen for {MISSING_DATA_WINDOW}: the {slo.name} SLO cannot "
                            "be evaluated (exporter or engine gone, a renamed metric, or a relabeling mistake)."),
            "runbook_url": f"{runbook_url}#llmslomissingdata",
        },
    })
    group: dict = {"name": f"infersight-slo-{slo.name}"}
    if interval:
        group["interval"] = interval
    group["rules"] = rules
    return group


def _what(slo: Slo) -> str:
    if slo.sli.latency is not None:
        latency = slo.sli.latency
        return (f"SLO {slo.name}: {slo.objective:.4g} of observations of {latency.histogram} within "
                f"{_number(latency.threshold_seconds)} s over {slo.window}.")
    return f"SLO {slo.name}: {slo.objective:.4g} of finished requests succeed over {slo.window}."


def _signals_group(time_scale: int, interval: str | None) -> dict:
    """Recording rules of derived signals: speculative decoding's acceptance ratio per workload
    (accepted over proposed draft tokens, as vLLM's vllm/v1/spec_decode/metrics.py defines it)."""
    window = _scaled("5m", time_scale)
    accepted = f"sum by ({BY_WORKLOAD}) (rate({M.SPEC_DECODE_ACCEPTED_TOKENS.name}[{window}]))"
    proposed = f"sum by ({BY_WORKLOAD}) (rate({M.SPEC_DECODE_DRAFT_TOKENS.name}[{window}]))"
    group: dict = {"name": "infersight-signals"}
    if interval:
        group["interval"] = interval
    group["rules"] = [{"record": SPEC_DECODE_ACCEPTANCE_RECORD, "expr": f"{accepted} / ({proposed} > 0)"}]
    return group


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # write shared label dicts out, no &id001 anchors
        return True


def generate(spec: SloSpec, *, spec_path: str = "alerts/slos.yaml", time_scale: int = 1,
             interval: str | None = None, runbook_url: str = RUNBOOK_URL) -> str:
    """The rule file's text: a DO-NOT-EDIT header, then one group per SLO."""
    header = [
        f"# DO NOT EDIT: generated by `infersight rules` from {spec_path}.",
        "# Regenerate with: infersight rules",
    ]
    if time_scale != 1 or interval:
        header.append(f"# Test build: windows and `for` divided by {time_scale}, interval {interval or 'global'}.")
    header += [f"# {line}" for line in capability_report(spec)]
    groups = [_slo_group(slo, time_scale, interval, runbook_url) for slo in spec.slos]
    groups.append(_signals_group(time_scale, interval))
    body = yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=1_000_000, allow_unicode=True)
    return "\n".join(header) + "\n" + body
