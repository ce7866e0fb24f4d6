# Targets behind the README's two commands. Both create .venv/ and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | cksum | cut -d' ' -f1)

.PHONY: app demo test lint install real-bonescan-figures test-minimums

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the local CPU build; a bare `torch` would pull GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	tools/system-packages.sh egl
	$(BIN)/smartimaging app

demo: $(STAMP)
	$(BIN)/smartimaging demo --out demo-report

test: $(STAMP)
	tools/system-packages.sh egl chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# README figures of the bone-scan proposals on the real GE scan (needs ../shared/realdata)
real-bonescan-figures: $(STAMP)
	$(BIN)/python tools/real_bonescan_figures.py

# The declared minimum versions (every `>=` floor of pyproject.toml, runtime and mammo extra, pinned with `==` by
# tools/minimum_constraints.py) in a fresh venv of their own, then every test (no -x: each failure can be another
# floor); the test extra's tools resolve to what fits those pins. torch first, as for .venv: PyPI's Linux torch is
# the CUDA build (~3 GB with its nvidia packages). Needs the network; not part of `make test`.
MIN_VENV := build/venv-minimums
test-minimums:
	tools/system-packages.sh egl chromium
	$(PY) -m venv --clear $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q --upgrade pip
	$(PY) tools/minimum_constraints.py mammo > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/pip install -q -c $(MIN_VENV)/constraints.txt torch
	$(MIN_VENV)/bin/pip install -q -c $(MIN_VENV)/constraints.txt -e ".[test]"
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider
