# retailfn: the two commands of the quick start are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-unit test-integration run schemas bench lint fmt clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest -m "unit or functions"

test-integration: venv
	$(BIN)/python -m pytest -m "integration or e2e"

run: venv
	$(BIN)/retailfn demo

schemas: venv
	$(BIN)/retailfn schema export --out events/schemas

bench: venv
	$(BIN)/python -m bench

# The habits, checked: ruff (lint and format), mypy --strict, and the layering (import-linter,
# contracts in pyproject.toml). Each tool reads its settings from pyproject.toml.
LINTED := shared events functions tests bench
lint: venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .retailfn build *.egg-info

# Static checks of infra/ and serverless.yaml with checkov, from its own venv (.venv-tools), so
# that checkov's dependencies never touch the project's venv.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
CHECKOV := $(TOOLS)/bin/checkov --skip-download --quiet --compact

$(TOOLS_STAMP): requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $(TOOLS_STAMP)

.PHONY: check-infra
check-infra: venv $(TOOLS_STAMP)
	$(BIN)/retailfn infra generate --check
	$(CHECKOV) -d infra --framework terraform terraform_json secrets
	$(CHECKOV) -f serverless.yaml --framework serverless
