#!/usr/bin/env bash
# Install everything the stack and its tests need. Idempotent: re-running skips what is there.
#   - Debian packages: prometheus and prometheus-alertmanager (real servers for the tests),
#     chromium (the UI's real-browser test), openssl and curl where missing
#   - a virtual environment in .venv with infersight installed editable, with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "infersight needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v openssl >/dev/null || missing+=(openssl)  # the TLS tests make a certificate
command -v curl >/dev/null || missing+=(curl)        # scripts/run.sh waits for readiness with it
command -v chromium >/dev/null || missing+=(chromium)  # the UI screenshot test drives it with Playwright
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  # Servers must not start on install (tests start their own, bound to 127.0.0.1).
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.infersight-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing infersight and its test dependencies into .venv" >&2
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
          .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi
