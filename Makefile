# Targets behind the README's two commands. Both create .venv/ and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: app demo test lint install real-bonescan-figures

$(STAMP): pyproject.toml
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
