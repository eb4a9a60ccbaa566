#!/usr/bin/env bash
# start.sh [DIR] — starts etcd + kube-apiserver (detached) with state in DIR
# (default: a new temp folder) and prints the kubeconfig path:
#   export KUBECONFIG=$(sanity/cluster/start.sh /tmp/cp)
#   /var/cache/secretfs/k8s-v1.37.2/bin/kubectl get ns
#   sanity/cluster/stop.sh /tmp/cp
# Builds the binaries first if needed (~11 min cold).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
exec go run ./cmd/controlplane ${1:+-dir "$1"}
