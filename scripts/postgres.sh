#!/usr/bin/env bash
# Makes sure a PostgreSQL server can be started for the evidence store tests: the server
# binaries (initdb, pg_ctl, postgres) from Debian's `postgresql` package, and the
# unprivileged `postgres` user to run them as when the tests run as root (PostgreSQL
# refuses to run as root). A no-op when both are there. Prints POSTGRES_BIN=DIR.
#
# The tests start their own throwaway server on a free loopback port in a temporary
# directory (tests/store/postgres.py); nothing here starts a server.
set -euo pipefail
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"

find_bin() {
  local initdb dir
  if initdb=$(command -v initdb 2>/dev/null) && [[ -x $(dirname "$initdb")/pg_ctl ]]; then
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  # Debian keeps the server binaries out of PATH, under one directory per major version.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}


if ! bin=$(find_bin); then
  echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
  apt_install postgresql  # its own cluster is not used: the tests make their own
  bin=$(find_bin) || { echo "postgres.sh: no initdb/pg_ctl after installing postgresql" >&2; exit 1; }
fi

if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

echo "POSTGRES_BIN=$bin"
