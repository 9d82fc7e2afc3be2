"""Audit detections and Falco alerts in the evidence store (revision 0008), on SQLite and
PostgreSQL: recorded by `kubeproof audit scan --db`, idempotent when the same events come
again, chained in the ledger with the receiver's heartbeats so that `evidence verify`
catches an edited, deleted or relabelled row, and signed with the other entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from store_helpers import execute, query

from audit.auditlog import event
from databases import Database
from kubeproof.audit.evidence import DetectionRecorder, detection_row, new_run_id
from kubeproof.cli.main import main
from kubeproof.store.db import open_store, parse_url
from kubeproof.store.detections import write_detections
from kubeproof.store.monitoring import write_monitoring
from kubeproof.store.schema import Base

SECRET = "hunter2-Very-Secret-Token-4d1f"


def audit_log(directory: Path, *events: dict[str, Any]) -> Path:
    path = directory / "audit.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def exec_and_secret_read(directory: Path) -> Path:
    return audit_log(
        directory,
        event(at=1, verb="create", subresource="exec", audit_id="a-exec"),
        event(at=2, resource="secrets", name="db", audit_id="a-secret"),
        event(at=3, resource="secrets", name=f"token={SECRET}", audit_id="a-secret-2"),
    )


def scan(url: str, log: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(["audit", "scan", str(log), "--db", url, "--learning-period", "0s", *extra])
    assert code == 1  # detections
    return capsys.readouterr().err


def verify(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["evidence", "verify", "--db", url, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def detections(url: str) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in query(
            url,
            "SELECT detector_id, source, severity, kind, name, evidence_key, cluster, "
            "ledger_seq FROM detections ORDER BY detector_id",
        )
    ]


def test_a_scan_records_each_detection_once_and_the_chain_verifies(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = exec_and_secret_read(tmp_path)
    said = scan(database.url, log, capsys, "--cluster-name", "prod")
    assert "recorded 2 detections of prod" in said and "ledger entries #1" in said
    assert detections(database.url) == [
        ("audit.pod-exec", "audit", "high", "User", "alice", "a-exec", "prod", 1),
        ("audit.secret-read-unusual", "audit", "high", "User", "alice", "a-secret", "prod", 1),
    ]
    # The same log again (a re-read, a retried batch) adds nothing and no ledger entry.
    said = scan(database.url, log, capsys, "--cluster-name", "prod")
    assert "recorded 0 detections of prod" in said and "(2 already there)" in said
    assert len(detections(database.url)) == 2
    code, output = verify(database.url, capsys)
    assert code == 0 and "1 entries verified" in output, output
    # The evidence is the printed JSON, and no secret reached the database.
    [(stored,)] = query(database.url, "SELECT evidence FROM detections WHERE source = 'audit' "
                        "AND detector_id = 'audit.secret-read-unusual'")  # fmt: skip
    evidence = json.loads(stored) if isinstance(stored, str) else stored
    assert evidence["auditIDs"] == ["a-secret", "a-secret-2"]
    assert SECRET not in database.stored_text()


@pytest.mark.parametrize(
    ("tamper", "complaint"),
    [
        (
            "UPDATE detections SET message = 'nothing to see' WHERE evidence_key = 'a-exec'",
            "detections or audit receiver heartbeats of its batch were edited",
        ),
        ("DELETE FROM detections WHERE evidence_key = 'a-exec'", "were edited, added or deleted"),
        (
            "UPDATE detections SET severity = 'low' WHERE evidence_key = 'a-secret'",
            "its content no longer matches its hash",
        ),
        ("DELETE FROM detections", "the detections and heartbeats it covers were deleted"),
    ],
)
def test_an_edited_or_deleted_detection_fails_verification(
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: str,
    complaint: str,
) -> None:
    scan(database.url, exec_and_secret_read(tmp_path), capsys)
    execute(database.url, tamper)
    code, output = verify(database.url, capsys)
    assert code == 1 and "ledger entry #1 (detections" in output and complaint in output, output


def test_receiver_heartbeats_are_chained_and_cannot_be_relabelled(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    recorder = DetectionRecorder(
        store,
        cluster="prod",
        run_id=new_run_id(),
        log=lambda line: None,
        counters=lambda: {"events": 7, "bad_bodies": 1},
    )
    recorder.start()
    assert recorder.close() == 0
    with store.writing() as session:  # the agent's own heartbeat, in a monitoring entry
        agent_beat = {
            "cluster": "prod",
            "run_id": "agent-run",
            "at": datetime.now(UTC),
            "state": "alive",
            "interval_s": 60,
            "counters": {},
        }
        write_monitoring(session, [], [agent_beat], datetime.now(UTC))
    store.close()
    rows = query(
        database.url, "SELECT component, state, counters FROM agent_heartbeats ORDER BY id"
    )
    assert [(c, s) for c, s, _ in rows] == [
        ("audit", "started"),
        ("audit", "stopped"),
        ("agent", "alive"),
    ]
    counters = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert counters["events"] == 7 and counters["bad_bodies"] == 1
    assert verify(database.url, capsys)[0] == 0
    # An agent heartbeat passed off as a receiver's, and the other way round.
    execute(database.url, "UPDATE agent_heartbeats SET component = 'audit' WHERE state = 'alive'")
    code, output = verify(database.url, capsys)
    assert code == 1 and "is not chained by a detections entry" in output, output
    execute(
        database.url,
        "UPDATE agent_heartbeats SET component = 'agent'",
    )
    code, output = verify(database.url, capsys)
    assert code == 1 and "heartbeats of its batch were edited" in output, output


def test_a_detection_moved_to_another_entry_fails_verification(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    now = datetime.now(UTC)
    printed = {
        "check": "falco.terminal-shell-in-container",
        "severity": "medium",
        "criteria": {"CC7.2": "..."},
        "subject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop",
                    "name": "web", "container": "app"},
        "message": "shell",
        "fingerprint": "f" * 32,
        "evidence": {"source": "falco", "time": "2026-03-02T10:00:00.000000Z"},
        "key": "falco:abc",
    }  # fmt: skip
    row = detection_row(printed, cluster="prod", run_id="r", received_at=now)
    assert (row["source"], row["evidence_key"], row["container"]) == ("falco", "falco:abc", "app")
    with store.writing() as session:
        write_detections(session, [row], [], now)
    with store.writing() as session:
        write_detections(session, [{**row, "evidence_key": "falco:def"}], [], now)
    store.close()
    assert verify(database.url, capsys)[0] == 0
    execute(database.url, "UPDATE detections SET ledger_seq = 1")
    code, output = verify(database.url, capsys)
    assert code == 1 and "ledger entry #1 (detections" in output, output


def test_detections_entries_are_signed_with_the_signing_key(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "ledger.key"
    assert main(["evidence", "keygen", "--output", str(private)]) == 0
    capsys.readouterr()
    scan(database.url, exec_and_secret_read(tmp_path), capsys, "--signing-key", str(private))
    code, output = verify(database.url, capsys, "--public-key", f"{private}.pub")
    assert code == 0 and "1 entries signed" in output and "all verified" in output, output
    assert private.read_bytes().decode(errors="replace") not in database.stored_text()


def test_the_migrated_schema_is_the_one_the_models_describe(database: Database) -> None:
    open_store(database.url).close()
    engine = create_engine(parse_url(database.url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    mine = [d for d in differences if "detections" in str(d) or "component" in str(d)]
    assert mine == []
    assert {row[0] for row in query(database.url, "SELECT component FROM agent_heartbeats")} <= {
        "agent"
    }
