"""SLO spec -> generated rules; hand-written cause alerts; Alertmanager routing. Real promtool and amtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infersight.exporter.schema import BY_NAME
from infersight.alerts.slo_rules import capability_report, generate
from infersight.alerts.slo_spec import SpecError, load_spec
from tests.conftest import REPO
from tests.processes import infersight_command, require_binary

ALERTS = REPO / "alerts"
SPEC = ALERTS / "slos.yaml"
GENERATED = ALERTS / "generated" / "slo-rules.yml"
HAND_WRITTEN = ALERTS / "rules" / "llm-alerts.yml"
RULE_FILES = [GENERATED, HAND_WRITTEN]


def run(*cmd: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def alert_rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_committed_rules_are_a_fresh_generation() -> None:
    # Regenerate with: infersight rules
    assert GENERATED.read_text() == generate(load_spec(SPEC))


def test_rules_check_command_catches_a_stale_file(tmp_path: Path) -> None:
    ok = run(*infersight_command(), "rules", "--check")
    assert (ok.returncode, ok.stdout) == (0, "")
    stale = tmp_path / "slo-rules.yml"
    stale.write_text(GENERATED.read_text().replace("14.4", "14"))
    result = run(*infersight_command(), "rules", "--check", "--output", str(stale))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: {stale} is stale; run: infersight rules --output {stale}")


def test_generator_reports_engines_that_cannot_express_a_threshold() -> None:
    assert capability_report(load_spec(SPEC)) == [
        "slo ttft: llm_time_to_first_token_seconds <= 0.5 s: vllm, triton, nim, trtllm; skipped: sglang "
        "(sglang:time_to_first_token_seconds has no 0.5 s bucket (nearest 0.4, 0.6)); tgi (has no such signal)",
        "slo itl: llm_inter_token_latency_seconds <= 0.05 s: vllm, triton, nim; skipped: sglang "
        "(sglang:inter_token_latency_seconds has no 0.05 s bucket (nearest 0.04, 0.06)); tgi (has no such signal); "
        "trtllm (has no such signal)",
        "slo availability: availability from llm_requests_total: all engines",
    ]


def test_a_threshold_between_triton_buckets_leaves_triton_out(tmp_path: Path) -> None:
    spec = tmp_path / "slos.yaml"
    spec.write_text("version: 1\nslos:\n  - name: fast\n    objective: 0.95\n"
                    "    sli: {latency: {histogram: llm_time_to_first_token_seconds, threshold_seconds: 0.25}}\n")
    assert capability_report(load_spec(spec)) == [
        "slo fast: llm_time_to_first_token_seconds <= 0.25 s: vllm, nim, trtllm; skipped: triton "
        "(nv_inference_first_response_histogram_ms has no 0.25 s bucket (nearest 0.1, 0.5)); sglang "
        "(sglang:time_to_first_token_seconds has no 0.25 s bucket (nearest 0.2, 0.4)); tgi (has no such signal)"]


@pytest.mark.parametrize(("body", "problems"), [
    ("slos: []", ["version: Field required"]),
    ("version: 1\nslos:\n  - {name: x, objective: 0.99, sli: {latency: {histogram: llm_requests_total, "
     "threshold_seconds: 1}}}",
     ["slos.0.sli.latency.histogram: not a histogram of the schema; one of llm_time_to_first_token_seconds, "
      "llm_inter_token_latency_seconds, llm_time_per_output_token_seconds, llm_request_duration_seconds, "
      "llm_request_queue_seconds, llm_request_prefill_seconds, llm_request_decode_seconds"]),
    ("version: 1\nslos:\n  - {name: x, objective: 1.5, sli: {availability: {}, latency: "
     "{histogram: llm_request_duration_seconds, threshold_seconds: 1}}}",
     ["slos.0.objective: Input should be less than 1", "slos.0.sli: give exactly one of latency and availability"]),
    ("version: 1\nslos:\n  - {name: x, objective: 0.9, sli: {availability: {}}, selector: {engine: '('}}",
     ["slos.0.selector: engine: invalid regex: missing ), unterminated subpattern at position 0"]),
])
def test_spec_errors_are_located(tmp_path: Path, body: str, problems: list[str]) -> None:
    spec = tmp_path / "slos.yaml"
    spec.write_text(body)
    with pytest.raises(SpecError) as error:
        load_spec(spec)
    assert error.value.problems == [f"{spec}: {p}" for p in problems]


def test_time_scale_shortens_windows_for_tests_only() -> None:
    scaled = generate(load_spec(SPEC), time_scale=60, interval="1s")
    groups = yaml.safe_load(scaled)["groups"]
    ttft = {r.get("record") or r["alert"] + r["labels"].get("long_window", ""): r for r in groups[0]["rules"]}
    assert groups[0]["interval"] == "1s"
    assert "[1m]" in ttft["slo:sli_error:ratio_rate1h"]["expr"] and "[1h]" not in scaled
    assert ttft["LLMErrorBudgetBurn1h"]["for"] == "2s"
    assert ttft["LLMErrorBudgetBurn1h"]["labels"]["long_window"] == "1h"  # names and labels stay nominal


def test_promtool_accepts_every_rule_file() -> None:
    promtool = require_binary("promtool")
    for path, count in ((GENERATED, 73), (HAND_WRITTEN, 14)):
        result = run(promtool, "check", "rules", str(path))
        assert (result.returncode, result.stdout) == (0, f"Checking {path}\n  SUCCESS: {count} rules found\n\n")


@pytest.mark.parametrize("test_file", ["slo-rules.test.yml", "llm-alerts.test.yml"])
def test_promtool_unit_tests_pass(test_file: str) -> None:
    result = run(require_binary("promtool"), "test", "rules", test_file, cwd=ALERTS / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines() == [f"Unit Testing:  {test_file}", "  SUCCESS"]


def test_every_alert_has_a_named_promtool_case() -> None:
    tested = set()
    for path in (ALERTS / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            assert case.get("name"), f"{path.name}: a test without a name"
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert {rule["alert"] for rule in alert_rules()} == tested


def test_every_alert_is_complete_and_its_runbook_anchor_exists() -> None:
    anchors = {"#" + line[3:].strip().lower() for line in (ALERTS / "runbook.md").read_text().splitlines()
               if line.startswith("## ")}
    for rule in alert_rules():
        name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
        # none: an inhibition-only alert, routed to no one (kube-prometheus' InfoInhibitor pattern)
        assert labels["severity"] in ("page", "ticket", "info") or (name, labels["severity"]) == (
            "LLMWorkloadReplicaDown", "none"), name
        assert set(notes) == {"summary", "description", "runbook_url"}, name
        assert notes["runbook_url"].split("#")[1] == name.lower() and "#" + name.lower() in anchors, name
        if name not in ("LLMExporterAbsent", "LLMSLOMissingData"):  # the only ones without an engine label
            assert "{{ $labels.engine }}" in notes["description"], name


def test_rules_use_only_schema_names() -> None:
    used = set()
    for path in RULE_FILES:
        used |= set(re.findall(r"\bllm_[a-z0-9_]+", path.read_text()))
    histogram_parts = {n for m in BY_NAME for n in (m + "_bucket", m + "_count", m + "_sum")}
    assert used - set(BY_NAME) - histogram_parts == {"llm_cost_per_million_output_tokens_dollars"}  # a record name


def test_alertmanager_config_is_valid_and_routes_by_severity() -> None:
    amtool = require_binary("amtool")
    config = str(ALERTS / "alertmanager.yml")
    check = run(amtool, "check-config", config)
    assert check.returncode == 0 and check.stdout.startswith(f"Checking '{config}'  SUCCESS"), check.stdout
    for labels, receiver in ((["severity=page", "slo=ttft"], "pager"), (["severity=ticket"], "ticket"),
                             (["severity=info"], "ticket"), (["alertname=Other"], "ticket"),
                             (["alertname=LLMWorkloadReplicaDown", "severity=none"], "null")):
        routed = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert routed.stdout.strip() == receiver, labels


def test_dcgm_join_reads_only_what_the_exporters_dcgm_table_reads() -> None:
    from infersight.exporter.adapters.dcgm import ROWS

    used = set(re.findall(r"\bDCGM_FI_[A-Z_]+", HAND_WRITTEN.read_text()))
    # Left out of the join: the profiling-only alias, FB_TOTAL (the join sums used + free + reserved,
    # which every dcgm-exporter serves) and the energy counter (no per-pod energy panel yet).
    assert used == {row.source for row in ROWS} - {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_FB_TOTAL",
                                                   "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"}


def test_every_aggregation_keeps_the_workload_labels() -> None:
    # sum/avg/max by (...) in any rule keeps cluster and namespace, so teams never merge.
    for path in RULE_FILES:
        for group in re.findall(r"\b(?:sum|avg|max|min|count|group) by \(([^)]*)\)", path.read_text()):
            labels = [label.strip() for label in group.split(",")]
            assert labels[:2] == ["cluster", "namespace"], f"{path.name}: by ({group})"
