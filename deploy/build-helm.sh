#!/usr/bin/env bash
# build-helm.sh — builds helm (v3.22.0) from the Go module proxy, once, into
#   ${SECRETFS_CACHE:-/var/cache/secretfs}/helm-v3.22.0/bin/helm
# and prints that path on stdout. `build-helm.sh --built` only says (exit
# status) whether it is built. `make helm-lint`, `make deploy` and the
# chart tests in deploy/ use it; CI (.ci/run) runs it before `make test`.
# The throwaway module lives under the cache folder, never in the repo, as
# sanity/cluster/build.sh does for Kubernetes. Idempotent (a stamp) and safe
# to run concurrently (flock).
set -euo pipefail

HELM=v3.22.0
ROOT=${SECRETFS_CACHE:-/var/cache/secretfs}/helm-$HELM
BIN=$ROOT/bin
STAMP=$BIN/.helm.stamp

# Keep the build away from any go.work or repo settings of the caller.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { echo "build-helm.sh: $*" >&2; }
now() { date +%s; }

if [[ ${1:-} == --built ]]; then [[ -x $BIN/helm && -f $STAMP ]]; exit; fi

mkdir -p "$BIN"
exec 9>"$ROOT/build.lock"
flock 9   # a second concurrent run waits here, then finds the stamp

if [[ -x $BIN/helm && -f $STAMP ]]; then
  # Up to date: quiet, so callers can use the path it prints.
  echo "$BIN/helm"
  exit 0
fi

T0=$(now)
SRC=$ROOT/src
if [[ ! -f $SRC/.ready ]]; then
  mkdir -p "$SRC"; cd "$SRC"
  rm -f go.mod go.sum
  go mod init secretfs.local/helmbuild >/dev/null 2>&1
  go get "helm.sh/helm/v3@$HELM" >&2
  touch .ready
fi
cd "$SRC"
# Version stamping as helm's Makefile does. Without the Kubernetes version
# (its client-go's minor, as 1.x) `helm template` and `helm lint` assume
# Kubernetes v1.20 and refuse a chart's kubeVersion >= 1.26.
minor=$(go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
x="-X helm.sh/helm/v3/internal/version.version=$HELM"
x+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in pkg/lint/rules pkg/chartutil; do
  x+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$minor"
done
go build -trimpath -ldflags "-s -w $x" -o "$BIN/.helm.tmp" helm.sh/helm/v3/cmd/helm
mv -f "$BIN/.helm.tmp" "$BIN/helm"
echo "helm $HELM (Kubernetes 1.$minor) built $(date -u +%FT%TZ) in $(( $(now) - T0 ))s" >"$STAMP"
log "$(cat "$STAMP") -> $BIN/helm"
echo "$BIN/helm"
