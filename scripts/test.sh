#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run them: the project's virtual
# environment (.venv) with the Python packages, and Debian's chromium (the browser tests drive it
# through Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt requirements.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
# The fonts nondigits.py draws letters with: DejaVu to train the "not a digit" detector, Liberation to test it.
if [ ! -d /usr/share/fonts/truetype/dejavu ] || [ ! -d /usr/share/fonts/truetype/liberation ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core fonts-liberation
fi
python -m ruff check .
python -m ruff format --check .
python -m pytest "$@"
