#!/usr/bin/env bash
# The test command: set up (idempotent), then run the suite. Extra arguments go to pytest.
#   bash scripts/test.sh           every tier (what CI runs)
#   bash scripts/test.sh --fast    unit + integration only: under two minutes, run it before each commit
#   bash scripts/test.sh --e2e     the e2e tier only (select tiers with these, not with -m: the
#                                  script's own -m keeps `serial` tests out of the parallel part)
# The suite runs on INFERSIGHT_TEST_WORKERS pytest-xdist workers (default 3, on 2 cores: most tests
# wait on a server, a scrape interval or a subprocess, not on the CPU). A module's own module-scoped
# fixture keeps its tests on one worker (tests/conftest.py); tests marked `serial` (a time bound
# under CPU load) run afterwards, alone. INFERSIGHT_TEST_WORKERS=0 runs everything in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=""
case "${1:-}" in
  --fast) shift; tiers="unit or integration" ;;
  --e2e) shift; tiers="e2e" ;;
esac
bash scripts/setup.sh
workers="${INFERSIGHT_TEST_WORKERS:-3}"
pytest=(.venv/bin/python -m pytest --durations=15)  # the slowest tests, in every run's log
if [ "$workers" = "0" ]; then
  exec "${pytest[@]}" ${tiers:+-m "$tiers"} "$@"
fi
status=0
"${pytest[@]}" -n "$workers" --dist loadgroup -m "${tiers:+($tiers) and }not serial" "$@" || status=$?
serial=0
# Without paths of the caller's own, collect only the modules that hold serial tests (collecting the
# whole suite again to pick them costs seconds of the fast tier's two minutes).
paths=()
has_path=0
for arg in "$@"; do [[ "$arg" == *tests* ]] && has_path=1; done
[ "$has_path" = 0 ] && mapfile -t paths < <(grep -l "pytest.mark.serial" tests/test_*.py)
"${pytest[@]}" -p no:xdist -m "${tiers:+($tiers) and }serial" "$@" "${paths[@]}" || serial=$?
# 5: nothing selected (a run of one file without serial tests)
[ "$status" = 5 ] && status=0
[ "$serial" = 5 ] && serial=0
[ "$status" = 0 ] && status=$serial
exit "$status"
