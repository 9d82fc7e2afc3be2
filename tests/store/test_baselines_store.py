"""Approved baselines end to end on SQLite and PostgreSQL, through the CLI over manifest
files: approve, scan --db flags an unapproved change until it is approved again, revoke;
every decision and every agent batch is chained in the ledger, and editing, deleting or
forging any of them is detected by `evidence verify`."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from store_helpers import execute, query

from databases import Database
from kubeproof.agent.record import AgentRecorder
from kubeproof.cli.main import main
from kubeproof.store.db import open_store

SECRET = "Hq3-never-stored-credential-0097"
DRIFT = "drift.unapproved-change"


def _manifest(path: Path, image: str, *, extra_app: bool = True) -> Path:
    docs = [
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {image}
          env: [{{name: API_TOKEN, value: {SECRET}}}]
"""
    ]
    if extra_app:
        docs.append(
            """apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: shop/api:2}]
"""
        )
    path.write_text("---\n".join(docs))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _drift(capsys: pytest.CaptureFixture[str], database: Database, path: Path) -> dict[str, Any]:
    code, out, err = cli(
        capsys, "scan", str(path), "--db", database.url, "-o", "json", "--fail-on", "none"
    )
    assert code == 0, err
    results = json.loads(out)["results"]
    return {
        r["subject"]["name"]: (r["status"], r["message"]) for r in results if r["check"] == DRIFT
    }


def _approve(capsys: pytest.CaptureFixture[str], database: Database, *argv: str) -> str:
    code, out, err = cli(
        capsys, "baseline", "approve", *argv, "--db", database.url,
        "--by", "alice", "--reason", "release 12", "--ticket", "CHG-7",
    )  # fmt: skip
    assert code == 0, err
    return out


def test_unapproved_change_is_flagged_until_approved_again(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _manifest(tmp_path / "app.yaml", "nginx:1.27")
    # Nothing approved yet: the check is not judged at all (never a pass).
    assert _drift(capsys, database, path) == {}
    out = _approve(capsys, database, "Deployment/shop/web", str(path))
    assert "approved BL-1 Deployment/shop/web" in out

    found = _drift(capsys, database, path)
    assert found["web"][0] == "pass"
    # api is in a namespace under change control but has no baseline: not evaluated.
    assert found["api"][0] == "not_evaluated" and "no approved baseline" in found["api"][1]

    _manifest(path, "nginx:1.28")
    status, message = _drift(capsys, database, path)["web"]
    assert status == "fail"
    assert "containers.web.image: nginx:1.27 -> nginx:1.28" in message and "BL-1" in message
    [(state,)] = query(database.url, f"SELECT state FROM findings WHERE check_id = '{DRIFT}'")
    assert state == "open"

    _approve(capsys, database, "--namespace", "shop", str(path))
    found = _drift(capsys, database, path)
    assert found == {
        "web": ("pass", "Workloads match their approved baseline"),
        "api": ("pass", "Workloads match their approved baseline"),
    }
    [(state,)] = query(database.url, f"SELECT state FROM findings WHERE check_id = '{DRIFT}'")
    assert state == "resolved"

    code, out, err = cli(
        capsys, "baseline", "revoke", "--namespace", "shop", "--cluster-name", "manifests",
        "--db", database.url, "--by", "bob", "--reason", "decommissioned",
    )  # fmt: skip
    assert code == 0, err
    assert _drift(capsys, database, path) == {}

    code, out, _ = cli(capsys, "baseline", "list", "--all", "--db", database.url, "-o", "json")
    listed = json.loads(out)["baselines"]
    assert [(b["subject"], b["action"]) for b in listed] == [
        ("Deployment/shop/api", "revoked"),
        ("Deployment/shop/web", "revoked"),
    ]
    code, out, _ = cli(
        capsys, "baseline", "show", "Deployment/shop/web", "--db", database.url, "-o", "json"
    )
    decisions = json.loads(out)["decisions"]
    assert [d["action"] for d in decisions] == ["approved", "approved", "revoked"]
    assert decisions[0]["spec"]["containers"]["web"]["image"] == "nginx:1.27"
    assert decisions[0]["ticket"] == "CHG-7"

    code, out, err = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0, err
    assert SECRET not in database.stored_text()


def test_bad_requests_are_refused_and_write_nothing(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _manifest(tmp_path / "app.yaml", "nginx:1.27")
    cases = [
        (["Deployment/shop/nope", str(path)], "Deployment/shop/nope: no such workload"),
        (["--namespace", "empty", str(path)], "namespace empty: no workloads"),
        (["shop-web", str(path)], "cannot read subject"),
        (["Deployment/shop/web[web]", str(path)], "leave out [container]"),
    ]
    for argv, expected in cases:
        code, _, err = cli(
            capsys, "baseline", "approve", *argv, "--db", database.url, "--by", "a", "--reason", "r"
        )
        assert code == 2 and expected in err, err
        assert "Traceback" not in err
    code, _, err = cli(
        capsys, "baseline", "approve", "Deployment/shop/web", str(path),
        "--db", database.url, "--by", " ", "--reason", "r",
    )  # fmt: skip
    assert code == 2 and "--by and --reason are required" in err
    code, _, err = cli(
        capsys, "baseline", "revoke", "Deployment/shop/web", "--cluster-name", "manifests",
        "--db", database.url, "--by", "a", "--reason", "r",
    )  # fmt: skip
    assert code == 2 and "no approved baseline in force for Deployment/shop/web" in err
    assert query(database.url, "SELECT count(*) FROM baselines") == [(0,)]
    assert query(database.url, "SELECT count(*) FROM ledger") == [(0,)]


def _agent_batches(url: str) -> None:
    """Two batches as the agent writes them: transitions and heartbeats."""
    store = open_store(url)
    try:
        recorder = AgentRecorder(store, "prod", "run-1", log=io.StringIO())
        now = datetime.now(UTC)
        row = {
            "cluster": "prod", "run_id": "run-1", "observed_at": now, "recorded_at": now,
            "transition": "failing", "fingerprint": "f" * 32, "check_id": DRIFT,
            "severity": "high", "kind": "Deployment", "namespace": "shop", "name": "web",
            "container": "", "status_before": "pass", "status_after": "fail",
            "message": "changed", "cause": "Deployment/shop/web", "diff": None,
            "actor_user": "alice", "actor_verb": "patch", "actor_time": now,
            "actor_source_ip": "127.0.0.1", "actor_audit_id": "a-1",
        }  # fmt: skip
        recorder.add_transitions([row, {**row, "transition": "resolved"}])
        recorder.add_heartbeat("started", 60, {"events": 1})
        assert recorder.flush()
        recorder.add_heartbeat("alive", 60, {"events": 2})
        assert recorder.flush()
    finally:
        store.close()


Tamper = Callable[[str], None]
TAMPERING: list[tuple[Tamper, str]] = [
    (
        lambda url: execute(url, "UPDATE baselines SET digest = 'x' WHERE id = 1"),
        "baselines it covers were edited",
    ),
    (
        lambda url: execute(url, "DELETE FROM baselines"),
        "the baselines it covers were deleted",
    ),
    (
        lambda url: execute(url, "UPDATE agent_transitions SET actor_user = 'mallory'"),
        "agent transitions or heartbeats of its batch were edited",
    ),
    (
        lambda url: execute(url, "DELETE FROM agent_transitions WHERE transition = 'resolved'"),
        "agent transitions or heartbeats of its batch were edited, added or deleted",
    ),
    (
        lambda url: execute(url, "DELETE FROM agent_heartbeats WHERE state = 'alive'"),
        "the transitions and heartbeats it covers were deleted",
    ),
    (
        lambda url: execute(
            url,
            "INSERT INTO agent_heartbeats (cluster, run_id, at, state, interval_s, counters) "
            "VALUES ('prod', 'run-1', '2026-01-01 00:00:00', 'alive', 60, '{}')",
        ),
        "has no ledger entry: it was added afterwards",
    ),
]


@pytest.mark.parametrize(("tamper", "expected"), TAMPERING)
def test_editing_or_deleting_monitoring_evidence_is_detected(
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
    expected: str,
) -> None:
    path = _manifest(tmp_path / "app.yaml", "nginx:1.27", extra_app=False)
    _approve(capsys, database, "Deployment/shop/web", str(path))
    _agent_batches(database.url)
    code, out, err = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0 and "3 entries" in out, err
    [(user, seq)] = query(
        database.url,
        "SELECT DISTINCT actor_user, ledger_seq FROM agent_transitions",
    )
    assert (user, seq) == ("alice", 2)

    tamper(database.url)
    code, out, err = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 1, out
    assert expected in err, err
