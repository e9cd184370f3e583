#!/usr/bin/env bash
# Installs everything sonomap needs into ./.venv and builds the browser bundle.
#   scripts/install.sh            Python packages + front-end bundle
#   scripts/install.sh --browser  also Debian's chromium, for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.installed-$(sha1sum requirements.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch pulls gigabytes of CUDA packages.
  "$VENV/bin/python" -m pip install -q "$(grep '^torch==' requirements.txt)"
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  touch "$stamp"
fi
if [ -f package.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then npm ci --no-audit --no-fund --loglevel=error; fi
  npm run --silent build
fi
# Compile numba's code (fast_hdbscan, pynndescent, UMAP) once, into the persistent cache the server and CLI use,
# so the first clustering after `make demo` takes seconds, not a minute. Redone when requirements or the
# clustering code change (numba itself recompiles whatever changed).
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.numba_cache}
warm="$NUMBA_CACHE_DIR/.warm-$(cat requirements.txt preprocess/cluster.py server/warmup.py | sha1sum | cut -c1-12)"
if [ ! -f "$warm" ] && [ "${SONOMAP_SKIP_WARMUP:-0}" != 1 ]; then
  echo "compiling numba code once (about a minute on a laptop; SONOMAP_SKIP_WARMUP=1 skips it)..."
  if "$VENV/bin/python" -m server.warmup; then touch "$warm";
  else echo "note: the warm-up failed; the first clustering will compile instead" >&2; fi
fi
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null;
  else echo "note: install Debian's chromium (sudo apt-get install chromium) to run the browser tests" >&2; fi
fi
