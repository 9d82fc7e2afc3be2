"""Exceptions against a real API server: an annotation on a live Deployment, a label
selector in a file kept in git, and an exception in the store, applied by one
`kubeproof scan --cluster --db` and recorded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane

from kubeproof.cli.main import main

pytestmark = pytest.mark.integration
PRIVILEGED = "pss.privileged"
IN_A_MONTH = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def _deployment(namespace: str, name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    app = {"app": name}
    container = {"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": True}}
    return {
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": app},
            "template": {"metadata": {"labels": app}, "spec": {"containers": [container]}},
        },
    }


def test_annotation_selector_and_stored_exceptions_on_a_live_cluster(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"kp-exc-{uuid.uuid4().hex[:8]}"
    database = str(tmp_path / "evidence.db")
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    note = {"checks": [PRIVILEGED], "owner": "ops", "reason": "vendor", "expires": IN_A_MONTH}
    annotation = {"annotations": {"kubeproof.io/exception": json.dumps(note)}}
    control_plane.create(deployments, _deployment(namespace, "annotated", annotation))
    control_plane.create(deployments, _deployment(namespace, "legacy", {"labels": {"team": "old"}}))
    control_plane.create(deployments, _deployment(namespace, "stored", {}))
    control_plane.create(deployments, _deployment(namespace, "plain", {}))

    file = tmp_path / "exceptions.yaml"
    file.write_text(
        "exceptions:\n- {id: GIT-1, checks: [pss.privileged], selector: {matchLabels: "
        f"{{team: old}}}}, owner: o, reason: r, expires: {IN_A_MONTH}}}\n"
    )
    added = main(["exceptions", "add", "--db", database, "--check", PRIVILEGED, "--subject",
                  f"Deployment/{namespace}/stored", "--owner", "o", "--reason", "r",
                  "--expires", IN_A_MONTH])  # fmt: skip
    assert added == 0, capsys.readouterr().err
    capsys.readouterr()

    code = main(["scan", "--cluster", "--kubeconfig", str(control_plane.admin_kubeconfig),
                 "--fail-on", "none", "-o", "json", "--db", database,
                 "--exceptions", str(file)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    results = {
        r["subject"]["name"]: r
        for r in report["results"]
        if r["check"] == PRIVILEGED and r["subject"]["namespace"] == namespace
    }
    assert set(results) == {"annotated", "legacy", "stored", "plain"}
    sources = {
        name: (r["status"], r.get("details", {}).get("exception", {}).get("source"))
        for name, r in results.items()
    }
    assert sources == {
        "annotated": ("excepted", "annotation"),
        "legacy": ("excepted", "file"),
        "stored": ("excepted", "store"),
        "plain": ("fail", None),
    }

    assert main(["findings", "--db", database, "--open", "-o", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    mine = {f["subject"]["name"] for f in findings if f["check"] == PRIVILEGED
            and f["subject"]["namespace"] == namespace}  # fmt: skip
    assert mine == {"plain"}  # excepted results never opened a finding
    assert main(["evidence", "verify", "--db", database]) == 0
