#!/usr/bin/env bash
# Makes sure a PostgreSQL server can be started for the evidence store tests: the server
# binaries (initdb, pg_ctl, postgres) from Debian's `postgresql` package, and the
# unprivileged `postgres` user to run them as when the tests run as root (PostgreSQL
# refuses to run as root). A no-op when both are there. Prints POSTGRES_BIN=DIR.
#
# The tests start their own throwaway server on a free loopback port in a temporary
# directory (tests/store/postgres.py); nothing here starts a server.
set -euo pipefail

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

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "postgres.sh: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

if ! bin=$(find_bin); then
  echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
  as_root apt-get update -qq
  # The package's own cluster is not used: the tests make their own.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql >/dev/null
  bin=$(find_bin) || { echo "postgres.sh: no initdb/pg_ctl after installing postgresql" >&2; exit 1; }
fi

if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

echo "POSTGRES_BIN=$bin"
