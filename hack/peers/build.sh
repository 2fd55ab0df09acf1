#!/usr/bin/env bash
# Builds one peer that `make bench-peers` measures next to usersecrets, from its release on the
# Go module proxy, into a per-user cache keyed by version, and prints that directory. A second
# run finds it there and builds nothing. No peer's source is kept in this repository.
#
#   hack/peers/build.sh NAME [--check]     NAME: external-secrets | vault-k8s | kyverno
#
# With --check it only prints the directory if the build is there, and fails otherwise.
# Each is built inside a copy of its module, because their go.mod files have `replace`
# directives that `go install module@version` refuses. What the bench needs besides the binary
# (the CRDs) is copied next to it. Cold builds take minutes (External Secrets ~10 min and
# ~2.6 GB of memory on 2 cores); the time is printed.
set -euo pipefail
name="${1:?usage: build.sh external-secrets|vault-k8s|kyverno [--check]}"

case "$name" in
  external-secrets)
    module=github.com/external-secrets/external-secrets version=v0.16.2 package=.
    crds=config/crds/bases ;;
  vault-k8s)
    module=github.com/hashicorp/vault-k8s version=v1.6.2 package=. crds= ;;
  kyverno)
    module=github.com/kyverno/kyverno version=v1.19.1 package=./cmd/kyverno
    crds=config/crds ;;
  *) echo "build.sh: unknown peer $name" >&2; exit 2 ;;
esac

ldflags="-s -w"
# The recipe's digest is in the key too (flags, Go version), so a change rebuilds.
recipe="$module@$version $package crds=$crds CGO_ENABLED=0 -trimpath -ldflags=$ldflags $(go env GOVERSION)"
inputs="$(echo "$recipe" | sha256sum | cut -c1-8)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/usersecrets/peers/${name}-${version}_${inputs}"

if [[ -x "$cache/$name" ]]; then echo "$cache"; exit 0; fi
if [[ "${2:-}" == --check ]]; then exit 1; fi

start=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/usersecrets-peer-${name}.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
(
  export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
  cd "$work"
  dir="$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || { echo "build.sh: $module@$version not downloaded" >&2; exit 1; }
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  cd "$work/src"
  mkdir -p "$cache.tmp"
  go build -trimpath -ldflags "$ldflags" -o "$cache.tmp/$name" "$package"
  if [[ -n "$crds" ]]; then cp -r "$crds" "$cache.tmp/crds"; fi
  echo "$module $version" >"$cache.tmp/VERSION"
) >&2
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "built $name $version in $((SECONDS - start))s" >&2
echo "$cache"
