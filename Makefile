# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-tools lint typecheck install docs clean cluster-up cluster-down

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

## Everything CI runs: lint, types, unit and integration tests (real control plane, helm,
## kustomize: built from the Go module proxy on first use, then cached by version).
test: $(STAMP) lint typecheck test-tools
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-tools:
	scripts/controlplane/build.sh
	scripts/tools.sh
	scripts/registry.sh
	scripts/image-tools.sh
	scripts/postgres.sh
	scripts/pdf-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate docs that are generated from the catalogue data.
docs: $(STAMP)
	$(BIN)/python -m kubeproof.docs_gen

## A real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1 for development.
## The first run compiles them from the Go module proxy; later runs start in seconds.
DEV_CLUSTER ?= .dev-cluster

cluster-up:  ## start the local control plane in $(DEV_CLUSTER)/ (prints the kubeconfigs to use)
	@scripts/controlplane/build.sh >/dev/null
	@scripts/controlplane/up.sh $(DEV_CLUSTER)

cluster-down:  ## stop the local control plane and delete $(DEV_CLUSTER)/
	@scripts/controlplane/down.sh $(DEV_CLUSTER)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
