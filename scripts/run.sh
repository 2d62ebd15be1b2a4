#!/usr/bin/env bash
# Set up and serve the app on http://localhost:5000 (or $PORT) with the embedded default:
# labelled drawings in the local folder tmp/store, no cloud account. Runs the Procfile's own command
# from the project's virtual environment (.venv, made on the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements.txt
export PORT="${PORT:-5000}"
echo "Serving on http://localhost:${PORT}"
eval "exec $(sed -n 's/^web: *//p' Procfile)"
