"""Against a real API server: a scan of the cluster stores each workload's metadata.uid and
labels, the OSCAL report names the workload by that UID, and a label-selector exception
covers its findings in the period report."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane
from sqlalchemy import create_engine, text
from trestle.oscal.assessment_results import AssessmentResults

from kubeproof.cli.main import main
from kubeproof.store.db import parse_url

pytestmark = pytest.mark.integration


def _deployment(namespace: str) -> dict[str, Any]:
    app = {"app": "web"}
    container = {"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": True}}
    return {
        "metadata": {"name": "web", "namespace": namespace, "labels": {"team": "payments"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app},
            "template": {"metadata": {"labels": app}, "spec": {"containers": [container]}},
        },
    }


def _stored_subject(database: str, namespace: str) -> tuple[Any, Any]:
    engine = create_engine(parse_url(database))
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT uid, labels FROM subjects "
                    "WHERE kind = 'Deployment' AND namespace = :ns AND name = 'web'"
                ),
                {"ns": namespace},
            ).one()
    finally:
        engine.dispose()
    labels = json.loads(row.labels) if isinstance(row.labels, str) else row.labels
    return row.uid, labels


def test_cluster_uids_and_labels_reach_the_store_and_the_oscal_report(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"kp-identity-{uuid.uuid4().hex[:8]}"
    database = str(tmp_path / "evidence.db")
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    created = control_plane.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment(namespace)
    )
    uid = created["metadata"]["uid"]
    kubeconfig = str(control_plane.admin_kubeconfig)
    code = main(["scan", "--cluster", "--kubeconfig", kubeconfig, "--fail-on", "none",
                 "-o", "json", "--db", database])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()

    stored_uid, labels = _stored_subject(database, namespace)
    assert stored_uid == uid
    assert labels["team"] == "payments" and labels["app"] == "web"

    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    add = ["exceptions", "add", "--db", database, "--check", "pss.privileged",
           "--selector", "team=payments", "--namespace", namespace, "--owner", "payments",
           "--reason", "card reader", "--expires", expires]  # fmt: skip
    assert main(add) == 0
    today = datetime.now(UTC).date().isoformat()
    output = tmp_path / "report.oscal.json"
    report = ["report", "--from", today, "--to", today, "--format", "oscal",
              "--db", database, "--output", str(output)]  # fmt: skip
    assert main(report) == 0
    capsys.readouterr()
    document = json.loads(output.read_text())
    AssessmentResults.model_validate(document["assessment-results"])
    result = document["assessment-results"]["results"][0]
    items = {i["uuid"]: i for i in result["local-definitions"]["inventory-items"]}
    assert uid in items
    assert {"name": "kubernetes-uid", "ns": "urn:kubeproof:oscal", "value": uid} in items[uid][
        "props"
    ]
    risks = [
        r
        for r in result["risks"]
        if r["title"].startswith(f"pss.privileged on Deployment/{namespace}/web")
    ]
    assert risks and {r["status"] for r in risks} == {"risk-accepted"}
