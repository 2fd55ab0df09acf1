#!/usr/bin/env bash
# Sets up what the local node needs and prints the directory holding its binaries:
# - Debian's packages for the runtime (containerd, runc, the CNI plugins), busybox for the test
#   image, gcc for the pause binary, mmdebstrap for the operator's image: installed with apt-get
#   when missing (root only; we never download a runtime from anywhere else);
# - kubelet, built from the Kubernetes release pinned in ../controlplane, into a cache keyed by
#   that version and by this script's digest; a second run builds nothing.
# With --check it only prints the directory if everything is there, and fails otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module="$here/../controlplane"
packages=(containerd runc containernetworking-plugins busybox-static gcc libc6-dev mmdebstrap)
K8S_VERSION="$(awk '$1=="k8s.io/kubernetes" {print $2}' "$module/go.mod")"
inputs="$(cat "$here/build.sh" "$here/pause.c" "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-8)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/usersecrets/node/k8s-${K8S_VERSION}_${inputs}"

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
complete() { [[ -x "$cache/kubelet" && -x "$cache/pause" && ${#missing[@]} == 0 ]]; }
if complete; then echo "$cache"; exit 0; fi
if [[ "${1:-}" == --check ]]; then exit 1; fi

if (( ${#missing[@]} )); then
  if [[ $(id -u) != 0 ]]; then
    echo "the node needs Debian's packages ${missing[*]}: run as root, or install them" >&2
    exit 1
  fi
  # The package lists may be missing on a fresh machine; an update is cheap next to a build.
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

start=$SECONDS
mkdir -p "$cache.tmp"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
(
  cd "$module"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  go build -trimpath -o "$cache.tmp/" -ldflags "-s -w -X $pkg.gitVersion=$K8S_VERSION
 -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean
 -X $pkg.buildDate=1970-01-01T00:00:00Z" k8s.io/kubernetes/cmd/kubelet
) >&2
# The sandbox ("pause") container's only process: a static binary, so its image is one file.
gcc -static -O2 -o "$cache.tmp/pause" "$here/pause.c" >&2
strip "$cache.tmp/pause"
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "built the node in $((SECONDS - start))s" >&2
echo "$cache"
