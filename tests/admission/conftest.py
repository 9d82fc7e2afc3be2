"""Fixtures for the admission webhook tests: TLS material and a running server."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from admission.webhook_tls import Tls, make_tls
from kubeproof.admission.decide import Decider
from kubeproof.admission.policy import Policy, parse_policy
from kubeproof.admission.server import AdmissionServer, CertificateReloader, start_in_thread

POLICY = {
    "apiVersion": "kubeproof.dev/v1alpha1",
    "kind": "AdmissionPolicy",
    "enforce": {"frameworks": ["pss-restricted"]},
    "defaultMode": "enforce",
    "namespaces": [{"names": ["dev-*"], "mode": "warn"}],
    "images": {"allowedRegistries": ["registry.example.com"]},
}


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def policy() -> Policy:
    return parse_policy(POLICY)


@pytest.fixture
def server(tls: Tls, policy: Policy) -> Iterator[AdmissionServer]:
    running = AdmissionServer(
        ("127.0.0.1", 0),
        Decider(policy),
        CertificateReloader(str(tls.cert), str(tls.key), interval_s=0.0),
        log=lambda line: None,
    )
    thread = start_in_thread(running)
    yield running
    running.shutdown()
    running.server_close()
    thread.join(5)


def client_context(ca_cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_cert))


@pytest.fixture
def connection(server: AdmissionServer, tls: Tls) -> Iterator[http.client.HTTPSConnection]:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=client_context(tls.ca_cert), timeout=10
    )
    yield conn
    conn.close()
