"""The evidence store against a real API server: a rollout (new ReplicaSet, new pods)
keeps the Deployment's findings, and deleting the Deployment closes them as deleted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from kubeproof.cli.main import main

pytestmark = pytest.mark.integration


def _deployment(namespace: str) -> dict[str, Any]:
    app = {"app": "web"}
    container = {"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": True}}
    return {
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app},
            "template": {"metadata": {"labels": app}, "spec": {"containers": [container]}},
        },
    }


def _replica_sets(control_plane: ControlPlane, namespace: str) -> list[str]:
    path = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    return [rs["metadata"]["name"] for rs in control_plane.get(path).json()["items"]]


def _scan(control_plane: ControlPlane, database: str, capsys: pytest.CaptureFixture[str]) -> str:
    kubeconfig = str(control_plane.admin_kubeconfig)
    code = main(["scan", "--cluster", "--kubeconfig", kubeconfig, "--fail-on", "none",
                 "-o", "json", "--db", database])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def _findings(database: str, namespace: str, capsys: pytest.CaptureFixture[str]) -> list[Any]:
    assert main(["findings", "--db", database, "-o", "json"]) == 0
    listed: list[Any] = json.loads(capsys.readouterr().out)["findings"]
    return [f for f in listed if f["subject"]["namespace"] == namespace]


def test_rollout_keeps_findings_and_deletion_closes_them(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"kp-store-{uuid.uuid4().hex[:8]}"
    database = str(tmp_path / "evidence.db")
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    control_plane.create(deployments, _deployment(namespace))
    wait_for(lambda: len(_replica_sets(control_plane, namespace)) == 1 or None, "a ReplicaSet")
    _scan(control_plane, database, capsys)

    # A rollout: a new pod template makes the controller create a second ReplicaSet.
    patch = {"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}
    response = control_plane.request(
        "PATCH", f"{deployments}/web", patch, content_type="application/merge-patch+json"
    )
    assert response.status == 200, response.body[:300]
    wait_for(lambda: len(_replica_sets(control_plane, namespace)) == 2 or None, "a rollout")
    _scan(control_plane, database, capsys)

    privileged = [
        f for f in _findings(database, namespace, capsys) if f["check"] == "pss.privileged"
    ]
    assert len(privileged) == 1, privileged
    [finding] = privileged
    assert finding["subject"]["kind"] == "Deployment" and finding["subject"]["name"] == "web"
    assert (finding["state"], finding["firstScan"], finding["lastScan"]) == ("open", 1, 2)

    response = control_plane.request("DELETE", f"{deployments}/web")
    assert response.status in (200, 202), response.body[:300]
    wait_for(
        lambda: control_plane.get(f"{deployments}/web").status == 404 or None,
        "the Deployment to be gone",
    )
    err = _scan(control_plane, database, capsys)
    assert "closed (subject deleted)" in err
    closed = [
        f
        for f in _findings(database, namespace, capsys)
        if f["subject"]["kind"] == "Deployment" and f["subject"]["name"] == "web"
    ]
    assert closed and {f["state"] for f in closed} == {"deleted"}
    assert {f["closedScan"] for f in closed} == {3}
    assert main(["evidence", "verify", "--db", database]) == 0
    capsys.readouterr()
