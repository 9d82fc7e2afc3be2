"""The line `kubeproof report` ends with: a period without scans but with admission
decisions is not called empty."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store.db import open_store
from kubeproof.store.decisions import record_batch
from paths import ROOT

AT = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


def _decision(uid: str) -> dict[str, object]:
    return {
        "uid": uid,
        "decided_at": AT,
        "username": "deployer",
        "groups": [],
        "operation": "CREATE",
        "api_group": "apps",
        "kind": "Deployment",
        "namespace": "shop",
        "name": f"app-{uid}",
        "owner_kind": "",
        "owner_name": "",
        "images": [],
        "rules": [{"check": "pss.privileged", "outcome": "fail"}],
        "decision": "denied",
        "allowed": False,
        "mode": "enforce",
        "dry_run": False,
        "policy_digest": "e" * 64,
        "reason": "breaks pss.privileged",
    }


def _summary(
    database: Database, output: Path, first: str, last: str, capsys: pytest.CaptureFixture[str]
) -> str:
    arguments = ["report", "--from", first, "--to", last, "--format", "json"]
    assert main([*arguments, "--output", str(output), "--db", database.url]) == 0
    return capsys.readouterr().err


def test_a_period_with_decisions_but_no_scans_says_what_it_holds(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    rows = [_decision("a"), _decision("b"), _decision("c")]
    record_batch(store, rows, cluster="prod", webhook="w", recorded_at=AT)
    store.close()
    line = _summary(database, tmp_path / "r.json", "2026-02-02", "2026-02-08", capsys)
    assert "no scans recorded from 2026-02-02 to 2026-02-08" in line
    assert "report of 3 admission decisions to" in line and "empty" not in line
    # A period holding nothing at all is still called empty.
    line = _summary(database, tmp_path / "e.json", "2025-02-02", "2025-02-08", capsys)
    assert "wrote an empty json report" in line


def test_an_empty_period_with_an_altered_ledger_says_so(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Moving the only scan out of the period empties it, and alters the ledger.
    assert main(["scan", str(ROOT / "examples"), "--db", database.url, "--fail-on", "none",
                 "--output", str(tmp_path / "scan.json"), "--format", "json"]) == 0  # fmt: skip
    engine = create_engine(database.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE scans SET started_at = :moved"), {"moved": AT})
    engine.dispose()
    today = datetime.now(UTC).date().isoformat()
    line = _summary(database, tmp_path / "r.json", today, today, capsys)
    assert "no scans recorded from" in line and line.rstrip().endswith("; LEDGER ALTERED")
