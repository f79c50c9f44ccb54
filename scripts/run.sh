#!/usr/bin/env bash
# The README's first command: the whole stack on simulated engines (no GPU needed).
# Installs what is missing (scripts/setup.sh), then runs `infersight demo`: three simulated engines
# (vLLM, Triton, NIM) with a sidecar exporter each, Prometheus with the project's rules,
# Alertmanager, and the web UI. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# AIPerf (1.3 GB) is for the tests and `infersight validate`, not the demo: skip it here.
INFERSIGHT_SKIP_AIPERF=${INFERSIGHT_SKIP_AIPERF:-1} bash scripts/setup.sh
exec .venv/bin/infersight demo "$@"
