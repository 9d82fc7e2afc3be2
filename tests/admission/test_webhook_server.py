"""The HTTPS server: answers, health, metrics, bad input and certificate rotation."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from admission.conftest import POLICY, client_context
from admission.reviews import pod_spec, privileged_pod_spec, review, workload
from admission.webhook_tls import Tls, certificate_subject, make_tls, sign_leaf
from kubeproof.admission.decide import Decider
from kubeproof.admission.server import (
    MAX_BODY_BYTES,
    AdmissionServer,
    CertificateReloader,
    start_in_thread,
)
from paths import ROOT


def post(
    conn: http.client.HTTPSConnection, body: bytes, path: str = "/validate"
) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def post_review(conn: http.client.HTTPSConnection, body: dict[str, Any]) -> dict[str, Any]:
    status, raw = post(conn, json.dumps(body).encode())
    assert status == 200, raw
    data: dict[str, Any] = json.loads(raw)
    assert data["apiVersion"] == "admission.k8s.io/v1" and data["kind"] == "AdmissionReview"
    assert data["response"]["uid"] == body["request"]["uid"]
    return data["response"]


def test_reviews_are_answered_on_one_kept_alive_connection(
    connection: http.client.HTTPSConnection,
) -> None:
    denied = post_review(connection, review(workload("Pod", "p", privileged_pod_spec())))
    allowed = post_review(connection, review(workload("Deployment", "d", pod_spec())))
    warned = post_review(connection, review(workload("Pod", "p", privileged_pod_spec(), "dev-a")))
    assert denied["allowed"] is False and "[pss.privileged]" in denied["status"]["message"]
    assert allowed["allowed"] is True
    assert warned["allowed"] is True and warned["warnings"]
    assert connection.sock is not None  # still the same connection


def test_health_readiness_and_metrics(
    server: AdmissionServer, connection: http.client.HTTPSConnection
) -> None:
    post_review(connection, review(workload("Pod", "p", privileged_pod_spec())))
    post_review(connection, review(workload("Pod", "p", pod_spec())))
    for path in ("/healthz", "/readyz"):
        connection.request("GET", path)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    text = response.read().decode()
    assert response.status == 200
    denied = 'mode="enforce",decision="denied",rule="pss.privileged"'
    assert f"kubeproof_admission_decisions_total{{{denied}}} 1" in text
    assert (
        'kubeproof_admission_decisions_total{mode="enforce",decision="allowed",rule="none"} 1'
        in text
    )
    assert 'kubeproof_admission_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "kubeproof_admission_duration_seconds_count 2" in text


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, b"not JSON"),
        (b"", 400, b"not JSON"),
        (b'{"apiVersion": "v1", "kind": "Pod"}', 400, b"not an AdmissionReview"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', 400, b"request is"),
        (b"[" * 100_000, 400, b"not JSON"),
    ],
)
def test_bad_bodies_get_400(
    connection: http.client.HTTPSConnection, body: bytes, status: int, text: bytes
) -> None:
    got_status, got = post(connection, body)
    assert got_status == status and text in got


def test_readable_but_incomplete_review_is_answered_fail_closed(
    connection: http.client.HTTPSConnection,
) -> None:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "x1"},
    }
    response = post_review(connection, body)
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "request.kind.kind is missing" in response["status"]["message"]


def test_oversized_and_chunked_bodies_are_refused_unread(server: AdmissionServer, tls: Tls) -> None:
    context = client_context(tls.ca_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    conn.putrequest("POST", "/validate")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and response.getheader("Connection") == "close"
    conn.close()
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    conn.putrequest("POST", "/validate")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()


def test_unknown_paths_and_plain_http_do_not_hurt_the_server(
    server: AdmissionServer, connection: http.client.HTTPSConnection
) -> None:
    assert post(connection, b"{}", "/mutate")[0] == 404
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.recv(100)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass  # connects and leaves without a handshake
    fresh = http.client.HTTPSConnection(
        "127.0.0.1",
        server.port,
        context=connection._context,
        timeout=10,  # type: ignore[attr-defined]
    )
    fresh.request("GET", "/healthz")
    assert fresh.getresponse().status == 200
    fresh.close()


def _peer_subject(port: int, ca_cert: Path) -> str:
    context = client_context(ca_cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket,
    ):
        der = tls_socket.getpeercert(binary_form=True)
    assert der is not None
    return certificate_subject(ssl.DER_cert_to_PEM_cert(der).encode())


def test_certificate_is_reloaded_when_its_files_change(
    tmp_path: Path, server: AdmissionServer, tls: Tls
) -> None:
    # The fixture's server reads the session certificate: rotate a copy instead.
    first = make_tls(tmp_path / "rotating", common_name="first")
    rotating = AdmissionServer(
        ("127.0.0.1", 0),
        Decider(server.decider.policy),
        CertificateReloader(str(first.cert), str(first.key), interval_s=0.0),
        log=lambda line: None,
    )
    thread = start_in_thread(rotating)
    try:
        assert "CN = first" in _peer_subject(rotating.port, first.ca_cert)
        staging = tmp_path / "staging"
        staging.mkdir()
        sign_leaf(staging, first.ca_cert, first.ca_cert.with_suffix(".key"),
                  staging / "tls.key", staging / "tls.crt", "second")  # fmt: skip
        # Rotate the way a Secret volume does: whole files, key first.
        shutil.copy(staging / "tls.key", first.key)
        shutil.copy(staging / "tls.crt", first.cert)
        future = time.time() + 5
        os.utime(first.cert, (future, future))
        assert "CN = second" in _peer_subject(rotating.port, first.ca_cert)
        assert rotating.certificates.reloads == 1
        # A half-written certificate keeps the last good one.
        first.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
        os.utime(first.cert, (future + 5, future + 5))
        assert "CN = second" in _peer_subject(rotating.port, first.ca_cert)
    finally:
        rotating.shutdown()
        rotating.server_close()
        thread.join(5)


def _kubeproof(*arguments: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "kubeproof", *arguments],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path, tls: Tls) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    process = _kubeproof(
        "webhook", "serve", "--policy", str(policy), "--tls-cert", str(tls.cert),
        "--tls-key", str(tls.key), "--port", "0",
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "listening on https://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=client_context(tls.ca_cert), timeout=10
        )
        response = post_review(conn, review(workload("Pod", "p", privileged_pod_spec())))
        assert response["allowed"] is False
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("policy_text", "cert", "expected"),
    [
        ("apiVersion: nope\n", True, "apiVersion must be kubeproof.dev/v1alpha1"),
        (yaml.safe_dump(POLICY), False, "missing.crt: No such file"),
        (
            yaml.safe_dump(
                {**POLICY, "namespaces": [{"selector": {"matchLabels": {"a": "b"}}, "mode": "off"}]}
            ),
            True,
            "pass --namespace-labels",
        ),
    ],
)
def test_cli_refuses_bad_policy_and_certificates(
    tmp_path: Path, tls: Tls, policy_text: str, cert: bool, expected: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    cert_file = str(tls.cert) if cert else str(tmp_path / "missing.crt")
    process = _kubeproof(
        "webhook", "serve", "--policy", str(policy), "--tls-cert", cert_file,
        "--tls-key", str(tls.key), "--port", "0",
    )  # fmt: skip
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert expected in stderr and "Traceback" not in stderr


def test_connections_beyond_the_cap_are_refused_and_slots_come_back(
    tls: Tls, server: AdmissionServer
) -> None:
    capped = AdmissionServer(
        ("127.0.0.1", 0),
        Decider(server.decider.policy),
        CertificateReloader(str(tls.cert), str(tls.key)),
        log=lambda line: None,
        max_connections=2,
    )
    thread = start_in_thread(capped)
    context = client_context(tls.ca_cert)

    def healthy(conn: http.client.HTTPSConnection) -> bool:
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().read() == b"ok\n"
        except (OSError, http.client.HTTPException):
            return False

    def connect() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", capped.port, context=context, timeout=5)

    try:
        held = [connect(), connect()]
        assert all(healthy(conn) for conn in held)  # both slots taken, kept alive
        assert not healthy(connect())
        held[0].close()
        deadline = time.monotonic() + 5
        while not healthy(connect()):
            assert time.monotonic() < deadline, "the slot of a closed connection never came back"
            time.sleep(0.05)
        held[1].close()
    finally:
        capped.shutdown()
        capped.server_close()
        thread.join(5)
