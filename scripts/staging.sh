#!/usr/bin/env bash
# The staging environment of issue 15 on this machine (docs/benchmarks.md, "Staging"):
#   scripts/staging.sh up    [--profile wan50|wan20]   # namespaces, WAN, nginx, 2 hubs, PG, S3, git
#   scripts/staging.sh bench [--profile wan50|wan20] [-- bench_wire.py options]
#   scripts/staging.sh down                             # removes everything it made
# Needs root (network namespaces, tc). Installs what is missing (nginx, fcgiwrap, tinyproxy,
# PostgreSQL, the project's .venv) through scripts/install.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "staging: needs root (network namespaces, tc)" >&2
  exit 2
fi
case "${1:-}" in
  up|bench)
    if [ ! -x .venv/bin/python ] || ! command -v nginx >/dev/null 2>&1 \
        || ! command -v fcgiwrap >/dev/null 2>&1 || ! command -v tinyproxy >/dev/null 2>&1 \
        || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      ./scripts/install.sh --with-postgres
    fi ;;
  down) ;;
  *) echo "usage: scripts/staging.sh up|bench|down [--profile wan50|wan20] [--name N]" >&2; exit 2 ;;
esac
export PATH="/usr/sbin:/sbin:$PATH"
cd tests && exec ../.venv/bin/python -m staging.site "$@"
