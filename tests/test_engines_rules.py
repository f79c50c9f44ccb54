"""The speculative decoding acceptance ratio as a recording rule, run by the real promtool on the
committed rule file (alerts/generated/slo-rules.yml, infersight-signals group)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from infersight.alerts.slo_rules import SPEC_DECODE_ACCEPTANCE_RECORD
from infersight.exporter.schema import M
from tests.conftest import REPO
from tests.processes import require_binary

pytestmark = pytest.mark.integration

GENERATED = REPO / "alerts" / "generated" / "slo-rules.yml"


def test_acceptance_ratio_is_recorded_per_workload(tmp_path: Path) -> None:
    """Two vLLM replicas of one workload propose 120 + 120 draft tokens a minute and accept 90 + 60:
    150 / 240 = 0.625 for the workload; a replica that proposes nothing records nothing."""
    labels = 'namespace="team-a",engine="vllm",model="m"'
    case = {
        "rule_files": [str(GENERATED)],
        "evaluation_interval": "1m",
        "tests": [{
            "name": "spec decode acceptance ratio",
            "interval": "1m",
            "input_series": [
                {"series": f'{M.SPEC_DECODE_DRAFT_TOKENS.name}{{{labels},target="a"}}', "values": "0+120x10"},
                {"series": f'{M.SPEC_DECODE_ACCEPTED_TOKENS.name}{{{labels},target="a"}}', "values": "0+90x10"},
                {"series": f'{M.SPEC_DECODE_DRAFT_TOKENS.name}{{{labels},target="b"}}', "values": "0+120x10"},
                {"series": f'{M.SPEC_DECODE_ACCEPTED_TOKENS.name}{{{labels},target="b"}}', "values": "0+60x10"},
                {"series": f'{M.SPEC_DECODE_DRAFT_TOKENS.name}{{namespace="team-b",engine="vllm",model="x",'
                           'target="c"}', "values": "0x10"},
            ],
            "promql_expr_test": [{
                "expr": SPEC_DECODE_ACCEPTANCE_RECORD,
                "eval_time": "10m",
                "exp_samples": [{"labels": f'{SPEC_DECODE_ACCEPTANCE_RECORD}{{{labels}}}', "value": 0.625}],
            }],
        }],
    }
    (tmp_path / "signals.test.yml").write_text(yaml.safe_dump(case))
    result = subprocess.run([require_binary("promtool"), "test", "rules", "signals.test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
