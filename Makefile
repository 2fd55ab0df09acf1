# One entry point for people and CI. Every target sets up what it needs by itself.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The development tooling (dev/usersecrets_dev) is importable here, never installed.
export PYTHONPATH := $(CURDIR)/dev

.PHONY: run test lint unit integration controlplane crds bench peers bench-peers e2e-kind clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Build (once, cached by version) the local control plane binaries.
controlplane:
	bash hack/controlplane/build.sh >/dev/null

## Start a local control plane (unless KUBECONFIG is set), install the chart, run the operator.
run: $(VENV)/.installed
	@if [ -z "$${KUBECONFIG:-}" ]; then bash hack/controlplane/build.sh >/dev/null; fi
	$(BIN)/python -m usersecrets_dev.run

lint: $(VENV)/.installed
	$(BIN)/ruff check operator dev tests bench
	$(BIN)/ruff format --check operator dev tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -q

## Lint, unit tests and integration tests against the real local control plane.
test: $(VENV)/.installed controlplane lint
	$(BIN)/pytest -q --durations=15

## Regenerate crds/ from the pydantic models (the single source of truth).
crds: $(VENV)/.installed
	$(BIN)/python -m usersecrets.api.crds crds

bench: $(VENV)/.installed controlplane
	$(BIN)/python -m bench $(ARGS)

## Build (once, cached by version) the peers bench-peers measures: External Secrets Operator,
## vault-k8s and Kyverno, from their releases on the Go module proxy.
peers:
	bash hack/peers/build.sh external-secrets >/dev/null
	bash hack/peers/build.sh vault-k8s >/dev/null
	bash hack/peers/build.sh kyverno >/dev/null

## usersecrets side by side with those peers (heavy: not part of `make test`).
bench-peers: $(VENV)/.installed controlplane peers
	$(BIN)/python -m bench.peers $(ARGS)

## End-to-end on kind (needs Docker): image, cluster, chart, a Job that reads its secret.
e2e-kind:
	bash hack/e2e-kind.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
