# The README's two commands are `make demo` and `make test`; CI runs `.ci/run`, which runs `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup demo test synth lint asl-validate bench docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Lambda layers' wheels (arm64, CPython 3.13), fetched once here so `make synth` builds the layers offline.
WHEELHOUSE := .build/wheels
$(WHEELHOUSE)/.complete: lambdas/layer/requirements.txt lambdas/collect_layer/requirements.txt $(BIN)/.installed
	$(BIN)/python -m stacks.wheelhouse
	touch $@

setup: $(BIN)/.installed node_modules/.installed $(WHEELHOUSE)/.complete

demo: setup
	$(BIN)/batchline local run samples/demo-sagemaker.csv --pipeline demo-sagemaker --out out/demo

test: setup
	$(BIN)/pytest

# Offline after `make setup`: the layers install from $(WHEELHOUSE) only (stacks/wheelhouse.py).
synth: setup
	npx cdk synth --quiet

asl-validate: node_modules/.installed
	npx asl-validator --json-path statemachine/*.asl.json

bench: setup
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run

docs: setup
	$(BIN)/python -m batchline_local.config_reference

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy lambdas/batchline

clean:
	rm -rf $(VENV) node_modules cdk.out out
