#!/usr/bin/env bash
# chart.sh — the chart's chores, run by make (and by deploy/deploy_test.go,
# so that CI checks what make does):
#   chart.sh crds             copy the SecretProviderClass CRD from the Go
#                             module into the chart (make crds)
#   chart.sh crd-source       print the path of that CRD in the module cache
#   chart.sh render DIR [ARGS...]
#                             render the chart into DIR/NAME.yaml, one file
#                             per template (ARGS go to helm template)
#   chart.sh manifests [DIR]  render deploy/*.yaml with default values (make
#                             deploy); with DIR, into DIR and nothing else
#   chart.sh lint             helm lint --strict and helm template, with the
#                             default values and ci/*-values.yaml (make helm-lint)
# helm is built once into /var/cache/secretfs by deploy/build-helm.sh.
set -euo pipefail

DEPLOY=$(cd "$(dirname "$0")" && pwd)
CHART=$DEPLOY/chart/secretfs
CRD_MODULE=sigs.k8s.io/secrets-store-csi-driver@v1.6.0
CRD_PATH=charts/secrets-store-csi-driver/crds/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml
CRD_COPY=$CHART/files/$(basename "$CRD_PATH")
# deploy/*.yaml are the release "secretfs" in namespace "secretfs", with
# the Namespace object (which `helm install --create-namespace` makes), for
# the Kubernetes release the tests run (the chart renders fields by version).
RELEASE=(secretfs "$CHART" --namespace secretfs --set createNamespace=true --kube-version v1.37.2)
HEADER="# Rendered from deploy/chart/secretfs by \`make deploy\` (default values): edit the chart, not this file."

helm() { "$(bash "$DEPLOY/build-helm.sh")" "$@"; }

crd_source() {
  local dir
  # Outside any module: a download that touches no go.mod or go.sum.
  dir=$(cd / && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$CRD_MODULE" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir && -f $dir/$CRD_PATH ]] || { echo "chart.sh: $CRD_PATH not in $CRD_MODULE" >&2; exit 1; }
  echo "$dir/$CRD_PATH"
}

# render DIR ARGS...: helm template's output split by its "# Source:" lines.
render() {
  local out=$1; shift
  mkdir -p "$out"
  helm template "$@" | awk -v out="$out" -v header="$HEADER" '
    /^---$/ { sep = 1; next }
    sep && /^# Source: [^\/]+\/templates\// {
      name = $3; sub(/^[^\/]+\/templates\//, "", name); gsub(/\//, "-", name)
      file = out "/" name
      if (!(file in seen)) { seen[file] = 1; print header > file } else { print "---" > file }
      sep = 0; next
    }
    sep { print "---" > file; sep = 0 }
    { print > file }'
}

case ${1:-} in
  crds)
    install -m 0644 "$(crd_source)" "$CRD_COPY"
    echo "chart.sh: $CRD_COPY <- $CRD_MODULE" >&2 ;;
  crd-source)
    crd_source ;;
  render)
    [[ $# -ge 2 ]] || { echo "usage: chart.sh render DIR [helm template args]" >&2; exit 2; }
    dir=$2; shift 2
    render "$dir" "$@" ;;
  manifests)
    if [[ -n ${2:-} ]]; then render "$2" "${RELEASE[@]}"; exit 0; fi
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    render "$tmp" "${RELEASE[@]}"
    # Replace the rendered files only: examples/, chart/ and the rest stay.
    { grep -lxF "$HEADER" "$DEPLOY"/*.yaml || true; } | xargs -r rm -f
    cp "$tmp"/*.yaml "$DEPLOY"/
    ls "$tmp" | sed 's#^#chart.sh: rendered deploy/#' >&2 ;;
  lint)
    for v in "" "$CHART"/ci/*-values.yaml; do
      args=(); [[ -n $v ]] && args=(--values "$v")
      name=${v#"$DEPLOY"/}; echo "== ${name:-default values}" >&2
      helm lint --strict "$CHART" "${args[@]}"
      helm template secretfs "$CHART" --namespace secretfs "${args[@]}" >/dev/null
    done ;;
  *)
    sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
