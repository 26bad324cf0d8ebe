# slurm-exporter: the commands of the README.
# Python runs from a project virtual environment, $(VENV), made with the host's python3
# (>= 3.11; Debian 12's own works: it refuses pip outside a venv, PEP 668).
HOST_PYTHON ?= python3
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# the venv's tools (hadolint, slurm-exporter) before the host's, for the tests
VENV_PATH = PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: demo demo-stop test install venv lint bench

## demo: a live one-node Slurm 26.05 cluster with jobs, and the exporter on :9341 (Ctrl-C stops all)
## (DEMO_ARGS: scripts/demo.sh's options, e.g. DEMO_ARGS='--release 24.11')
demo:
	bash scripts/demo.sh $(DEMO_ARGS)

## demo-stop: stop whatever `make demo` left running
demo-stop:
	bash scripts/demo.sh stop

## install: the host packages the tests need (apt, as root), then the venv
install:
	bash scripts/ci-setup.sh

## venv: $(VENV) with the exporter (editable) and its test tools; again when pyproject.toml changes
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(HOST_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

## test: every test (unit, fixtures, promtool, real slurmrestd 22.05, 24.11 and 26.05,
## the systemd unit and the README's install on a stock Debian 12, lint)
test: install
	$(VENV_PATH) $(PYTHON) -m pytest

lint: venv
	$(PYTHON) -m ruff check exporter tests
	$(PYTHON) -m mypy exporter

## bench: cycle CPU, memory and /metrics latency at 1k/10k/100k jobs vs json.loads (minutes;
## not part of `make test`); writes benchmarks/RESULTS.md and benchmarks/results.json
bench: venv
	$(PYTHON) -m benchmarks.run $(BENCH_ARGS)
