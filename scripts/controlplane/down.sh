#!/usr/bin/env bash
# Stops the control plane that up.sh started in DIR, then deletes DIR.
# Usage: down.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/../lib/common.sh"
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d $1 ]] || exit 0  # already down
dir=$(cd "$1" && pwd)
# Refuse to delete a directory that up.sh did not make.
[[ -e $dir/.kubeproof-controlplane ]] || { echo "error: $dir was not made by up.sh; leaving it" >&2; exit 1; }

pids=()
for f in "$dir"/*.pid; do
  [[ -f $f ]] || continue
  pid=$(<"$f")
  # Signal only the process we started (its arguments name DIR): a PID left
  # over from a crash may since have been given to something else.
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"; then
    kill "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
# Give them 10 s to shut down cleanly, then force it.
for _ in $(seq 100); do
  alive=()
  for pid in "${pids[@]}"; do running "$pid" && alive+=("$pid"); done
  ((${#alive[@]})) || break
  sleep 0.1
done
for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
rm -rf "$dir"
