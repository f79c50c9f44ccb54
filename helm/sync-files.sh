#!/usr/bin/env bash
# Helm reads files only inside the chart: copy the generated rules, the alert routing and the
# dashboards into helm/infersight/files/, and generate the autoscaling queries there.
# tests/test_helm.py and tests/test_helm_autoscaling.py fail when a copy is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
files=helm/infersight/files
cp alerts/generated/slo-rules.yml alerts/rules/llm-alerts.yml alerts/alertmanager.yml "$files/"
rm -f "$files"/dashboards/*.json
cp grafana/dashboards/*.json "$files/dashboards/"
python=.venv/bin/python
[ -x "$python" ] || python=python3
"$python" -m infersight.tools.autoscaling --out "$files/autoscaling-queries.yaml"
echo "synced alerts/ and grafana/dashboards/ into $files"
