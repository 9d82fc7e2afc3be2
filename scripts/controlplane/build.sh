#!/usr/bin/env bash
# Builds the real control plane used by `make cluster-up` and the integration
# tests: etcd, kube-apiserver and kube-controller-manager, from the Go module
# proxy, cached by version (a no-op when the binaries exist). Prints
# NAME=PATH lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/../lib/common.sh"

# Runs in a subshell: enter_wrapper changes directory and sets an EXIT trap.
build_kubernetes() (
  require_go kube-apiserver
  enter_wrapper kubernetes
  local staging_version=v0.${K8S_VERSION#v1.} gomod m minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  # k8s.io/kubernetes points its k8s.io/* staging modules at ./staging/...,
  # which is not in its module zip; they are published as v0.Y.Z instead.
  local staging replaces=()
  mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod")
  for m in "${staging[@]}"; do replaces+=("-replace=$m=$m@$staging_version"); done
  ((${#replaces[@]})) || { echo "error: no staging modules found in $gomod" >&2; exit 1; }
  go mod edit "${replaces[@]}"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
         "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION"
  # Without these the servers report v0.0.0-master in /version, which the
  # scanner records as the cluster's version.
  local v=k8s.io/component-base/version
  go build "${GO_BUILD_FLAGS[@]}" -o out/ \
    -ldflags="$GO_LDFLAGS -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  install_bin out/kube-apiserver "$KUBE_APISERVER"
  install_bin out/kube-controller-manager "$KUBE_CONTROLLER_MANAGER"
)

build_etcd() (
  require_go etcd
  enter_wrapper etcd
  # The server module's go.mod replaces its sibling modules with ../ paths,
  # so `go install ...@version` refuses it; a wrapper module ignores them.
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build "${GO_BUILD_FLAGS[@]}" -ldflags="$GO_LDFLAGS" -o out/etcd go.etcd.io/etcd/server/v3
  install_bin out/etcd "$ETCD"
)

if ! [[ -x $ETCD && -x $KUBE_APISERVER && -x $KUBE_CONTROLLER_MANAGER ]]; then
  lock_cache  # then look again: another process may have built them meanwhile
  [[ -x $ETCD ]] || build_etcd
  [[ -x $KUBE_APISERVER && -x $KUBE_CONTROLLER_MANAGER ]] || build_kubernetes
fi
echo "ETCD=$ETCD"
echo "KUBE_APISERVER=$KUBE_APISERVER"
echo "KUBE_CONTROLLER_MANAGER=$KUBE_CONTROLLER_MANAGER"
