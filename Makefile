# The two commands a newcomer needs (see README):
#   make demo   install everything, build the bundled demo collection, start the app
#   make test   install everything, run ruff and the whole test suite
# install also compiles numba's code into NUMBA_CACHE_DIR once (server/warmup.py), so the first clustering is quick
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5000
HOST ?= 127.0.0.1
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: demo test install lint bench warmup

install:
	bash scripts/install.sh

# compile numba code into $(NUMBA_CACHE_DIR) now (install does it once; this redoes it)
warmup:
	$(PY) -m server.warmup

demo: install
	$(PY) -m preprocess build demo/recordings --labels demo/recordings/labels.csv --out demo/collections/demo
	$(PY) -m preprocess info demo/collections/demo --no-credits
	@if [ -f server/__main__.py ]; then $(PY) -m server --collections demo/collections --host $(HOST) --port $(PORT); \
	else echo "(the server is not part of this version yet: the demo collection is in demo/collections/demo)"; fi

test:
	bash scripts/install.sh --browser
	$(VENV)/bin/ruff check preprocess server tests bench
	$(VENV)/bin/ruff format --check preprocess server tests bench
	$(PY) -m pytest

lint:
	$(VENV)/bin/ruff check --fix preprocess server tests bench
	$(VENV)/bin/ruff format preprocess server tests bench

bench:
	$(PY) bench/preprocess.py
