#!/usr/bin/env bash
# Makes sure WeasyPrint can print the period report (kubeproof report --format pdf):
# Pango's shared libraries and a font family, from Debian's packages. The tests also read
# the PDF back with pdftotext (poppler-utils). A no-op when everything is there.
set -euo pipefail
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"


have_library() {
  ldconfig -p 2>/dev/null | grep -F "$1" >/dev/null  # not -q: with pipefail an early exit fails
}

missing=()
have_library 'libpango-1.0.so.0' || missing+=(libpango-1.0-0)
have_library 'libpangoft2-1.0.so.0' || missing+=(libpangoft2-1.0-0)
fc-list 2>/dev/null | grep -i "DejaVu Sans" >/dev/null || missing+=(fonts-dejavu-core)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)

if ((${#missing[@]})); then
  echo "pdf-deps.sh: installing ${missing[*]} from Debian packages" >&2
  apt_install "${missing[@]}"
fi
echo "pdf-deps.sh: Pango, fonts and pdftotext present"
