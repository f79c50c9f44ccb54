#!/usr/bin/env bash
# The README's first command: the whole stack on simulated engines (no GPU needed).
# Installs what is missing (scripts/setup.sh), then runs `infersight demo`: three simulated engines
# (vLLM, Triton, NIM) with a sidecar exporter each, Prometheus with the project's rules,
# Alertmanager, and the web UI. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# AIPerf (1.3 GB) and the real vLLM (2.6 GB) are for the tests and `validate`, not the demo: skipped here.
INFERSIGHT_SKIP_AIPERF=${INFERSIGHT_SKIP_AIPERF:-1} INFERSIGHT_SKIP_VLLM=${INFERSIGHT_SKIP_VLLM:-1} bash scripts/setup.sh
exec .venv/bin/infersight demo "$@"
