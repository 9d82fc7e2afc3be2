# shellcheck shell=bash disable=SC2034  # the variables are used by the sourcing scripts
# Sourced by the scripts under scripts/. Holds the pinned tool versions and the
# helpers that build Go commands from the Go module proxy.
#
# Binaries are cached outside the repository (never commit them), one file per
# component and version, so changing a pin simply builds the new version.

K8S_VERSION=v1.36.3    # kube-apiserver, kube-controller-manager
ETCD_VERSION=v3.6.16   # the etcd line that k8s.io/kubernetes v1.36 is tested with
HELM_VERSION=v3.22.0
KUSTOMIZE_VERSION=v5.8.2  # v5.8.3 needs Go 1.27

KUBEPROOF_CACHE=${KUBEPROOF_CACHE:-$HOME/.cache/kubeproof}
KUBEPROOF_BIN=$KUBEPROOF_CACHE/bin

KUBE_APISERVER=$KUBEPROOF_BIN/kube-apiserver-$K8S_VERSION
KUBE_CONTROLLER_MANAGER=$KUBEPROOF_BIN/kube-controller-manager-$K8S_VERSION
ETCD=$KUBEPROOF_BIN/etcd-$ETCD_VERSION
HELM=$KUBEPROOF_BIN/helm-$HELM_VERSION
KUSTOMIZE=$KUBEPROOF_BIN/kustomize-$KUSTOMIZE_VERSION

# Static binaries that run on any Linux machine; -s -w drops debug info (~30% smaller).
export CGO_ENABLED=0
GO_BUILD_FLAGS=(-trimpath)
GO_LDFLAGS="-s -w"

# enter_wrapper NAME: cd into a fresh throwaway module. Building from a module
# of our own (instead of `go install pkg@version`) lets us add the replace
# directives that the upstream go.mod files keep for their own builds only.
enter_wrapper() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/kubeproof-build-$1.XXXXXX")
  # shellcheck disable=SC2064  # expand $dir now
  trap "rm -rf '$dir'" EXIT
  cd "$dir" || exit
  go mod init "kubeproof.invalid/build/$1" >/dev/null 2>&1
}

# install_bin BUILT TARGET: move into the cache atomically, so an interrupted
# build never leaves a half-written binary that later runs would trust.
install_bin() {
  mkdir -p "$(dirname "$2")"
  mv -f "$1" "$2.tmp.$$"
  mv -f "$2.tmp.$$" "$2"
}

# lock_cache: one build at a time (parallel test workers; 2 cores are busy enough).
lock_cache() {
  mkdir -p "$KUBEPROOF_CACHE"
  exec 9>"$KUBEPROOF_CACHE/build.lock"
  flock 9
}

require_go() {
  command -v go >/dev/null || { echo "error: 'go' is needed to build $1 (see README)" >&2; exit 1; }
}

# running PID: true while PID runs. Unlike `kill -0`, false for a zombie: a
# server that died before its parent reaped it, or whose parent is gone.
running() {
  ps -o stat= -p "$1" 2>/dev/null | grep -qv '^ *Z'
}
