"""A stored value no decoder accepts (not JSON, a blob, JSON nested too deeply, not a
time) is tampering too: `evidence verify` reports it as an altered entry, and the commands
that read the store refuse with a pointer to `evidence verify`, never a traceback.

SQLite only: PostgreSQL's json and timestamp columns reject such values when written."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import deployment, execute, record

from kubeproof.cli.main import main
from kubeproof.store.db import open_store

SECRET = "hunter2"  # in the damaged values: no message may quote them
DEEP = "[" * 100_000 + "]" * 100_000
SCAN_2_RESULT = "(SELECT min(id) FROM results WHERE scan_id = 2)"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """Three recorded scans, entries #1 to #3, of a Deployment that fails on days 0 and 2."""
    location = f"sqlite:///{tmp_path / 'evidence.db'}"
    store = open_store(location)
    record(store, deployment(privileged=True), day=0)
    record(store, deployment(privileged=False), day=1)
    record(store, deployment(privileged=True), day=2)
    store.close()
    return location


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    return code, captured.err


@pytest.mark.parametrize(
    ("damage", "unreadable"),
    [
        (
            f"UPDATE results SET details = '{{not json {SECRET}' WHERE id = {SCAN_2_RESULT}",
            "results.details is not valid JSON",
        ),
        (
            f"UPDATE results SET details = X'FFFE00' WHERE id = {SCAN_2_RESULT}",
            "results.details is not valid JSON",
        ),
        (
            f"UPDATE results SET details = '{DEEP}' WHERE id = {SCAN_2_RESULT}",
            "results.details is not valid JSON",
        ),
        ("UPDATE scans SET coverage = X'FFFE00' WHERE id = 2", "scans.coverage is not valid JSON"),
        (f"UPDATE scans SET sources = '{DEEP}' WHERE id = 2", "scans.sources is not valid JSON"),
        (f"UPDATE scans SET totals = '{DEEP}' WHERE id = 2", "scans.totals is not valid JSON"),
        (
            f"UPDATE scans SET started_at = 'not a date {SECRET}' WHERE id = 2",
            "scans.started_at is not a valid time",
        ),
    ],
    ids=["details", "details-blob", "details-deep", "coverage", "sources", "totals", "started"],
)
def test_verify_reports_an_unreadable_row_as_an_altered_entry(
    url: str, capsys: pytest.CaptureFixture[str], damage: str, unreadable: str
) -> None:
    execute(url, damage)
    code, err = run(capsys, "evidence", "verify", "--db", url)
    assert code == 1
    assert "evidence altered: ledger entry #2 (scan, scan #2," in err
    assert f"its stored rows cannot be read ({unreadable})" in err
    assert "the first 1 entries verified" in err


def test_verify_reports_an_unreadable_ledger_row(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(url, f"UPDATE ledger SET recorded_at = '{SECRET}' WHERE seq = 2")
    code, err = run(capsys, "evidence", "verify", "--db", url, "-o", "json")
    assert code == 1
    assert "the ledger's rows cannot be read (ledger.recorded_at is not a valid time)" in err


def test_report_names_the_unreadable_row_and_points_to_verify(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(url, "UPDATE scans SET coverage = X'FFFE00' WHERE id = 2")
    output = tmp_path / "report.json"
    arguments = ["--from", "2026-01-01", "--to", "2026-01-31", "--format", "json"]
    code, err = run(capsys, "report", "--db", url, *arguments, "--output", str(output))
    assert code == 2
    assert "scans row 2: scans.coverage is not valid JSON" in err
    assert "kubeproof evidence verify" in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("damage", "command", "named"),
    [
        (
            f"UPDATE findings SET first_seen = '{SECRET}' WHERE id = 1",
            ["findings"],
            "findings row 1: findings.first_seen is not a valid time",
        ),
        (
            "UPDATE subjects SET labels = X'FFFE00'",
            ["history", "Deployment/shop/storefront"],
            "subjects row 1: subjects.labels is not valid JSON",
        ),
        (
            f"UPDATE ledger SET recorded_at = '{SECRET}' WHERE seq = 3",
            ["evidence", "export-head"],
            "ledger row 3: ledger.recorded_at is not a valid time",
        ),
    ],
    ids=["findings", "history", "export-head"],
)
def test_a_reader_names_the_unreadable_row_and_points_to_verify(
    url: str, capsys: pytest.CaptureFixture[str], damage: str, command: list[str], named: str
) -> None:
    execute(url, damage)
    code, err = run(capsys, *command, "--db", url)
    assert code == 2
    assert named in err
    assert "kubeproof evidence verify" in err
