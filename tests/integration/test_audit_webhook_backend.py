"""The real API server's audit webhook backend posting to `kubeproof audit serve`.

A second control plane (the shared one has no webhook backend) is started with
`--audit-webhook-config-file` written by `kubeproof audit webhook-config`, pointing at the
receiver on 127.0.0.1 over TLS, with mutual TLS (the API server presents a client
certificate). A test user then execs into a pod, reads a Secret and binds cluster-admin;
the receiver's detections must carry those requests' audit IDs (the Audit-Id header).
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from admission.webhook_tls import make_tls

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("audit-webhook-backend")]

NAMESPACE = "audit-webhook"
TESTER = "webhook-tester"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
SECRET_VALUE = "webhook-backend-Secret-Value-93c1"


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    port: int
    ca: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    store_url: str = ""  # where it records its detections (--db)

    def results(self, check: str) -> list[dict[str, Any]]:
        return [r for r in list(self.lines) if r["check"] == check]

    def audit_ids(self, check: str) -> set[str]:
        return {i for r in self.results(check) for i in r["evidence"]["auditIDs"]}

    def metrics(self) -> str:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(self.ca.parent / "client.crt", self.ca.parent / "client.key")
        url = f"https://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return str(response.read().decode())


def _read(stream: Any, into: list[Any], parse: bool) -> None:
    for line in stream:
        into.append(json.loads(line) if parse else line)


def client_certificate(directory: Path, ca_cert: Path, ca_key: Path) -> None:
    """client.crt / client.key for the API server, with the clientAuth usage."""
    key, cert = directory / "client.key", directory / "client.crt"
    openssl = ["openssl"]
    subprocess.run(
        [
            *openssl,
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    extensions = directory / "client.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    request = subprocess.run(
        [*openssl, "req", "-new", "-key", str(key), "-subj", "/CN=kube-apiserver-audit"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    subprocess.run(
        [
            *openssl,
            "x509",
            "-req",
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-days",
            "2",
            "-out",
            str(cert),
            "-extfile",
            str(extensions),
        ],
        input=request,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    tls_dir = tmp_path_factory.mktemp("receiver-tls")
    tls = make_tls(tls_dir, "kubeproof-audit")
    client_certificate(tls_dir, tls.ca_cert, tls_dir / "ca.key")
    store_url = f"sqlite:///{tmp_path_factory.mktemp('receiver-store') / 'evidence.db'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubeproof",
            "audit",
            "serve",
            "--tls-cert",
            str(tls.cert),
            "--tls-key",
            str(tls.key),
            "--client-ca",
            str(tls.ca_cert),
            "--port",
            "0",
            "--learning-period",
            "0s",
            "--db",
            store_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stdout is not None
    first = process.stderr.readline()
    assert "listening on https://127.0.0.1:" in first, first
    port = int(first.split("127.0.0.1:")[1].split()[0])
    running = Receiver(process, port, tls.ca_cert, store_url=store_url)
    threading.Thread(target=_read, args=(process.stdout, running.lines, True), daemon=True).start()
    threading.Thread(
        target=_read, args=(process.stderr, running.errors, False), daemon=True
    ).start()
    yield running
    process.send_signal(signal.SIGTERM)
    process.wait(20)


@pytest.fixture(scope="module")
def cluster(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    config = tmp_path_factory.mktemp("webhook-config") / "audit-webhook.kubeconfig"
    tls_dir = receiver.ca.parent
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeproof",
            "audit",
            "webhook-config",
            "--url",
            f"https://127.0.0.1:{receiver.port}/audit",
            "--ca-file",
            str(receiver.ca),
            "--client-cert",
            str(tls_dir / "client.crt"),
            "--client-key",
            str(tls_dir / "client.key"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "BEGIN" not in printed  # the CA is base64 data, the key only a path
    config.write_text(printed)
    flags = [
        f"--audit-webhook-config-file={config}",
        "--audit-webhook-batch-max-wait=1s",
        "--audit-webhook-initial-backoff=1s",
    ]
    with ControlPlane(tmp_path_factory.mktemp("webhook-controlplane"), flags) as running:
        yield running


class Api:
    def __init__(self, control_plane: ControlPlane) -> None:
        self.server = control_plane.server
        self.context = ssl.create_default_context(cafile=str(control_plane.ca_file))
        pki = control_plane.directory / "pki"
        self.context.load_cert_chain(pki / "admin.crt", pki / "admin.key")

    def call(
        self, method: str, path: str, body: Any = None, *, as_user: str | None = None
    ) -> tuple[int, str, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if as_user:
            request.add_header("Impersonate-User", as_user)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return response.status, response.headers["Audit-Id"], response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Audit-Id"], error.read()

    def must(self, method: str, path: str, body: Any = None, **options: Any) -> str:
        status, audit_id, text = self.call(method, path, body, **options)
        assert status < 300, f"{method} {path}: {status} {text[:300]!r}"
        return audit_id


def grant_tester(api: Api) -> None:
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    api.must("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    rules = [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ]
    api.must(
        "POST",
        f"{RBAC}/namespaces/{NAMESPACE}/roles",
        {"metadata": {"name": "tester"}, "rules": rules},
    )
    api.must("POST", f"{RBAC}/namespaces/{NAMESPACE}/rolebindings", _binding("tester", "Role"))
    binder = [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterrolebindings"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["cluster-admin"],
        },
    ]
    api.must(
        "POST", f"{RBAC}/clusterroles", {"metadata": {"name": "tester-binder"}, "rules": binder}
    )
    api.must("POST", f"{RBAC}/clusterrolebindings", _binding("tester-binder", "ClusterRole"))
    api.must(
        "POST",
        f"{ns}/secrets",
        {"metadata": {"name": "db"}, "stringData": {"password": SECRET_VALUE}},
    )
    wait_for(lambda: api.call("GET", f"{ns}/serviceaccounts/default")[0] == 200, "default SA")
    pod = {
        "metadata": {"name": "target"},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }
    api.must("POST", f"{ns}/pods", pod)


def _binding(name: str, kind: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TESTER}],
    }


@pytest.fixture(scope="module")
def actions(cluster: ControlPlane, receiver: Receiver) -> dict[str, str]:
    api = Api(cluster)
    grant_tester(api)
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    # Without a kubelet the exec fails (400: no host assigned), after authorization.
    status, exec_id, _ = api.call(
        "POST", f"{ns}/pods/target/exec?command=sh&container=app&stdout=true", as_user=TESTER
    )
    assert status == 400
    ids = {
        "audit.pod-exec": exec_id,
        "audit.secret-read-unusual": api.must("GET", f"{ns}/secrets/db", as_user=TESTER),
        "audit.cluster-admin-binding": api.must(
            "POST",
            f"{RBAC}/clusterrolebindings",
            {
                "metadata": {"name": "webhook-escalation"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}
                ],
            },
            as_user=TESTER,
        ),
    }
    try:
        wait_for(
            lambda: all(i in receiver.audit_ids(check) for check, i in ids.items()),
            "the detections of every action from the webhook backend",
            timeout_s=90,
        )
    except AssertionError as error:
        log = (cluster.directory / "kube-apiserver.log").read_text(errors="replace")
        webhook_lines = [line for line in log.splitlines() if "webhook" in line.lower()][-10:]
        raise AssertionError(
            f"{error}; {len(receiver.lines)} detections, receiver said {receiver.errors[-5:]}, "
            f"API server said {webhook_lines}"
        ) from None
    return ids


@pytest.mark.parametrize(
    "check", ["audit.pod-exec", "audit.secret-read-unusual", "audit.cluster-admin-binding"]
)
def test_the_detector_fires_on_the_webhook_batch_with_the_audit_id(
    receiver: Receiver, actions: dict[str, str], check: str
) -> None:
    [detection] = [
        r for r in receiver.results(check) if actions[check] in r["evidence"]["auditIDs"]
    ]
    assert detection["status"] == "fail"
    assert detection["evidence"]["user"] == TESTER
    assert detection["evidence"]["logLines"][0].startswith("webhook batch ")
    assert "CC7.2" in detection["criteria"]


def test_the_webhook_backend_delivers_without_errors(
    receiver: Receiver, actions: dict[str, str]
) -> None:
    metrics = receiver.metrics()
    received = [
        line for line in metrics.splitlines() if line.startswith("kubeproof_audit_events_total")
    ]
    assert any('outcome="received"' in line and not line.endswith(" 0") for line in received)
    assert 'outcome="malformed"} 0' in metrics
    assert "kubeproof_receiver_bad_requests_total{" not in metrics
    assert not [e for e in receiver.errors if "POST /audit" in e]


def test_no_secret_value_reaches_the_output(receiver: Receiver, actions: dict[str, str]) -> None:
    assert SECRET_VALUE not in json.dumps(receiver.lines)


def test_a_client_without_a_certificate_is_refused(receiver: Receiver) -> None:
    context = ssl.create_default_context(cafile=str(receiver.ca))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(
            f"https://127.0.0.1:{receiver.port}/metrics", context=context, timeout=10
        ).read()


def test_the_exec_detection_is_recorded_in_the_store_and_the_ledger_verifies(
    receiver: Receiver, actions: dict[str, str]
) -> None:
    from sqlalchemy import create_engine, text

    from kubeproof.store.db import parse_url

    def stored() -> list[Any]:
        engine = create_engine(parse_url(receiver.store_url))
        try:
            with engine.connect() as connection:
                return list(
                    connection.execute(
                        text(
                            "SELECT kind, name, ledger_seq FROM detections WHERE "
                            "detector_id = 'audit.pod-exec' AND evidence_key = :key"
                        ),
                        {"key": actions["audit.pod-exec"]},
                    )
                )
        finally:
            engine.dispose()

    wait_for(lambda: bool(stored()), "the exec detection in the evidence store", timeout_s=30)
    [(kind, name, ledger_seq)] = stored()
    assert (kind, name) == ("User", TESTER) and ledger_seq >= 1
    verified = subprocess.run(
        [sys.executable, "-m", "kubeproof", "evidence", "verify", "--db", receiver.store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger intact" in verified.stdout
