#!/usr/bin/env bash
# Set up and serve the app on http://localhost:5000 (or $PORT) with the embedded default:
# labelled drawings in the local folder tmp/store, no cloud account. Runs the Procfile's own command.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
export PORT="${PORT:-5000}"
echo "Serving on http://localhost:${PORT}"
eval "exec $(sed -n 's/^web: *//p' Procfile)"
