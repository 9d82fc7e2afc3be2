# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration install docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Scan the bundled example application and write report files to out/.
demo: $(STAMP)
	@mkdir -p out
	$(BIN)/kubeproof scan examples/ --fail-on none
	$(BIN)/kubeproof scan examples/ --format json --output out/report.json --fail-on none
	$(BIN)/kubeproof scan examples/ --format sarif --output out/report.sarif --fail-on none
	$(BIN)/kubeproof scan examples/ --format junit --output out/report.junit.xml --fail-on none
	$(BIN)/kubeproof scan examples/ --format csv --output out/results.csv --fail-on none
	@echo "Reports written to out/: report.json report.sarif report.junit.xml results.csv"

## Everything CI runs: lint, types, unit and integration tests.
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate docs that are generated from the catalogue data.
docs: $(STAMP)
	$(BIN)/python -m kubeproof.docs_gen

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
