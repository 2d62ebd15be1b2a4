#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run them: the project's virtual
# environment (.venv) with the Python packages, Debian's chromium (the browser tests drive it
# through Playwright) and Debian's redis-server (the rate-limit tests start their own on a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt requirements.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if [ ! -x /usr/bin/redis-server ]; then
  echo "Installing Debian's redis-server with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  # The package may start a system Redis on port 6379; the tests need none.
  as_root service redis-server stop >/dev/null 2>&1 || true
fi
python -m ruff check .
python -m ruff format --check .
python -m pytest "$@"
