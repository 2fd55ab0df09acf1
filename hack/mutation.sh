#!/usr/bin/env bash
# Mutation testing of the pure modules (`make mutation`): mutmut changes rules/ and api/ one
# small edit at a time and runs their unit tests against each change; a mutant the tests do
# not catch "survives". Not part of `make test`: it takes minutes of both cores.
#
# mutmut derives module names from paths under ./ or src/ only, so it runs in build/mutation,
# a copy of the tree with the package under src/ (our source root is operator/). The results
# stay there: `cd build/mutation && ../../.venv/bin/mutmut show NAME` shows a mutant.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PYTHONPATH="$root/dev"  # the tests' conftest imports the development tooling
work=build/mutation
rm -rf "$work"
mkdir -p "$work/src"
cp -r operator/usersecrets "$work/src/"
cp -r tests crds pyproject.toml "$work/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
cd "$work"
started=$SECONDS
"$root/.venv/bin/mutmut" run --max-children "${JOBS:-2}" "$@" >mutmut.log 2>&1 || {
    tail -40 mutmut.log
    exit 1
}
"$root/.venv/bin/python" "$root/hack/mutation_score.py" "$((SECONDS - started))"
