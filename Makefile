# Set-up for a fresh machine: `make demo` runs the main job, `make test` the tests.
# Both create .venv and install everything when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: test lint demo bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "pixeltable-yolox==0.4.3" "trackeval==1.3.0" "bytetracker==0.3.2"
	touch $(STAMP)

# the web page test drives Debian's chromium through chromium-driver (selenium); installed only when missing
CHROMIUM := /usr/bin/chromium /usr/bin/chromedriver
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium chromium-driver

test: lint $(CHROMIUM)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo: $(STAMP)
	$(PY) -m yoloxdet.demo

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
