"""Faults: concurrent writers, unreachable or malformed databases, a failure mid-record,
and where the store lives by default."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from store_helpers import deployment, execute, query, record

from databases import Database
from kubeproof.cli.main import main
from kubeproof.store import StoreError, ledger
from kubeproof.store.db import open_store
from kubeproof.store.migrate import head_revision
from postgres import free_port


def counts(url: str) -> tuple[int, ...]:
    tables = ("scans", "results", "findings", "finding_events", "subjects", "ledger")
    return tuple(query(url, f"SELECT count(*) FROM {table}")[0][0] for table in tables)


def test_concurrent_recordings_all_land_and_the_chain_holds(database: Database) -> None:
    writers, scans_each = 3, 3
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(number: int) -> None:
        store = open_store(database.url)
        try:
            start.wait()
            for day in range(scans_each):
                record(
                    store,
                    deployment(f"app-{number}", uid=f"u{number}", privileged=day % 2 == 0),
                    cluster=f"cluster-{number}",
                    day=day,
                )
        except BaseException as error:  # reported below, in the test's own thread
            failures.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    seqs = [row[0] for row in query(database.url, "SELECT seq FROM ledger ORDER BY seq")]
    assert seqs == list(range(1, writers * scans_each + 1))
    store = open_store(database.url)
    try:
        with store.reading() as session:
            verification = ledger.verify(session)
    finally:
        store.close()
    assert verification.intact, verification.problem
    assert verification.entries == writers * scans_each


def test_two_scan_processes_at_once(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "app.yaml"
    manifests.write_text(deployment())
    command = [sys.executable, "-m", "kubeproof", "scan", str(manifests), "--fail-on", "none"]
    environment = {**os.environ, "KUBEPROOF_DB": database.url}
    processes = [
        subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    assert all("recorded scan #" in error for error in errors)
    assert counts(database.url)[0] == 2
    assert main(["evidence", "verify", "--db", database.url]) == 0
    assert "2 entries" in capsys.readouterr().out


def test_unreachable_database_fails_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(deployment())
    port = free_port()  # nothing listens there
    url = f"postgresql://auditor:hunter2-Tundra@127.0.0.1:{port}/evidence"
    code = main(["scan", str(tmp_path / "app.yaml"), "--db", url])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # no report: nothing was scanned, nothing written
    assert f"cannot open database postgresql+psycopg://auditor:***@127.0.0.1:{port}/evidence" in (
        captured.err
    )
    assert "hunter2" not in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://auditor:s3cr3t-Orchid@db:port/evidence", "malformed database URL"),
        ("mysql://auditor:s3cr3t-Orchid@db/evidence", "unsupported database URL"),
        ("postgresql+asyncpg://auditor:s3cr3t-Orchid@db/evidence", "unsupported PostgreSQL"),
        ("sqlite://", "names no SQLite file"),
        ("   ", "empty database URL"),
    ],
)
def test_bad_urls_are_usage_errors(
    url: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(deployment())
    assert main(["scan", str(tmp_path / "app.yaml"), "--db", url]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and "s3cr3t" not in captured.err
    assert captured.out == ""


def test_sqlite_file_that_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    (tmp_path / "app.yaml").write_text(deployment())
    url = f"sqlite:///{blocker}/evidence.db"
    assert main(["scan", str(tmp_path / "app.yaml"), "--db", url]) == 2
    assert "cannot create the directory of database" in capsys.readouterr().err


def _refuse_ledger_appends(database: Database) -> None:
    """A real failure inside the recording transaction, raised by the database itself."""
    if database.backend == "sqlite":
        execute(
            database.url,
            "CREATE TRIGGER refuse BEFORE INSERT ON ledger "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
    else:
        execute(
            database.url,
            "CREATE FUNCTION refuse() RETURNS trigger AS "
            "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION refuse()",
        )


def test_a_failure_mid_record_leaves_nothing_half_written(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(deployment())
    scan = ["scan", str(tmp_path / "app.yaml"), "--fail-on", "none", "--db", database.url]
    assert main(scan) == 0
    before = counts(database.url)
    _refuse_ledger_appends(database)
    (tmp_path / "app.yaml").write_text(deployment(privileged=False))
    assert main(scan) == 2
    err = capsys.readouterr().err
    assert "cannot record the scan" in err and "disk on fire" in err
    assert "nothing was recorded" in err
    assert counts(database.url) == before
    assert main(["evidence", "verify", "--db", database.url]) == 0


def test_default_location_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.yaml").write_text(deployment())
    monkeypatch.delenv("KUBEPROOF_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["scan", str(tmp_path / "app.yaml"), "--fail-on", "none"]) == 0
    assert not (tmp_path / "data").exists()  # no --db, --record or KUBEPROOF_DB: no store
    assert main(["scan", str(tmp_path / "app.yaml"), "--fail-on", "none", "--record"]) == 0
    default = tmp_path / "data" / "kubeproof" / "kubeproof.db"
    assert default.is_file()
    assert str(default) in capsys.readouterr().err

    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("KUBEPROOF_DB", str(elsewhere))
    assert main(["scan", str(tmp_path / "app.yaml"), "--fail-on", "none"]) == 0
    assert main(["evidence", "verify"]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert counts(f"sqlite:///{default}")[0] == 1


def test_reading_commands_do_not_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    assert main(["findings", "--db", str(missing)]) == 2
    assert "no evidence store at" in capsys.readouterr().err
    assert not missing.exists()
    # Nor turn an empty file, or another program's database, into one.
    empty, other = tmp_path / "values.yaml", tmp_path / "other.sqlite3"
    empty.touch()
    with sqlite3.connect(other) as database:
        database.execute("CREATE TABLE notes (x)")
    for path in (empty, other):
        before = path.read_bytes()
        report = [
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
            "--output",
            str(tmp_path / "r"),
        ]
        for command in (["findings"], report):
            assert main([*command, "--db", str(path)]) == 2
            assert "no evidence store at" in capsys.readouterr().err
        assert path.read_bytes() == before


def test_schema_is_migrated_once_and_newer_schemas_are_refused(database: Database) -> None:
    store = open_store(database.url)
    store.close()
    assert query(database.url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    store = open_store(database.url)  # again: nothing to do
    store.close()
    execute(database.url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="revision 9999, newer than this kubeproof knows"):
        open_store(database.url)
