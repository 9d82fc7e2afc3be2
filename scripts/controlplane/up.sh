#!/usr/bin/env bash
# Starts a throwaway Kubernetes control plane in DIR: etcd, kube-apiserver and
# kube-controller-manager on 127.0.0.1 only, with their own CAs, RBAC and an
# audit log. There is no kubelet or scheduler, so pods are stored but stay
# Pending. Writes DIR/admin.kubeconfig (system:masters), DIR/scanner.kubeconfig
# (the read-only kubeproof-scanner identity) and DIR/cluster.env.
# Usage: up.sh DIR      Stop with: down.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/../lib/common.sh"

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
for bin in "$ETCD" "$KUBE_APISERVER" "$KUBE_CONTROLLER_MANAGER"; do
  [[ -x $bin ]] || { echo "error: $bin is missing; run $here/build.sh first" >&2; exit 1; }
done
for tool in openssl curl python3 setsid; do
  command -v "$tool" >/dev/null || { echo "error: '$tool' is needed" >&2; exit 1; }
done

started=$(date +%s%N)
umask 077  # DIR holds private keys
mkdir -p "$1"
dir=$(cd "$1" && pwd)
if [[ -e $dir/.kubeproof-controlplane ]]; then
  echo "error: $dir already holds a control plane; stop it with: $here/down.sh $1" >&2; exit 1
elif [[ -n $(ls -A "$dir") ]]; then
  echo "error: $dir is not empty" >&2; exit 1
fi
touch "$dir/.kubeproof-controlplane"  # lets down.sh delete DIR safely

# Free loopback ports, picked now so that several clusters can run side by side.
read -r etcd_port peer_port api_port kcm_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
server=https://127.0.0.1:$api_port

# --- certificates (EC P-256: generated in milliseconds, unlike RSA) ----------
pki=$dir/pki
mkdir -p "$pki"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null; }
newca() {  # NAME CN
  newkey "$1"
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 -out "$pki/$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
newcert() {  # NAME CA SUBJECT EXTENDED-KEY-USAGE [SANS]
  newkey "$1"
  local ext="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=$4"
  # Key identifiers: strict X.509 checkers (Python 3.13 by default) require them.
  ext+="\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid"
  [[ -z ${5:-} ]] || ext+="\nsubjectAltName=$5"
  openssl req -new -key "$pki/$1.key" -subj "$3" |
    openssl x509 -req -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -days 365 -out "$pki/$1.crt" \
      -extfile <(printf '%b' "$ext") 2>/dev/null
}
# etcd has its own CA, as in production: an etcd client cert must not also
# authenticate to the API server.
newca etcd-ca kubeproof-dev-etcd-ca
# clientAuth too: etcd's gRPC gateway dials etcd itself with this certificate.
newcert etcd etcd-ca /CN=etcd serverAuth,clientAuth IP:127.0.0.1,DNS:localhost
newcert apiserver-etcd-client etcd-ca /CN=kube-apiserver clientAuth
newca ca kubeproof-dev-ca
newcert apiserver ca /CN=kube-apiserver serverAuth \
  IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
newcert admin ca /O=system:masters/CN=kubeproof-admin clientAuth
newcert controller-manager ca /CN=system:kube-controller-manager clientAuth
newcert controller-manager-serving ca /CN=kube-controller-manager serverAuth IP:127.0.0.1,DNS:localhost
newcert scanner ca /CN=kubeproof-scanner clientAuth
newkey service-account
openssl pkey -in "$pki/service-account.key" -pubout -out "$pki/service-account.pub"

# Self-contained kubeconfigs (certificates embedded), so they can be copied.
b64() { base64 -w0 "$pki/$1"; }
kubeconfig() {  # NAME: uses pki/NAME.crt and pki/NAME.key
  cat >"$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: kubeproof-dev
    cluster:
      server: $server
      certificate-authority-data: $(b64 ca.crt)
users:
  - name: $1
    user:
      client-certificate-data: $(b64 "$1.crt")
      client-key-data: $(b64 "$1.key")
contexts:
  - name: $1@kubeproof-dev
    context: {cluster: kubeproof-dev, user: $1}
current-context: $1@kubeproof-dev
EOF
}
kubeconfig admin
kubeconfig scanner
kubeconfig controller-manager

# Metadata for reads so the audit log records who saw what, request bodies for
# writes, and never the bodies of secrets, configmaps or token reviews.
cat >"$dir/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None  # leader-election heartbeats would drown everything else
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
    resources:
      - {group: "", resources: [secrets, configmaps, serviceaccounts/token]}
      - {group: authentication.k8s.io, resources: [tokenreviews]}
  - level: Request
    verbs: [create, update, patch, delete, deletecollection]
  - level: Metadata
EOF

# --- processes ---------------------------------------------------------------
# setsid: the servers outlive this script and ignore the terminal's Ctrl-C;
# no inherited stdout, so a caller capturing our output is not kept waiting.
launch() {  # NAME COMMAND...
  local name=$1; shift
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}
fail() {
  echo "error: $1; logs are in $dir" >&2
  for f in "$dir"/*.pid; do kill "$(<"$f")" 2>/dev/null || true; done
  exit 1
}

launch etcd "$ETCD" --name=kubeproof-dev --data-dir="$dir/etcd-data" --log-level=warn \
  --listen-client-urls="https://127.0.0.1:$etcd_port" --advertise-client-urls="https://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="kubeproof-dev=http://127.0.0.1:$peer_port" \
  --cert-file="$pki/etcd.crt" --key-file="$pki/etcd.key" \
  --client-cert-auth --trusted-ca-file="$pki/etcd-ca.crt" \
  --unsafe-no-fsync  # throwaway data; fsync dominates write latency on slow disks

# Extra kube-apiserver flags, space-separated (tests: an audit webhook backend).
read -r -a apiserver_flags <<<"${KUBEPROOF_APISERVER_FLAGS:-}"
# The API server retries etcd until it answers, so no need to wait here.
# --allow-privileged: test fixtures must be able to create the insecure pods
# that the checks look for. --endpoint-reconciler-type=none: Endpoints may not
# hold a loopback address, so the default reconciler would only log errors.
launch kube-apiserver "$KUBE_APISERVER" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --etcd-servers="https://127.0.0.1:$etcd_port" --etcd-cafile="$pki/etcd-ca.crt" \
  --etcd-certfile="$pki/apiserver-etcd-client.crt" --etcd-keyfile="$pki/apiserver-etcd-client.key" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-cluster-ip-range=10.96.0.0/12 \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$pki/service-account.pub" \
  --service-account-signing-key-file="$pki/service-account.key" \
  --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" \
  --allow-privileged=true --endpoint-reconciler-type=none --profiling=false \
  "${apiserver_flags[@]}"

# --- readiness and RBAC ---------------------------------------------------------
admin_curl() {
  curl -sS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}
wait_ok() {  # NAME URL CURL-ARGS...
  local name=$1 url=$2 deadline=$((SECONDS + 60)); shift 2
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "$@" "$url") == 200 ]]; do
    running "$(<"$dir/$name.pid")" || fail "$name exited"
    ((SECONDS < deadline)) || fail "$name not ready after 60 s"
    sleep 0.2
  done
}
wait_ok kube-apiserver "$server/readyz" --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key"
# Started only once the API server is ready: it exits if its RBAC bindings
# (bootstrapped by the API server) are not there yet. --leader-elect=false:
# one instance, and no lease round-trip before the controllers start.
launch kube-controller-manager "$KUBE_CONTROLLER_MANAGER" \
  --bind-address=127.0.0.1 --secure-port="$kcm_port" \
  --tls-cert-file="$pki/controller-manager-serving.crt" \
  --tls-private-key-file="$pki/controller-manager-serving.key" \
  --kubeconfig="$dir/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
  --use-service-account-credentials --leader-elect=false \
  --service-account-private-key-file="$pki/service-account.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --profiling=false

# Server-side apply: idempotent, and the API server reads YAML itself, so
# neither kubectl nor a YAML parser is needed.
apply() {  # API-PATH FILE
  admin_curl --fail-with-body -o /dev/null -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
    --data-binary @"$2" "$server$1?fieldManager=kubeproof-dev&force=true" || fail "applying $2"
}
apply /apis/rbac.authorization.k8s.io/v1/clusterroles/kubeproof-scanner \
  "$repo/deploy/rbac/scanner-clusterrole.yaml"
cat >"$dir/scanner-binding.yaml" <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubeproof-scanner}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubeproof-scanner}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kubeproof-scanner}]
EOF
apply /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeproof-scanner "$dir/scanner-binding.yaml"

# Its /healthz answers once the controllers have started.
wait_ok kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" --cacert "$pki/ca.crt"

# For programs without a YAML parser (tests/integration/controlplane.py).
cat >"$dir/cluster.env" <<EOF
SERVER=$server
CA_FILE=$pki/ca.crt
ADMIN_KUBECONFIG=$dir/admin.kubeconfig
ADMIN_CERT=$pki/admin.crt
ADMIN_KEY=$pki/admin.key
SCANNER_KUBECONFIG=$dir/scanner.kubeconfig
SCANNER_CERT=$pki/scanner.crt
SCANNER_KEY=$pki/scanner.key
AUDIT_LOG=$dir/audit.log
K8S_VERSION=$K8S_VERSION
ETCD_VERSION=$ETCD_VERSION
EOF

elapsed_ms=$((($(date +%s%N) - started) / 1000000))
cat <<EOF
Kubernetes $K8S_VERSION control plane ready at $server in $((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000))) s
  cluster-admin:       export KUBECONFIG=$dir/admin.kubeconfig
  read-only scanner:   export KUBECONFIG=$dir/scanner.kubeconfig
  audit log:           $dir/audit.log
  stop:                $here/down.sh $1
EOF
