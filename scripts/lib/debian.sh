# shellcheck shell=bash
# Sourced by the scripts that install test servers and libraries from Debian's packages.

# apt_install PACKAGE...: install packages without their recommends, as root or through
# sudo; says which and why it cannot when neither is possible.
apt_install() {
  local run=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$(basename "$0"): need root (or sudo) to install: $*" >&2
      return 1
    fi
    run=(sudo)
  fi
  "${run[@]}" apt-get update -qq
  "${run[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
