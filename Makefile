# slurm-exporter: the commands of the README.
PYTHON ?= python3

.PHONY: demo demo-stop test install lint bench

## demo: a live one-node Slurm 26.05 cluster with jobs, and the exporter on :9341 (Ctrl-C stops all)
demo:
	bash scripts/demo.sh

## demo-stop: stop whatever `make demo` left running
demo-stop:
	bash scripts/demo.sh stop

## install: the exporter, its test tools and the host packages the tests need
install:
	bash scripts/ci-setup.sh

## test: every test (unit, fixtures, promtool, real slurmrestd 24.11 and 26.05, lint)
test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check exporter tests
	$(PYTHON) -m mypy exporter

## bench: cycle CPU, memory and /metrics latency at 1k/10k/100k jobs vs json.loads (minutes;
## not part of `make test`); writes benchmarks/RESULTS.md and benchmarks/results.json
bench:
	$(PYTHON) -m benchmarks.run $(BENCH_ARGS)
