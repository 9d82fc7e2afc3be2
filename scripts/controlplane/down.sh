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

# One at a time, clients first: an API server whose etcd is already gone
# spends many seconds in retries before it exits.
stop() {  # NAME
  local pid
  [[ -f $dir/$1.pid ]] || return 0
  pid=$(<"$dir/$1.pid")
  # Signal only the process we started (its arguments name DIR): a PID left
  # over from a crash may since have been given to something else.
  [[ -r /proc/$pid/cmdline ]] && tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do  # 10 s to shut down cleanly, then force it
    running "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
stop kube-controller-manager
stop kube-apiserver
stop etcd
rm -rf "$dir"
