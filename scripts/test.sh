#!/usr/bin/env bash
# The test command: set up (idempotent), then run the suite. Extra arguments go to pytest.
#   bash scripts/test.sh           every tier (what CI runs)
#   bash scripts/test.sh --fast    unit + integration only: under two minutes, run it before each commit
#   bash scripts/test.sh --e2e     the e2e tier only (select tiers with these, not with -m: the
#                                  script's own -m keeps `serial` and `cpu_bound` tests apart)
# Three passes: the bulk on INFERSIGHT_TEST_WORKERS pytest-xdist workers (default 2, `--dist
# loadfile`: a module's tests share one worker, so a module-scoped engine or stack starts once;
# --fast: 3, test by test); beside it, the `cpu_bound` e2e modules one at a time in one process
# (tests/conftest.py says why); then the `serial` tests (a time bound under CPU load) alone.
# INFERSIGHT_TEST_WORKERS=0 runs everything in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
tiers=""
case "${1:-}" in
  --fast) shift; tiers="unit or integration" ;;
  --e2e) shift; tiers="e2e" ;;
esac
bash scripts/setup.sh
# The fast tiers are short tests: spread one by one on 3 workers (95 s here). With the e2e tier, 2
# workers by module beside the cpu_bound pass.
dist=(--dist loadfile)
default_workers=2
if [ "$tiers" = "unit or integration" ]; then dist=(--dist load); default_workers=3; fi
workers="${INFERSIGHT_TEST_WORKERS:-$default_workers}"
pytest=(.venv/bin/python -m pytest --durations=15)  # the slowest tests, in every run's log
if [ "$workers" = "0" ]; then
  exec "${pytest[@]}" ${tiers:+-m "$tiers"} "$@"
fi
select="${tiers:+($tiers) and }"
# 5: nothing selected (a run of one file without such tests)
ok() { [ "$1" = 0 ] || [ "$1" = 5 ]; }
cpu_log=$(mktemp)
cpu_pid=""
if [ "$tiers" != "unit or integration" ]; then  # the cpu_bound modules are all e2e
  "${pytest[@]}" -p no:xdist -m "${select}cpu_bound and not serial" "$@" >"$cpu_log" 2>&1 &
  cpu_pid=$!
fi
status=0
"${pytest[@]}" -n "$workers" "${dist[@]}" -m "${select}not serial and not cpu_bound" "$@" || status=$?
cpu=0
if [ -n "$cpu_pid" ]; then
  wait "$cpu_pid" || cpu=$?
  echo "--- the cpu_bound pass (one at a time, beside the parallel pass) ---"
  cat "$cpu_log"
fi
rm -f "$cpu_log"
serial=0
# Without paths of the caller's own, collect only the modules that hold serial tests (collecting the
# whole suite again to pick them costs seconds of the fast tier's two minutes).
paths=()
has_path=0
for arg in "$@"; do [[ "$arg" == *tests* ]] && has_path=1; done
[ "$has_path" = 0 ] && mapfile -t paths < <(grep -l "pytest.mark.serial" tests/test_*.py)
"${pytest[@]}" -p no:xdist -m "${select}serial" "$@" "${paths[@]}" || serial=$?
ok "$status" && ok "$cpu" && ok "$serial"
