#!/usr/bin/env bash
# The test command: set up (idempotent), then run the suite. Extra arguments go to pytest.
#   bash scripts/test.sh           every tier (what CI runs)
#   bash scripts/test.sh --fast    unit + integration only: under two minutes, run it before each commit
# The suite runs on INFERSIGHT_TEST_WORKERS pytest-xdist workers (default 3, on 2 cores: most tests
# wait on a server, a scrape interval or a subprocess, not on the CPU). A module's own module-scoped
# fixture keeps its tests on one worker (tests/conftest.py). INFERSIGHT_TEST_WORKERS=0 runs in-process.
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=()
if [ "${1:-}" = "--fast" ]; then
  shift
  tiers=(-m "unit or integration")
fi
bash scripts/setup.sh
workers="${INFERSIGHT_TEST_WORKERS:-3}"
parallel=()
if [ "$workers" != "0" ]; then
  parallel=(-n "$workers" --dist loadgroup)
fi
# --durations: the slowest tests, printed at the end of every run (CI's log keeps them).
exec .venv/bin/python -m pytest --durations=15 "${parallel[@]}" "${tiers[@]}" "$@"
