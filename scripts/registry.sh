#!/usr/bin/env bash
# Installs the OCI distribution registry (Debian's docker-registry package) that the image
# tests push to and pull from on loopback; a no-op when it is already installed. Prints
# REGISTRY=PATH.
set -euo pipefail
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"
binary=/usr/bin/docker-registry
if ! [[ -x $binary ]]; then
  # The package's service is not wanted: tests start their own registry on 127.0.0.1.
  apt_install docker-registry
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi
echo "REGISTRY=$binary"
