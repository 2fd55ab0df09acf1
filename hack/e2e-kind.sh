#!/usr/bin/env bash
# End-to-end test on kind (needs Docker, kind, kubectl and helm): `make e2e-kind`.
#
#  1. builds the operator image                       (skip: SKIP_BUILD=1)
#  2. creates the kind cluster $KIND_CLUSTER unless it exists, loads the image
#                                                     (skip: SKIP_CLUSTER=1, uses the current
#                                                      kube context, or KUBE_CONTEXT)
#  3. applies the CRDs and installs the chart          (skip: SKIP_INSTALL=1)
#  4. in a namespace labelled usersecrets.io/user=alice, creates the UserSecret db-password,
#     waits for Ready, runs a Job whose busybox container checks that the file
#     /var/secrets/db and the env var DB_PASSWORD hold the value, waits for it to complete.
#
# CI (.github/workflows/e2e-kind.yaml) does steps 1-3 itself and runs this with all SKIP_*=1.
# The value never appears in the Job: the container compares SHA-256 digests.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

KIND_CLUSTER="${KIND_CLUSTER:-usersecrets-e2e}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-usersecrets}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
RELEASE="${RELEASE:-usersecrets}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-usersecrets-system}"
TEST_NAMESPACE="${TEST_NAMESPACE:-usersecrets-e2e-alice}"
TEST_USER="${TEST_USER:-alice}"
BUSYBOX_IMAGE="${BUSYBOX_IMAGE:-busybox:1.37}"
TIMEOUT_SECONDS="${TIMEOUT_SECONDS:-180}"
SKIP_BUILD="${SKIP_BUILD:-0}"
SKIP_CLUSTER="${SKIP_CLUSTER:-0}"
SKIP_INSTALL="${SKIP_INSTALL:-0}"
KEEP_NAMESPACE="${KEEP_NAMESPACE:-0}"
DELETE_CLUSTER="${DELETE_CLUSTER:-0}"
KUBE_CONTEXT="${KUBE_CONTEXT:-}"

image="${IMAGE_REPOSITORY}:${IMAGE_TAG}"
# The chart's full name (templates/_helpers.tpl): the release name when it contains the chart
# name, else "<release>-usersecrets".
if [[ "$RELEASE" == *usersecrets* ]]; then fullname="$RELEASE"; else fullname="$RELEASE-usersecrets"; fi

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
if [[ "$SKIP_BUILD" != 1 ]]; then command -v docker >/dev/null || die "docker is not installed"; fi
if [[ "$SKIP_CLUSTER" != 1 ]]; then command -v kind >/dev/null || die "kind is not installed"; fi

if [[ "$SKIP_CLUSTER" != 1 && -z "$KUBE_CONTEXT" ]]; then KUBE_CONTEXT="kind-$KIND_CLUSTER"; fi
kubectl_args=()
helm_args=()
if [[ -n "$KUBE_CONTEXT" ]]; then
  kubectl_args=(--context "$KUBE_CONTEXT")
  helm_args=(--kube-context "$KUBE_CONTEXT")
fi
# ${a[@]+"${a[@]}"}: an empty array under `set -u` on bash 3.2 (macOS).
k() { kubectl ${kubectl_args[@]+"${kubectl_args[@]}"} "$@"; }

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi
}

diagnostics() {
  log "diagnostics"
  k -n "$RELEASE_NAMESPACE" get deployment,pods,lease -o wide || true
  k -n "$RELEASE_NAMESPACE" logs -l "app.kubernetes.io/instance=$RELEASE" --all-containers \
    --prefix --tail=200 || true
  k get mutatingwebhookconfiguration "$fullname" -o yaml || true
  k -n "$TEST_NAMESPACE" get usersecrets,secrets,jobs,pods -o wide || true
  k -n "$TEST_NAMESPACE" describe usersecret db-password || true
  k -n "$TEST_NAMESPACE" describe job db-password-check || true
  k -n "$TEST_NAMESPACE" logs job/db-password-check --all-containers || true
  k -n "$TEST_NAMESPACE" get events --sort-by=.lastTimestamp || true
}
on_exit() {
  local status=$?
  if [[ $status -ne 0 ]]; then diagnostics; printf '\nE2E FAILED\n' >&2; fi
  exit "$status"
}
trap on_exit EXIT

# --- 1. image ---------------------------------------------------------------------------------
if [[ "$SKIP_BUILD" != 1 ]]; then
  log "building $image"
  docker build -t "$image" "$repo_root"
fi

# --- 2. cluster -------------------------------------------------------------------------------
if [[ "$SKIP_CLUSTER" != 1 ]]; then
  if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    log "using the existing kind cluster $KIND_CLUSTER"
  else
    log "creating the kind cluster $KIND_CLUSTER"
    kind create cluster --name "$KIND_CLUSTER" --wait 120s
  fi
  log "loading $image into $KIND_CLUSTER"
  kind load docker-image "$image" --name "$KIND_CLUSTER"
fi

# --- 3. CRDs and chart ------------------------------------------------------------------------
if [[ "$SKIP_INSTALL" != 1 ]]; then
  # Helm installs crds/ only on a first install; applying them first also upgrades them.
  log "applying the CRDs"
  k apply --server-side -f "$repo_root/crds/"
  log "installing the chart (release $RELEASE in $RELEASE_NAMESPACE)"
  helm upgrade --install "$RELEASE" "$repo_root/charts/usersecrets" \
    ${helm_args[@]+"${helm_args[@]}"} \
    --namespace "$RELEASE_NAMESPACE" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" \
    --set image.tag="$IMAGE_TAG" \
    --set image.pullPolicy=IfNotPresent \
    --wait --timeout 5m
fi

log "waiting for the operator"
k -n "$RELEASE_NAMESPACE" rollout status "deployment/$fullname" --timeout="${TIMEOUT_SECONDS}s"
k wait --for=condition=Established --timeout=60s \
  crd/usersecrets.usersecrets.io crd/secretgrants.usersecrets.io
# Default mode: the operator writes its CA into the webhook configuration; wait for it.
deadline=$((SECONDS + TIMEOUT_SECONDS))
until [[ -n "$(k get mutatingwebhookconfiguration "$fullname" \
  -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]]; do
  (( SECONDS < deadline )) || die "the webhook configuration $fullname has no caBundle"
  sleep 2
done

# --- 4. the scenario --------------------------------------------------------------------------
log "preparing namespace $TEST_NAMESPACE (user $TEST_USER)"
k delete namespace "$TEST_NAMESPACE" --ignore-not-found --wait=true --timeout=120s
k create namespace "$TEST_NAMESPACE"
k label namespace "$TEST_NAMESPACE" "usersecrets.io/user=$TEST_USER" --overwrite

value="e2e-$(date +%s)-${RANDOM}${RANDOM}"
value_b64="$(printf '%s' "$value" | base64 | tr -d '\n')"
expected_sha256="$(printf '%s' "$value" | sha256)"

log "creating UserSecret db-password"
k -n "$TEST_NAMESPACE" apply -f - <<YAML
apiVersion: usersecrets.io/v1alpha1
kind: UserSecret
metadata:
  name: db-password
spec:
  value: "${value_b64}"
YAML
k -n "$TEST_NAMESPACE" wait usersecret/db-password --for=condition=Ready \
  --timeout="${TIMEOUT_SECONDS}s"

log "running Job db-password-check"
k -n "$TEST_NAMESPACE" apply -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: db-password-check
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 600
  template:
    metadata:
      annotations:
        usersecrets.io/volumes: secret:db-password:/var/secrets/db
        usersecrets.io/env: DB_PASSWORD=secret:db-password
    spec:
      restartPolicy: Never
      containers:
        - name: check
          image: ${BUSYBOX_IMAGE}
          env:
            - name: EXPECTED_SHA256
              value: "${expected_sha256}"
          command: ["sh", "-c"]
          args:
            - |
              set -eu
              test -f /var/secrets/db || { echo "FAIL: /var/secrets/db is not a file"; exit 1; }
              file_sha="\$(sha256sum /var/secrets/db | cut -d' ' -f1)"
              env_sha="\$(printf '%s' "\${DB_PASSWORD:-}" | sha256sum | cut -d' ' -f1)"
              [ "\$file_sha" = "\$EXPECTED_SHA256" ] || { echo "FAIL: file content differs"; exit 1; }
              [ "\$env_sha" = "\$EXPECTED_SHA256" ] || { echo "FAIL: DB_PASSWORD differs"; exit 1; }
              echo "OK: /var/secrets/db and DB_PASSWORD hold the secret"
YAML

deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  succeeded="$(k -n "$TEST_NAMESPACE" get job db-password-check -o jsonpath='{.status.succeeded}')"
  failed="$(k -n "$TEST_NAMESPACE" get job db-password-check -o jsonpath='{.status.failed}')"
  [[ "${succeeded:-0}" -ge 1 ]] && break
  [[ "${failed:-0}" -ge 1 ]] && die "Job db-password-check failed"
  (( SECONDS < deadline )) || die "Job db-password-check did not complete in ${TIMEOUT_SECONDS}s"
  sleep 2
done
k -n "$TEST_NAMESPACE" logs job/db-password-check

if [[ "$KEEP_NAMESPACE" != 1 ]]; then
  k delete namespace "$TEST_NAMESPACE" --wait=false
fi
if [[ "$DELETE_CLUSTER" == 1 && "$SKIP_CLUSTER" != 1 ]]; then
  kind delete cluster --name "$KIND_CLUSTER"
fi

printf '\nE2E PASSED: a Job mounted UserSecret db-password as a file and an env var.\n'
