"""Approved baselines and who made a change, against the real control plane: a baseline
approved from the live cluster; an image change nobody approved is recorded by the agent
as unapproved drift, with the user, verb, time and source address the API server's own
audit log gives for the patch; `scan --cluster --db` flags it too; approving the new spec
clears it in the agent (without another change to the workload) and in the scan; and
`evidence verify` covers the baseline decisions and the agent's rows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from kubeproof.cli.main import main

pytestmark = pytest.mark.integration
SRC = Path(__file__).resolve().parents[2] / "src"
DRIFT = "drift.unapproved-change"
ADMIN_USER = "kubeproof-admin"  # the admin certificate's CN (scripts/controlplane/up.sh)


def _rows(database: Path, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database, timeout=30) as connection:
        return connection.execute(sql, parameters).fetchall()


def _drift_rows(database: Path, namespace: str) -> list[tuple[Any, ...]]:
    return _rows(
        database,
        "SELECT transition, status_before, status_after, cause, message, actor_user, "
        "actor_verb, actor_time, actor_source_ip, actor_audit_id, ledger_seq "
        "FROM agent_transitions WHERE namespace = ? AND check_id = ? ORDER BY id",
        namespace,
        DRIFT,
    )


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scan_drift(
    capsys: pytest.CaptureFixture[str], control_plane: ControlPlane, database: Path, ns: str
) -> tuple[str, str]:
    code, out, err = _cli(
        capsys, "scan", "--cluster", "--kubeconfig", str(control_plane.scanner_kubeconfig),
        "--db", str(database), "-o", "json", "--fail-on", "none",
    )  # fmt: skip
    assert code == 0, err
    [found] = [
        (r["status"], r["message"])
        for r in json.loads(out)["results"]
        if r["check"] == DRIFT and r["subject"]["namespace"] == ns
    ]
    return found


def test_unapproved_image_change_is_flagged_with_who_made_it_and_cleared_by_approval(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = f"kp-baseline-{uuid.uuid4().hex[:8]}"
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    labels = {"app": "web"}
    control_plane.create(
        deployments,
        {
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    database = tmp_path / "evidence.db"
    kubeconfig = str(control_plane.scanner_kubeconfig)
    approve = ["baseline", "approve", "--namespace", namespace, "--cluster",
               "--kubeconfig", kubeconfig, "--db", str(database),
               "--by", "alice", "--reason", "initial release", "--ticket", "CHG-1"]  # fmt: skip
    code, out, err = _cli(capsys, *approve)
    assert code == 0, err
    assert f"Deployment/{namespace}/web" in out

    log = tmp_path / "agent.log"
    command = [
        sys.executable, "-m", "kubeproof", "agent", "--db", str(database),
        "--kubeconfig", kubeconfig, "--heartbeat-interval", "1s", "--settle-interval", "1s",
        "--audit-log", str(control_plane.audit_log), "--audit-wait", "3s",
    ]  # fmt: skip
    with log.open("w") as output:
        agent = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    try:
        wait_for(lambda: "recorded scan #1" in log.read_text() or None, "the first scan", 60)
        sent = datetime.now(UTC)
        response = control_plane.request(
            "PATCH",
            f"{deployments}/web",
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}
                }
            },
            content_type="application/strategic-merge-patch+json",
        )
        assert response.status == 200, response.body[:300]
        wait_for(lambda: _drift_rows(database, namespace) or None, "unapproved drift", 30)
        [failing] = _drift_rows(database, namespace)
        transition, before, after, cause, message, user, verb, at, source_ip, audit_id, seq = (
            failing
        )
        assert (transition, before, after) == ("failing", "pass", "fail")
        assert cause == f"Deployment/{namespace}/web"
        assert "nginx:1.27 -> nginx:1.28" in message
        # Who: the API server's audit event of the patch.
        assert (user, verb, source_ip) == (ADMIN_USER, "patch", "127.0.0.1"), failing
        acted = datetime.fromisoformat(at).replace(tzinfo=UTC)
        assert abs((acted - sent).total_seconds()) < 5
        audit_lines = [
            json.loads(line) for line in control_plane.audit_log.read_text().splitlines()
        ]
        [patch_event] = [
            e
            for e in audit_lines
            if e.get("auditID") == audit_id and e["stage"] == "ResponseComplete"
        ]
        assert patch_event["objectRef"]["name"] == "web" and patch_event["verb"] == "patch"
        assert seq is not None
        assert f"by {ADMIN_USER} (patch from 127.0.0.1" in log.read_text()

        # The one-shot scan of the same store agrees.
        status, scanned = _scan_drift(capsys, control_plane, database, namespace)
        assert status == "fail" and "nginx:1.28" in scanned

        # Approving the new spec clears it in the agent, with no change to the workload.
        code, _, err = _cli(capsys, *approve)
        assert code == 0, err
        wait_for(lambda: len(_drift_rows(database, namespace)) == 2 or None, "resolved", 30)
        resolved = _drift_rows(database, namespace)[1]
        assert resolved[:4] == ("resolved", "fail", "pass", "baseline decision")
        assert resolved[5] is None  # no object change: nobody to attribute
        assert _scan_drift(capsys, control_plane, database, namespace)[0] == "pass"
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        finally:
            if agent.poll() is None:
                agent.kill()
    assert agent.returncode == 0, log.read_text()[-2000:]
    code, out, err = _cli(capsys, "evidence", "verify", "--db", str(database))
    assert code == 0, err
    unchained = _rows(database, "SELECT count(*) FROM agent_transitions WHERE ledger_seq IS NULL")
    assert unchained == [(0,)]
    subject = f"Deployment/{namespace}/web"
    code, out, err = _cli(capsys, "history", subject, "--db", str(database))
    assert code == 0, err
    assert f"{ADMIN_USER} (patch from 127.0.0.1)" in out and "baseline decision" in out, out
    code, out, err = _cli(capsys, "history", subject, "--db", str(database), "-o", "json")
    moved = [t for t in json.loads(out)["transitions"] if t["check"] == DRIFT]
    assert [t["changedBy"] and t["changedBy"]["user"] for t in moved] == [ADMIN_USER, None]
