#!/usr/bin/env bash
# Builds the command-line tools that the Helm and Kustomize source tests run
# (helm, kustomize) from the Go module proxy, cached by version (a no-op when
# the binaries exist). Prints NAME=PATH lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"

# Each runs in a subshell: enter_wrapper changes directory and sets an EXIT trap.
build_helm() (
  require_go helm
  enter_wrapper helm
  go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # Helm's own release build stamps its version and the Kubernetes version
  # that `helm template` assumes (the default otherwise is v1.20).
  local kube h=helm.sh/helm/v3
  kube=$(go list -m -f '{{.Version}}' k8s.io/client-go)  # v0.Y.Z
  kube=${kube#v0.}
  go build "${GO_BUILD_FLAGS[@]}" -o out/helm -ldflags="$GO_LDFLAGS \
    -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean \
    -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=${kube%%.*} \
    -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=${kube%%.*}" \
    helm.sh/helm/v3/cmd/helm
  install_bin out/helm "$HELM"
)

build_kustomize() (
  require_go kustomize
  enter_wrapper kustomize
  go get "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  go build "${GO_BUILD_FLAGS[@]}" -ldflags="$GO_LDFLAGS" -o out/kustomize sigs.k8s.io/kustomize/kustomize/v5
  install_bin out/kustomize "$KUSTOMIZE"
)

if ! [[ -x $HELM && -x $KUSTOMIZE ]]; then
  lock_cache  # then look again: another process may have built them meanwhile
  [[ -x $HELM ]] || build_helm
  [[ -x $KUSTOMIZE ]] || build_kustomize
fi
echo "HELM=$HELM"
echo "KUSTOMIZE=$KUSTOMIZE"
