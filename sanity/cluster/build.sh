#!/usr/bin/env bash
# build.sh [binary...] — builds kube-apiserver, kubectl, kubelet (Kubernetes
# v1.37.2) and etcd (v3.7.3) from the Go module proxy, once, into
#   ${SECRETFS_CACHE:-/var/cache/secretfs}/k8s-v1.37.2/bin/
# With arguments, builds only those (e.g. `build.sh etcd kube-apiserver`).
# Optional, built only when named: kube-controller-manager (for the
# DaemonSet e2e test; 36 s here with the warm build cache).
# The throwaway modules live under the cache folder, never in the repo.
# Idempotent (a stamp per binary) and safe to run concurrently (flock).
# A cold build takes ~11 min on 2 cores; rebuilds with a warm Go build cache
# take seconds.
set -euo pipefail

K8S=v1.37.2          # k8s.io/kubernetes
STAGING=v0.37.2      # its staging modules (k8s.io/api, …)
ETCD=v3.7.3
ROOT=${SECRETFS_CACHE:-/var/cache/secretfs}/k8s-$K8S
BIN=$ROOT/bin
ALL=(etcd kube-apiserver kubectl kubelet)
OPTIONAL=(kube-controller-manager)
WANT=("${@:-${ALL[@]}}")

# Keep the build away from any go.work or repo settings of the caller.
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

mkdir -p "$BIN"
exec 9>"$ROOT/build.lock"
flock 9   # a second concurrent run waits here, then finds the stamps

log() { echo "build.sh: $*" >&2; }
stamp() { echo "$BIN/.$1.stamp"; }
built() { [[ -x $BIN/$1 && -f $(stamp "$1") ]]; }
now() { date +%s; }

# k8s module: requires k8s.io/kubernetes and replaces every staging module
# (which k8s.io/kubernetes's own go.mod points at ./staging/src/...) by its
# published v0.x version.
k8s_module() {
  local dir=$ROOT/src/k8s
  [[ -f $dir/.ready ]] && return 0
  mkdir -p "$dir"; cd "$dir"
  local t0; t0=$(now)
  rm -f go.mod go.sum
  go mod init secretfs.local/k8sbuild >/dev/null 2>&1
  local modfile
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$modfile")
  [[ -n $staging ]] || { log "no staging replaces in $modfile"; exit 1; }
  {
    echo "require k8s.io/kubernetes $K8S"
    for m in $staging; do echo "replace $m => $m $STAGING"; done
  } >>go.mod
  log "k8s module: $(wc -w <<<"$staging") staging modules replaced by $STAGING"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S" k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
  touch .ready
  log "k8s module resolved in $(( $(now) - t0 ))s"
}

etcd_module() {
  local dir=$ROOT/src/etcd
  [[ -f $dir/.ready ]] && return 0
  mkdir -p "$dir"; cd "$dir"
  rm -f go.mod go.sum
  go mod init secretfs.local/etcdbuild >/dev/null 2>&1
  # `go install …@v3.7.3` fails on etcd's local replaces; a wrapper works.
  go get "go.etcd.io/etcd/server/v3@$ETCD"
  touch .ready
}

build() {
  local name=$1 t0; t0=$(now)
  case $name in
    etcd)
      etcd_module; cd "$ROOT/src/etcd"
      go build -trimpath -o "$BIN/.$name.tmp" go.etcd.io/etcd/server/v3 ;;
    kube-apiserver|kubectl|kubelet|kube-controller-manager)
      k8s_module; cd "$ROOT/src/k8s"
      # Version stamping as hack/lib/version.sh does; without it the binaries
      # report v0.0.0 and kubectl/apiserver version checks misbehave.
      local x="-X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
      x+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37"
      go build -trimpath -ldflags "-s -w $x" -o "$BIN/.$name.tmp" "k8s.io/kubernetes/cmd/$name" ;;
    *) log "unknown binary $name (want one of ${ALL[*]} ${OPTIONAL[*]})"; exit 2 ;;
  esac
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  echo "$name built $(date -u +%FT%TZ) in $(( $(now) - t0 ))s" >"$(stamp "$name")"
  log "$name built in $(( $(now) - t0 ))s"
}

T0=$(now)
for b in "${WANT[@]}"; do
  if built "$b"; then log "$b: up to date ($(cat "$(stamp "$b")"))"; else build "$b"; fi
done
log "done in $(( $(now) - T0 ))s -> $BIN"
