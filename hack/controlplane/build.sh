#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and helm from the
# modules pinned in this folder into a per-user cache keyed by version, and prints
# that directory. A second run finds the binaries there and builds nothing.
# With --check it only prints the directory if the binaries are there, and fails otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(awk '$1=="k8s.io/kubernetes" {print $2}' "$here/go.mod")"
ETCD_VERSION="$(awk '$1=="go.etcd.io/etcd/server/v3" {print $2}' "$here/go.mod")"
HELM_VERSION="$(cat "$here/helm.version")"
# The inputs' digest is in the key too, so a change of flags here rebuilds instead of reusing.
inputs="$(cd "$here" && cat build.sh go.mod go.sum helm.version etcd/main.go | sha256sum | cut -c1-8)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/usersecrets/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_${inputs}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

complete() { for b in "${bins[@]}"; do [[ -x "$cache/$b" ]] || return 1; done; }
if complete; then echo "$cache"; exit 0; fi
if [[ "${1:-}" == --check ]]; then exit 1; fi

mkdir -p "$cache.tmp"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor
 -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
start=$SECONDS
(
  cd "$here"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  go build -trimpath -ldflags "$ldflags" -o "$cache.tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  go build -trimpath -ldflags "-s -w" -o "$cache.tmp/etcd" ./etcd
  # Helm's built-in default Kubernetes version is what `helm template` checks kubeVersion against.
  chartutil=helm.sh/helm/v3/pkg/chartutil
  GOBIN="$cache.tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION
 -X $chartutil.k8sVersionMajor=1 -X $chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
) >&2
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "built the control plane in $((SECONDS - start))s" >&2
echo "$cache"
