#!/usr/bin/env bash
# Helm reads files only inside the chart: copy the generated rules, the alert routing and the
# dashboards into helm/infersight/files/. tests/test_helm.py fails when a copy is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
files=helm/infersight/files
cp alerts/generated/slo-rules.yml alerts/rules/llm-alerts.yml alerts/alertmanager.yml "$files/"
rm -f "$files"/dashboards/*.json
cp grafana/dashboards/*.json "$files/dashboards/"
echo "synced alerts/ and grafana/dashboards/ into $files"
