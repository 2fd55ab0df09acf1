# One entry point for people and CI. Every target sets up what it needs by itself.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The development tooling (dev/usersecrets_dev) is importable here, never installed.
export PYTHONPATH := $(CURDIR)/dev

BROWSER_TESTS := tests/browser

.PHONY: run test lint unit integration controlplane node browser crds bench bench-scale peers bench-peers ui-timing mutation e2e-kind clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Build (once, cached by version) the local control plane binaries.
controlplane:
	bash hack/controlplane/build.sh >/dev/null

## Install (Debian's runtime) and build (kubelet, once, cached by version) the local node.
## Without root this only warns: the node's tests then skip, except in CI, where they fail.
node:
	bash hack/node/build.sh >/dev/null || [ "$${CI:-}" != true ]

## Start a local control plane and node (unless KUBECONFIG is set), install the chart, run the operator.
run: $(VENV)/.installed
	@if [ -z "$${KUBECONFIG:-}" ]; then bash hack/controlplane/build.sh >/dev/null; \
	  bash hack/node/build.sh >/dev/null || echo "no node: make run starts the control plane only"; fi
	$(BIN)/python -m usersecrets_dev.run

## Debian's chromium for the web UI's browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; }

## axe-core, pinned by package-lock.json, which the browser tests inject into the UI's pages.
$(BROWSER_TESTS)/node_modules/.installed: $(BROWSER_TESTS)/package.json $(BROWSER_TESTS)/package-lock.json
	npm ci --prefix $(BROWSER_TESTS) --ignore-scripts --no-audit --no-fund --silent
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check operator dev tests bench
	$(BIN)/ruff format --check operator dev tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -q

## Lint, unit tests and integration tests against the real local control plane.
test: $(VENV)/.installed controlplane node browser $(BROWSER_TESTS)/node_modules/.installed lint
	$(BIN)/pytest -q --durations=15

## Regenerate crds/ from the pydantic models (the single source of truth).
crds: $(VENV)/.installed
	$(BIN)/python -m usersecrets.api.crds crds

## Page load and action times of the web UI, from the browser (p50/p99 over 100 of each).
ui-timing: $(VENV)/.installed controlplane browser
	$(BIN)/python -m usersecrets_dev.ui_timing $(ARGS)

bench: $(VENV)/.installed controlplane
	$(BIN)/python -m bench $(ARGS)

## One leader at platform size: 5,000 users, 100,000 UserSecrets, 20,000 grants (~25 min on 2 cores).
bench-scale: $(VENV)/.installed controlplane
	$(BIN)/python -m bench.scale $(ARGS)

## Mutation testing of the pure modules (rules/, api/) against their unit tests; not in `test`.
mutation: $(VENV)/.installed
	bash hack/mutation.sh

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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(BROWSER_TESTS)/node_modules
