"""Shared set-up for tests of the admission webhook behind the real kube-apiserver: the
webhook served in this process, ValidatingWebhookConfigurations and namespaces selected by
a label unique to the run (so no other test's requests reach it), and API calls that keep
the Warning headers the webhook caused."""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from controlplane import ControlPlane, wait_for

from admission.webhook_tls import Tls
from kubeproof.admission.decide import Decider
from kubeproof.admission.manifests import webhook_rules
from kubeproof.admission.server import AdmissionServer, CertificateReloader, start_in_thread

LABEL = "kubeproof-webhook-test"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


class Reply:
    def __init__(self, status: int, body: bytes, warnings: list[str]) -> None:
        self.status, self.body, self.warnings = status, body, warnings

    def json(self) -> Any:
        return json.loads(self.body)


def call(cluster: ControlPlane, method: str, path: str, body: Any = None) -> Reply:
    """Like ControlPlane.request, but keeps the Warning headers the webhook caused."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cluster.server + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    context = cluster._context("admin")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return Reply(
                response.status, response.read(), response.headers.get_all("Warning") or []
            )
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(), error.headers.get_all("Warning") or [])


def pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def wait_for_webhook(cluster: ControlPlane, pods: str, probe: dict[str, Any]) -> None:
    """Until a dry-run create of `probe` on `pods` (a pods collection path) is denied by
    kubeproof: the API server picks up new webhook configurations asynchronously."""
    wait_for(
        lambda: b"kubeproof denied" in call(cluster, "POST", f"{pods}?dryRun=All", probe).body,
        "the API server to call the webhook",
    )


def configuration(name: str, url: str, ca: bytes, selector: str, failure: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "workloads.kubeproof.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca).decode()},
                "rules": webhook_rules(),
                "failurePolicy": failure,
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "namespaceSelector": {"matchLabels": {LABEL: selector}},
            }
        ],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(decider: Decider, tls: Tls) -> Iterator[AdmissionServer]:
    """The webhook on a loopback port, in a thread of this process."""
    server = AdmissionServer(
        ("127.0.0.1", 0),
        decider,
        CertificateReloader(str(tls.cert), str(tls.key)),
        log=lambda line: None,
    )
    thread = start_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def registered_webhooks(
    control_plane: ControlPlane,
    tls: Tls,
    configurations: dict[str, tuple[str, str, str]],
    namespaces: dict[str, dict[str, str]],
) -> Iterator[None]:
    """Creates each configuration (name: (url, selector label value, failurePolicy)) and
    each namespace (name: labels, which must include LABEL to be judged), waits for the
    namespaces' default service accounts, and deletes all of it afterwards."""
    ca = tls.ca_cert.read_bytes()
    try:
        for name, (url, selector, failure) in configurations.items():
            control_plane.create(WEBHOOKS, configuration(name, url, ca, selector, failure))
        for name, labels in namespaces.items():
            control_plane.create(
                "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}}
            )
        for name in namespaces:
            wait_for(
                lambda name=name: (
                    control_plane.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status
                    == 200
                ),
                f"the default service account in {name}",
            )
        yield
    finally:
        for name in configurations:
            control_plane.request("DELETE", f"{WEBHOOKS}/{name}")
        for name in namespaces:
            control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
