#!/usr/bin/env bash
# Installs the OCI distribution registry (Debian's docker-registry package) that the image
# tests push to and pull from on loopback; a no-op when it is already installed. Prints
# REGISTRY=PATH.
set -euo pipefail
binary=/usr/bin/docker-registry
if ! [[ -x $binary ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "registry.sh: $binary is missing; install the docker-registry package as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's service is not wanted: tests start their own registry on 127.0.0.1.
  apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi
echo "REGISTRY=$binary"
