"""Exceptions in the evidence store, on SQLite and PostgreSQL: added, listed, revoked and
applied by `kubeproof scan --db` through the CLI and the API, chained in the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from store_helpers import deployment, execute, query, scan_of

from databases import Database
from kubeproof.cli.main import main
from kubeproof.risk_acceptance import apply_exceptions
from kubeproof.store.db import Store, open_store
from kubeproof.store.exceptions import (
    NewException,
    add_exception,
    list_exceptions,
    scan_exceptions,
)
from kubeproof.store.record import present_subjects, record_scan

PRIVILEGED = "pss.privileged"
IN_A_MONTH = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def days_from_today(days: int) -> str:
    """Computed when the test runs: a session that crosses midnight moves "today"."""
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = open_store(database.url)
    yield opened
    opened.close()


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def add(database: Database, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code, out, err = cli(
        capsys,
        "exceptions",
        "add",
        "--db",
        database.url,
        "--owner",
        "alice@example.com",
        "--reason",
        "legacy agent needs the host; replacement tracked",
        "--ticket",
        "SEC-42",
        "--approver",
        "ciso@example.com",
        *extra,
    )
    return code, out + err


def manifests(tmp_path: Path, *documents: str) -> str:
    path = tmp_path / "manifests.yaml"
    path.write_text("---\n".join(documents))
    return str(path)


def scan_json(
    capsys: pytest.CaptureFixture[str], database: Database, path: str, *extra: str
) -> tuple[dict[str, Any], str]:
    code, out, err = cli(capsys, "scan", path, "--db", database.url, "-o", "json", *extra)
    assert code == 1, err  # other checks still fail
    return json.loads(out), err


def privileged_results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["subject"]["name"]: r for r in report["results"] if r["check"] == PRIVILEGED}


def test_added_exception_excepts_matching_failures_in_a_recorded_scan(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = add(
        database,
        capsys,
        "--check",
        PRIVILEGED,
        "--subject",
        "Deployment/shop/storefront",
        "--expires",
        IN_A_MONTH,
    )
    assert code == 0, said
    assert "added exception EXC-1" in said and "ledger entry #1" in said

    path = manifests(tmp_path, deployment(), deployment("checkout", uid="b"))
    report, err = scan_json(capsys, database, path)
    results = privileged_results(report)
    excepted, other = results["storefront"], results["checkout"]
    assert other["status"] == "fail"
    assert excepted["status"] == "excepted"
    assert "EXC-1" in excepted["reason"] and IN_A_MONTH in excepted["reason"]
    details = excepted["details"]["exception"]
    assert details["id"] == "EXC-1" and details["source"] == "store"
    assert (details["owner"], details["ticket"], details["expires"]) == (
        "alice@example.com",
        "SEC-42",
        IN_A_MONTH,
    )
    assert details["approver"] == "ciso@example.com"
    assert report["summary"]["totals"]["excepted"] == 1  # counted, not hidden
    assert "1 failing result(s) excepted by exception EXC-1" in err

    # Recorded as excepted; the finding never opened as a failure it did not see.
    [(status, stored)] = query(
        database.url,
        f"SELECT status, details FROM results WHERE check_id = '{PRIVILEGED}' "
        "AND name = 'storefront'",
    )
    assert status == "excepted"
    assert "EXC-1" in (stored if isinstance(stored, str) else json.dumps(stored))

    code, out, _ = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0 and "ledger intact: 2 entries" in out


def test_list_show_and_revoke(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("storefront", "checkout"):
        code, said = add(
            database,
            capsys,
            "--check",
            "pss.*",
            "--subject",
            f"Deployment/shop/{name}",
            "--expires",
            IN_A_MONTH,
        )
        assert code == 0, said

    code, out, _ = cli(capsys, "exceptions", "list", "--db", database.url)
    assert code == 0
    assert "EXC-1" in out and "EXC-2" in out and "active" in out and "SEC-42" in out

    code, out, _ = cli(capsys, "exceptions", "show", "EXC-2", "--db", database.url, "-o", "json")
    shown = json.loads(out)
    assert shown["subjects"] == ["Deployment/shop/checkout"]
    assert shown["state"] == "active" and shown["revoked"] is None
    assert shown["createdAt"].startswith(days_from_today(0))

    arguments = ["--db", database.url, "--by", "bob", "--reason", "fixed upstream"]
    code, out, err = cli(capsys, "exceptions", "revoke", "EXC-1", *arguments)
    assert code == 0, err
    assert "revoked exception EXC-1; ledger entry #3" in out

    code, out, err = cli(capsys, "exceptions", "revoke", "1", *arguments)
    assert code == 2 and "EXC-1 was already revoked" in err
    code, out, err = cli(capsys, "exceptions", "revoke", "EXC-9", *arguments)
    assert code == 2 and "no exception EXC-9" in err
    code, out, err = cli(capsys, "exceptions", "show", "nonsense", "--db", database.url)
    assert code == 2 and "is not an exception id" in err

    code, out, _ = cli(capsys, "exceptions", "list", "--db", database.url, "-o", "json")
    assert [e["id"] for e in json.loads(out)["exceptions"]] == ["EXC-2"]
    code, out, _ = cli(capsys, "exceptions", "list", "--all", "--db", database.url, "-o", "json")
    revoked = json.loads(out)["exceptions"][0]
    assert revoked["state"] == "revoked" and revoked["revoked"]["by"] == "bob"

    code, out, _ = cli(capsys, "evidence", "verify", "--db", database.url, "-o", "json")
    assert code == 0 and json.loads(out)["entries"] == 3


def test_revoked_exception_no_longer_applies(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(database, capsys, "--check", PRIVILEGED, "--namespace", "shop", "--expires", IN_A_MONTH)
    cli(capsys, "exceptions", "revoke", "EXC-1", "--db", database.url, "--by", "b", "--reason", "r")
    report, _ = scan_json(capsys, database, manifests(tmp_path, deployment()))
    result = privileged_results(report)["storefront"]
    assert result["status"] == "fail" and "details" not in result


def test_expired_exception_fails_again_and_says_when_it_expired(
    store: Store, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Added sixty days ago for thirty days: it has expired by now.
    created = datetime.now(UTC) - timedelta(days=60)
    expired_on = (created + timedelta(days=30)).date()
    new = NewException(
        checks=[PRIVILEGED],
        owner="alice",
        reason="temporary",
        expires=expired_on,
        subjects=["Deployment/shop/*"],
        namespaces=[],
    )
    add_exception(store, new, now=created, max_days=365)

    report, err = scan_json(capsys, database, manifests(tmp_path, deployment()))
    result = privileged_results(report)["storefront"]
    assert result["status"] == "fail"
    assert result["message"].endswith(f"(exception EXC-1 expired on {expired_on.isoformat()})")
    assert result["details"]["exception"]["expired"] is True
    assert f"exception EXC-1 expired on {expired_on.isoformat()}" in err

    with store.reading() as session:
        [listed] = list_exceptions(session, now=datetime.now(UTC))
    assert listed.state == "expired"
    code, out, _ = cli(capsys, "exceptions", "list", "--db", database.url)
    assert code == 0 and "no active exceptions" in out


def test_label_selector_matches_the_workloads_labels(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = deployment().replace(
        "metadata: {name: storefront,", "metadata: {labels: {team: legacy}, name: storefront,"
    )
    assert "team: legacy" in labelled
    add(
        database,
        capsys,
        "--check",
        PRIVILEGED,
        "--selector",
        "team=legacy",
        "--expires",
        IN_A_MONTH,
    )
    report, _ = scan_json(
        capsys, database, manifests(tmp_path, labelled, deployment("api", uid="c"))
    )
    results = privileged_results(report)
    assert results["storefront"]["status"] == "excepted"
    assert results["api"]["status"] == "fail"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--expires", "2020-01-01"], "is not in the future"),
        (["--expires", 0], "is not in the future"),
        (["--expires", "31/01/2027"], "--expires: '31/01/2027' is not a date: use YYYY-MM-DD"),
        (["--expires", "2027-02-30"], "is not a calendar date"),
        (["--expires", 366], "more than 365 days after"),
        (["--expires", 40, "--max-days", "30"], "more than 30 days after"),
    ],
)
def test_bad_expiry_is_refused_and_nothing_is_written(
    database: Database, capsys: pytest.CaptureFixture[str], extra: list[str | int], expected: str
) -> None:
    # Whole numbers are days from today, turned into dates as the test runs.
    arguments = [days_from_today(a) if isinstance(a, int) else a for a in extra]
    code, said = add(database, capsys, "--check", PRIVILEGED, "--namespace", "shop", *arguments)
    assert code == 2 and expected in said, said
    if database.path is not None:
        assert not database.path.exists()  # refused before the store was even created


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--check", PRIVILEGED], "give --subject, --namespace or --selector"),
        (["--check", "pss privileged", "--namespace", "x"], "is not a check id or glob"),
        (["--check", PRIVILEGED, "--subject", "storefront"], "cannot read subject"),
        (["--check", PRIVILEGED, "--selector", "team"], "cannot read selector"),
    ],
)
def test_bad_scope_is_refused(
    database: Database, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code, said = add(database, capsys, *extra, "--expires", IN_A_MONTH)
    assert code == 2 and expected in said, said


def test_longer_maximum_allows_a_longer_exception(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    far = days_from_today(500)
    code, said = add(
        database,
        capsys,
        "--check",
        PRIVILEGED,
        "--namespace",
        "shop",
        "--expires",
        far,
        "--max-days",
        "730",
    )
    assert code == 0, said


def _edit_exception(url: str) -> None:
    execute(url, "UPDATE exceptions SET reason = 'nothing to see' WHERE id = 1")


def _extend_expiry(url: str) -> None:
    execute(url, "UPDATE exceptions SET expires_on = '2099-01-01' WHERE id = 1")


def _widen_scope(url: str) -> None:
    execute(url, """UPDATE exceptions SET namespaces = '["*"]' WHERE id = 1""")


def _edit_revocation(url: str) -> None:
    execute(url, "UPDATE exception_revocations SET revoked_by = 'mallory' WHERE id = 1")


def _forge_exception(url: str) -> None:
    execute(
        url,
        "INSERT INTO exceptions (checks, subjects, namespaces, owner, reason, created_at, "
        """expires_on) VALUES ('["*"]', '[]', '["*"]', 'x', 'y', '2026-01-01 00:00:00', """
        "'2099-01-01')",
    )


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit_exception, "ledger entry #1 (exception, exception EXC-1"),
        (_extend_expiry, "the exception or revocation was edited"),
        (_widen_scope, "the exception or revocation was edited"),
        (_edit_revocation, "ledger entry #3 (exception_revoked, revocation #1"),
        (_forge_exception, "exception EXC-3 has no ledger entry"),
    ],
)
def test_tampering_with_exceptions_is_detected(
    database: Database, capsys: pytest.CaptureFixture[str], tamper: Any, expected: str
) -> None:
    for namespace in ("shop", "payments"):
        code, said = add(
            database,
            capsys,
            "--check",
            PRIVILEGED,
            "--namespace",
            namespace,
            "--expires",
            IN_A_MONTH,
        )
        assert code == 0, said
    cli(capsys, "exceptions", "revoke", "EXC-2", "--db", database.url, "--by", "b", "--reason", "r")
    code, out, _ = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0 and "3 entries" in out

    tamper(database.url)
    code, out, err = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 1
    assert expected in err, err


def test_scan_and_exception_entries_share_one_chain(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the API: a recorded scan, an exception, a scan that applies it."""
    report, inventory = scan_of(deployment())
    record_scan(store, report, cluster="prod", present=present_subjects(inventory))
    now = datetime.now(UTC)
    new = NewException(
        checks=[PRIVILEGED],
        owner="o",
        reason="r",
        expires=date.fromisoformat(IN_A_MONTH),
        subjects=["Deployment/shop/storefront"],
        namespaces=[],
    )
    added = add_exception(store, new, now=now, max_days=365)
    assert added.ledger_seq == 2

    report, inventory = scan_of(deployment())
    applied = apply_exceptions(
        report.results, scan_exceptions(store, now=now), now=now, inventory=inventory
    )
    assert applied.excepted == {"EXC-1": 1}
    recorded = record_scan(store, report, cluster="prod", present=present_subjects(inventory))
    assert recorded.ledger_seq == 3
    # Excepted is not resolved: the finding stays open, its latest status says excepted.
    [(state, last_status)] = query(
        database.url,
        f"SELECT state, last_status FROM findings WHERE check_id = '{PRIVILEGED}'",
    )
    assert (state, last_status) == ("open", "excepted")
    code, out, _ = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0 and "3 entries" in out


def test_a_store_with_scans_upgrades_to_exceptions_and_stays_intact(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Back to revision 0001 with a recorded scan in it, then forward again on open."""
    from alembic import command
    from sqlalchemy import create_engine

    from kubeproof.store.db import parse_url
    from kubeproof.store.migrate import alembic_config, head_revision

    opened = open_store(database.url)
    report, inventory = scan_of(deployment())
    record_scan(opened, report, cluster="prod", present=present_subjects(inventory))
    opened.close()
    engine = create_engine(parse_url(database.url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
    finally:
        engine.dispose()
    assert query(database.url, "SELECT version_num FROM alembic_version") == [("0001",)]

    open_store(database.url).close()
    assert query(database.url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    code, out, _ = cli(capsys, "evidence", "verify", "--db", database.url)
    assert code == 0 and "1 entries" in out
    code, said = add(
        database, capsys, "--check", "pss.*", "--namespace", "shop", "--expires", IN_A_MONTH
    )
    assert code == 0 and "ledger entry #2" in said


def test_an_exception_row_edited_into_nonsense_stops_the_scan(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(database, capsys, "--check", PRIVILEGED, "--namespace", "shop", "--expires", IN_A_MONTH)
    execute(database.url, """UPDATE exceptions SET namespaces = '[]', subjects = '["x"]'""")
    path = manifests(tmp_path, deployment())
    code, out, err = cli(capsys, "scan", path, "--db", database.url, "-o", "json")
    assert code == 2 and out == ""
    assert "cannot apply the exceptions in" in err and "exception EXC-1: cannot read subject" in err
    assert query(database.url, "SELECT count(*) FROM scans") == [(0,)]
