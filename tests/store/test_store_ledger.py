"""The ledger detects every edit made behind kubeproof's back, by plain SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from store_helpers import deployment, execute, query, record

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store import ledger
from kubeproof.store.db import Store, open_store
from kubeproof.store.schema import LedgerEntryRow, ScanRow


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """Three recorded scans: entries #1, #2, #3."""
    opened = open_store(database.url)
    record(opened, deployment(privileged=True), day=0)
    record(opened, deployment(privileged=False), day=1)
    record(opened, deployment(privileged=True), deployment("checkout", uid="b"), day=2)
    yield opened
    opened.close()


def verify(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["evidence", "verify", "--db", url, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_intact_ledger_verifies(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(database.url, capsys)
    assert (code, err) == (0, "")
    assert "ledger intact: 3 entries" in out
    [(head,)] = query(database.url, "SELECT entry_hash FROM ledger WHERE seq = 3")
    assert f"head {head}" in out


def _edit_result(url: str) -> None:
    execute(
        url,
        "UPDATE results SET status = 'pass' WHERE id = "
        "(SELECT min(id) FROM results WHERE scan_id = 2 AND status = 'fail')",
    )


def _edit_message(url: str) -> None:
    execute(url, "UPDATE results SET message = 'fine' WHERE id = (SELECT max(id) FROM results)")


def _delete_result(url: str) -> None:
    execute(url, "DELETE FROM results WHERE id = (SELECT min(id) FROM results WHERE scan_id = 1)")


def _add_result(url: str) -> None:
    columns = (
        "scan_id, fingerprint, check_id, status, severity, api_version, kind, namespace, "
        "name, container, message"
    )
    execute(
        url,
        f"INSERT INTO results ({columns}) SELECT {columns} FROM results "
        "WHERE id = (SELECT min(id) FROM results WHERE scan_id = 2)",
    )


def _edit_run(url: str) -> None:
    execute(url, "UPDATE scans SET cluster = 'staging' WHERE id = 2")


def _delete_entry(url: str) -> None:
    execute(url, "DELETE FROM ledger WHERE seq = 2")


def _delete_last_entry(url: str) -> None:
    execute(url, "DELETE FROM ledger WHERE seq = 3")


def _reorder_entries(url: str) -> None:
    execute(
        url,
        "UPDATE ledger SET seq = 100 WHERE seq = 2",
        "UPDATE ledger SET seq = 2 WHERE seq = 3",
        "UPDATE ledger SET seq = 3 WHERE seq = 100",
    )


def _add_scan_without_entry(url: str) -> None:
    columns = (
        "cluster, sources, framework, catalogue_digest, tool_version, pss_version, started_at, "
        "finished_at, recorded_at, objects, files, coverage, coverage_complete_by_default, "
        "input_errors, result_count, totals"
    )
    execute(url, f"INSERT INTO scans ({columns}) SELECT {columns} FROM scans WHERE id = 1")


TAMPERING: dict[str, tuple[Callable[[str], None], str]] = {
    "result edited": (_edit_result, "ledger entry #2 (scan, scan #2"),
    "message edited": (_edit_message, "ledger entry #3 (scan, scan #3"),
    "result deleted": (_delete_result, "ledger entry #1 (scan, scan #1"),
    "result inserted": (_add_result, "ledger entry #2 (scan, scan #2"),
    "run edited": (_edit_run, "ledger entry #2 (scan, scan #2"),
    "entry deleted": (_delete_entry, "ledger entry #3 (scan, scan #3"),
    "last entry deleted": (_delete_last_entry, "ledger head says 3 entries"),
    "entries reordered": (_reorder_entries, "ledger entry #2 (scan, scan #3"),
    "scan inserted without entry": (_add_scan_without_entry, "scan #4 has no ledger entry"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_tampering_is_detected(
    tampering: str, store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, first_bad = TAMPERING[tampering]
    edit(database.url)
    code, out, err = verify(database.url, capsys)
    assert code == 1
    assert "evidence altered" in err and first_bad in err, err
    assert "ledger intact" not in out


def test_forged_entry_inserted_in_the_middle_is_detected(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker who knows the algorithm copies scan #1 as a new scan, and inserts a
    correctly hashed entry for it after entry #1, renumbering the entries after it."""
    with store.writing() as session:
        original = session.get(ScanRow, 1)
        assert original is not None
        values = {c.key: getattr(original, c.key) for c in ScanRow.__table__.columns}
        values.pop("id")
        forged = ScanRow(**values)
        session.add(forged)
        session.flush()
        for seq in (3, 2):  # from the end: no two rows share a seq at any moment
            entry = session.get(LedgerEntryRow, seq)
            assert entry is not None
            entry.seq = seq + 1
            session.flush()
        first = session.scalars(select(LedgerEntryRow).where(LedgerEntryRow.seq == 1)).one()
        scan_values = {name: getattr(forged, name) for name in ledger.SCAN_FIELDS}
        content = ledger.scan_content(scan_values, ledger.results_digest([]))
        session.add(
            LedgerEntryRow(
                seq=2,
                entry_type="scan",
                scan_id=forged.id,
                recorded_at=first.recorded_at,
                prev_hash=first.entry_hash,
                entry_hash=ledger.entry_hash(
                    2, "scan", first.recorded_at, first.entry_hash, content
                ),
            )
        )
    code, _, err = verify(database.url, capsys)
    assert code == 1
    assert "ledger entry #3 (scan, scan #2" in err and "does not link" in err, err


def test_expect_checks_a_published_head(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    [(second,)] = query(database.url, "SELECT entry_hash FROM ledger WHERE seq = 2")
    assert verify(database.url, capsys, "--expect", second)[0] == 0
    code, _, err = verify(database.url, capsys, "--expect", "ab" * 32)
    assert code == 1 and "no ledger entry has the expected hash" in err
