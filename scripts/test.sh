#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run them.
# Installs the Python packages and Debian's chromium (the browser tests drive it through Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m pytest "$@"
