#!/usr/bin/env bash
# The test command: set up (idempotent), then run the suite. Extra arguments go to pytest.
#   bash scripts/test.sh           every tier (what CI runs)
#   bash scripts/test.sh --fast    unit + integration only: under two minutes, run it before each commit
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=()
if [ "${1:-}" = "--fast" ]; then
  shift
  tiers=(-m "unit or integration")
fi
bash scripts/setup.sh
# --durations: the slowest tests, printed at the end of every run (CI's log keeps them).
exec .venv/bin/python -m pytest --durations=15 "${tiers[@]}" "$@"
