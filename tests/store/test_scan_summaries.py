"""The per-scan summaries (revision 0004) are a faithful GROUP BY over each scan's results,
whether written when the scan was recorded or backfilled by the migration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine
from store_helpers import T0, deployment, execute, query, record

from databases import Database
from kubeproof import frameworks
from kubeproof.cli.main import main
from kubeproof.inventory import Coverage
from kubeproof.model import Result, Status, Subject
from kubeproof.scan import ScanReport
from kubeproof.store.db import Store, open_store, parse_url
from kubeproof.store.migrate import alembic_config, head_revision
from kubeproof.store.record import record_scan

CHECK_COUNTS_NOW = """
    SELECT scan_id, check_id, status, reason, results FROM scan_check_counts
"""
CHECK_COUNTS_FROM_RESULTS = """
    SELECT scan_id, check_id, status,
           CASE WHEN status = 'not_evaluated' THEN reason END AS why, count(*)
    FROM results GROUP BY scan_id, check_id, status, why
"""
SUBJECT_COUNTS_NOW = """
    SELECT scan_id, kind, namespace, name, results, fail, not_evaluated, excepted
    FROM scan_subject_counts
"""
SUBJECT_COUNTS_FROM_RESULTS = """
    SELECT scan_id, kind, namespace, name, count(*),
           sum(CASE WHEN status = 'fail' THEN 1 ELSE 0 END),
           sum(CASE WHEN status = 'not_evaluated' THEN 1 ELSE 0 END),
           sum(CASE WHEN status = 'excepted' THEN 1 ELSE 0 END)
    FROM results GROUP BY scan_id, kind, namespace, name
"""


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = open_store(database.url)
    yield opened
    opened.close()


def rows(url: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows as plain tuples (ints, not Decimals), sorted with None first."""
    plain = [
        tuple(int(v) if isinstance(v, int | Decimal) else v for v in row)
        for row in query(url, statement)
    ]
    return sorted(plain, key=lambda row: tuple((v is not None, v) for v in row))


def assert_summaries_match_results(url: str) -> None:
    assert rows(url, CHECK_COUNTS_NOW) == rows(url, CHECK_COUNTS_FROM_RESULTS)
    assert rows(url, SUBJECT_COUNTS_NOW) == rows(url, SUBJECT_COUNTS_FROM_RESULTS)


def mixed_scan(day: int) -> ScanReport:
    """Every status, reasons given and missing, several containers and subjects without a
    namespace, as a recorded scan of day `day`."""
    framework = frameworks.load("soc2")
    checks = [check.spec for check in framework.checks][:3]
    web = Subject("apps/v1", "Deployment", "shop", "web", "app")
    sidecar = web.with_container("proxy")
    node_wide = Subject("v1", "Namespace", None, "shop")
    results = [
        Result(checks[0], Status.FAIL, web, "container app: privileged"),
        Result(checks[0], Status.PASS, sidecar, checks[0].title),
        Result(checks[1], Status.NOT_EVALUATED, web, "cannot judge", reason="Pods forbidden"),
        Result(checks[1], Status.NOT_EVALUATED, sidecar, "cannot judge", reason="Pods forbidden"),
        Result(checks[1], Status.NOT_EVALUATED, node_wide, "cannot judge", reason=None),
        Result(checks[2], Status.EXCEPTED, web, "accepted", reason="EXC-1"),
        Result(checks[2], Status.FAIL if day % 2 else Status.PASS, node_wide, "label missing"),
    ]
    started = T0 + timedelta(days=day)
    return ScanReport(
        framework=framework,
        results=results,
        sources=["cluster"],
        coverage=Coverage(),
        started_at=started,
        finished_at=started + timedelta(seconds=5),
    )


def record_mixed(store: Store, day: int) -> None:
    report = mixed_scan(day)
    present = [r.subject.with_container(None) for r in report.results]
    record_scan(store, report, cluster="prod", present=present, recorded_at=report.finished_at)


def test_recorded_summaries_equal_a_group_by_over_results(store: Store, database: Database) -> None:
    record(store, deployment(), deployment("api", privileged=False), day=0)
    record_mixed(store, 1)
    record_mixed(store, 2)
    record(store, deployment(privileged=False), day=3)
    assert_summaries_match_results(database.url)
    summarised = query(database.url, "SELECT sum(results) FROM scan_check_counts")[0][0]
    assert int(summarised) == query(database.url, "SELECT count(*) FROM results")[0][0]
    reasons = {row[3] for row in rows(database.url, CHECK_COUNTS_NOW) if row[2] == "not_evaluated"}
    assert {None, "Pods forbidden"} <= reasons
    assert rows(database.url, CHECK_COUNTS_NOW) and rows(database.url, SUBJECT_COUNTS_NOW)


def test_a_scan_without_results_has_no_summaries(store: Store, database: Database) -> None:
    record(store)
    assert query(database.url, "SELECT count(*) FROM scans") == [(1,)]
    assert query(database.url, "SELECT count(*) FROM scan_check_counts") == [(0,)]
    assert query(database.url, "SELECT count(*) FROM scan_subject_counts") == [(0,)]


def _downgrade_to(url: str, revision: str) -> None:
    from alembic import command

    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_an_existing_store_is_backfilled_on_upgrade_and_its_ledger_still_verifies(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    record(store, deployment(), day=0)
    record_mixed(store, 1)
    record_mixed(store, 2)
    written = (rows(database.url, CHECK_COUNTS_NOW), rows(database.url, SUBJECT_COUNTS_NOW))
    store.close()
    _downgrade_to(database.url, "0003")
    assert query(database.url, "SELECT version_num FROM alembic_version") == [("0003",)]

    open_store(database.url).close()
    assert query(database.url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert_summaries_match_results(database.url)
    backfilled = (rows(database.url, CHECK_COUNTS_NOW), rows(database.url, SUBJECT_COUNTS_NOW))
    assert backfilled == written
    assert main(["evidence", "verify", "--db", database.url]) == 0
    assert "3 entries" in capsys.readouterr().out


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE scan_check_counts SET results = results + 1",
        "DELETE FROM scan_check_counts WHERE status = 'fail'",
        "UPDATE scan_subject_counts SET fail = 0",
    ],
)
def test_an_edited_summary_fails_verification(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str], edit: str
) -> None:
    """Derived data, not hashed: verify re-derives it from the results, so an edited count
    cannot change a period report unnoticed."""
    record_mixed(store, 1)
    assert main(["evidence", "verify", "--db", database.url]) == 0
    capsys.readouterr()
    execute(database.url, edit)
    assert main(["evidence", "verify", "--db", database.url]) == 1
    assert "no longer match its results" in capsys.readouterr().err
