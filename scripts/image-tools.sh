#!/usr/bin/env bash
# Installs the Debian tools the image-scanning tests use to build real inputs: rpm and
# rpmbuild (an rpm database of real packages), BerkeleyDB's db5.3_load (the same packages
# in rpm's older BerkeleyDB format), maven (Maven's own version comparison,
# maven-artifact) and the Java archives it depends on (jars with real Maven metadata), a
# JDK's `jar`, and gcc with binutils (an ELF binary given a cargo-auditable section by
# objcopy). A no-op when they are installed.
set -euo pipefail
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"
missing=()
command -v rpmbuild >/dev/null 2>&1 || missing+=(rpm)
[[ -f /usr/share/maven/lib/maven-artifact-3.x.jar ]] || missing+=(maven)
[[ -f /usr/share/java/guava.jar ]] || missing+=(libguava-java)
[[ -f /usr/share/java/commons-io.jar ]] || missing+=(libcommons-io-java)
command -v jar >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
command -v db5.3_load >/dev/null 2>&1 || missing+=(db5.3-util)
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
echo "RPM=$(command -v rpm)"
