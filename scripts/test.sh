#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run them: the project's virtual
# environment (.venv) with the Python packages; Debian's chromium (the browser tests drive it through
# Playwright), redis-server (the rate-limit tests start their own on a free port) and fonts (letters for
# the not-a-digit tests); and the npm packages the browser tests inject (jQuery, axe-core).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt requirements.txt

# apt_install COMMAND_OR_PATH PACKAGE...: install the Debian packages when that command or path is missing.
apt_install() {
  { command -v "$1" >/dev/null || [ -e "$1" ]; } && return
  shift
  echo "Installing Debian's $* with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
apt_install /usr/bin/chromium chromium
if ! command -v /usr/bin/redis-server >/dev/null; then
  apt_install /usr/bin/redis-server redis-server
  as_root service redis-server stop >/dev/null 2>&1 || true # the package may start one on 6379; tests need none
fi
if [ ! -e /usr/lib/postgresql ]; then # the database tests initdb and start their own server on a free port
  apt_install /usr/lib/postgresql postgresql
  as_root service postgresql stop >/dev/null 2>&1 || true # the package may start a cluster on 5432; tests need none
fi
apt_install npm nodejs npm
# The fonts livedigits/offline/nondigits.py draws letters with: DejaVu to train the "not a digit" detector, Liberation to test it.
apt_install /usr/share/fonts/truetype/dejavu fonts-dejavu-core
apt_install /usr/share/fonts/truetype/liberation fonts-liberation

# Like venv.sh: `npm ci` only when tests/node_modules is missing or tests/package-lock.json changed since it
# last ran. The manifest lives in tests/: a package.json at the root would make Heroku build a Node.js app.
if [ "$(cat tests/node_modules/.installed-package-lock 2>/dev/null)" != "$(sha256sum <tests/package-lock.json)" ]; then
  echo "Installing npm packages into tests/node_modules (tests/package-lock.json changed)"
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <tests/package-lock.json >tests/node_modules/.installed-package-lock
else
  echo "npm packages in tests/node_modules are up to date with tests/package-lock.json"
fi
python -m ruff check .
python -m ruff format --check .
lint-imports  # the layers and no circles: pyproject.toml [tool.importlinter]
python -m pytest "$@"
