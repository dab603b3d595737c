#!/usr/bin/env bash
# Start portus_fab on its embedded defaults: SQLite and an SQLite Celery broker in ./instance,
# with a worker and the beat scheduler beside the web server. Installs into .venv on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -c "import portus_fab" 2>/dev/null || .venv/bin/python -m pip install -q -e .
exec .venv/bin/python run.py
