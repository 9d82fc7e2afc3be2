"""The development control plane works: API, controllers, RBAC and audit log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    name = f"cp-test-{uuid.uuid4().hex[:8]}"
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def owned_by(items: list[dict[str, Any]], owner: dict[str, Any]) -> list[dict[str, Any]]:
    uid = owner["metadata"]["uid"]
    return [
        item
        for item in items
        if any(ref["uid"] == uid for ref in item["metadata"].get("ownerReferences", []))
    ]


def test_api_server_is_ready_and_reports_the_pinned_version(control_plane: ControlPlane) -> None:
    ready = control_plane.get("/readyz")
    assert (ready.status, ready.body) == (200, b"ok")
    version = control_plane.get("/version").json()
    assert version["gitVersion"] == control_plane.kubernetes_version


def test_controller_manager_turns_a_deployment_into_a_pending_pod(
    control_plane: ControlPlane, namespace: str
) -> None:
    labels = {"app": "web"}
    deployment = control_plane.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )

    def owned(path: str, owner: dict[str, Any]) -> dict[str, Any] | None:
        found = owned_by(control_plane.get(path).json()["items"], owner)
        return found[0] if found else None

    replica_set = wait_for(
        lambda: owned(f"/apis/apps/v1/namespaces/{namespace}/replicasets", deployment),
        "a ReplicaSet owned by the Deployment",
    )
    pod = wait_for(
        lambda: owned(f"/api/v1/namespaces/{namespace}/pods", replica_set),
        "a Pod owned by the ReplicaSet",
    )
    # No scheduler and no kubelet: the pod is stored but never runs.
    assert pod["status"]["phase"] == "Pending"


def test_scanner_can_read_pods_but_not_secrets(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "db"}, "stringData": {"password": "not-for-the-scanner"}},
    )
    for path in (f"/api/v1/namespaces/{namespace}/pods", "/apis/apps/v1/deployments"):
        assert control_plane.get(path, identity="scanner").status == 200, path
    for path in (f"/api/v1/namespaces/{namespace}/secrets", "/api/v1/secrets"):
        response = control_plane.get(path, identity="scanner")
        assert response.status == 403, path
        assert b"not-for-the-scanner" not in response.body
    create = control_plane.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": "x"}},
        identity="scanner",
    )
    assert create.status == 403


def test_audit_log_records_who_did_what_but_no_secret_values(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "api-token"}, "stringData": {"token": "audit-must-not-see-this"}},
    )

    def secret_creation() -> dict[str, Any] | None:
        for line in control_plane.audit_log.read_text().splitlines():
            event: dict[str, Any] = json.loads(line)
            ref = event.get("objectRef", {})
            if (event["verb"], ref.get("resource"), ref.get("namespace"), ref.get("name")) == (
                "create",
                "secrets",
                namespace,
                "api-token",
            ):
                return event
        return None

    # The event is written when the request completes, which may lag our read.
    event = wait_for(secret_creation, "the secret's creation in the audit log", 10)
    assert event["user"]["username"] == "kubeproof-admin"
    assert "system:masters" in event["user"]["groups"]
    assert "requestObject" not in event
    assert "audit-must-not-see-this" not in control_plane.audit_log.read_text()
