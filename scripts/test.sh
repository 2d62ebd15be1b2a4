#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run them: the project's virtual
# environment (.venv) with the Python packages, Debian's chromium (the browser tests drive it
# through Playwright), and the npm packages the browser tests inject (jQuery, axe-core).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt requirements.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if ! command -v npm >/dev/null; then
  echo "Installing Debian's nodejs and npm with apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
# Like venv.sh: `npm ci` only when node_modules is missing or package-lock.json changed since it last ran.
if [ "$(cat node_modules/.installed-package-lock 2>/dev/null)" != "$(sha256sum <package-lock.json)" ]; then
  echo "Installing npm packages into node_modules (package-lock.json changed)"
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum <package-lock.json >node_modules/.installed-package-lock
else
  echo "npm packages in node_modules are up to date with package-lock.json"
fi
python -m ruff check .
python -m ruff format --check .
python -m pytest "$@"
