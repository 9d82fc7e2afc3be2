#!/usr/bin/env bash
# Makes sure WeasyPrint can print the period report (kubeproof report --format pdf):
# Pango's shared libraries and a font family, from Debian's packages. The tests also read
# the PDF back with pdftotext (poppler-utils). A no-op when everything is there.
set -euo pipefail

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "pdf-deps.sh: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

have_library() {
  ldconfig -p 2>/dev/null | grep -q "$1"
}

missing=()
have_library 'libpango-1.0.so.0' || missing+=(libpango-1.0-0)
have_library 'libpangoft2-1.0.so.0' || missing+=(libpangoft2-1.0-0)
fc-list 2>/dev/null | grep -qi 'DejaVu Sans' || missing+=(fonts-dejavu-core)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)

if ((${#missing[@]})); then
  echo "pdf-deps.sh: installing ${missing[*]} from Debian packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
echo "pdf-deps.sh: Pango, fonts and pdftotext present"
