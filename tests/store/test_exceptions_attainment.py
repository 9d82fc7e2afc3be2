"""SLA attainment per period (`kubeproof findings --attainment`), on SQLite and PostgreSQL.
An excepted finding's SLA clock keeps running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from store_helpers import T0, deployment, scan_of

from databases import Database
from kubeproof.cli.main import main
from kubeproof.model import Severity
from kubeproof.risk_acceptance import Limits, apply_exceptions, exception_from_mapping
from kubeproof.store.attainment import attainment
from kubeproof.store.db import Store, open_store
from kubeproof.store.record import present_subjects, record_scan

# Only pss.privileged is critical in these manifests: the critical row counts deployments.
SLA = "critical=2"
DUE_DAY = (T0 + timedelta(days=2)).strftime("%Y-%m-%d")
ANNOTATION_FREE_LIMITS = Limits(T0.date(), 365)


def record(store: Store, *manifests: str, day: int, exceptions: Any = ()) -> None:
    report, inventory = scan_of(*manifests)
    report.started_at = T0 + timedelta(days=day)
    report.finished_at = report.started_at + timedelta(seconds=1)
    apply_exceptions(report.results, exceptions, now=report.started_at, inventory=inventory)
    record_scan(store, report, cluster="prod", present=present_subjects(inventory))


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    """storefront fails day 0, fixed day 1 (on time); checkout fails day 0, fixed day 4
    (late); api fails from day 0 on, excepted from day 4 (overdue all the same)."""
    api_exception = exception_from_mapping(
        {
            "id": "EXC-API",
            "checks": ["pss.privileged"],
            "subjects": ["Deployment/shop/api"],
            "owner": "o",
            "reason": "r",
            "expires": (T0 + timedelta(days=60)).date().isoformat(),
        },
        "test",
        source="file",
        limits=ANNOTATION_FREE_LIMITS,
    )
    opened = open_store(database.url)
    api = deployment("api", uid="c")
    record(opened, deployment(), deployment("checkout", uid="b"), api, day=0)
    record(opened, deployment(privileged=False), deployment("checkout", uid="b"), api, day=1)
    fixed = deployment("checkout", uid="b", privileged=False)
    record(opened, deployment(privileged=False), fixed, api, day=4, exceptions=[api_exception])
    yield opened
    opened.close()


def findings(capsys: pytest.CaptureFixture[str], database: Database, *extra: str) -> Any:
    code = main(["findings", "--db", database.url, "--attainment", "--sla", SLA, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_attainment_counts_on_time_late_and_overdue_per_severity(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    out = findings(capsys, database, "--from", DUE_DAY, "--to", DUE_DAY, "-o", "json")
    data = json.loads(out)
    [critical] = [s for s in data["severities"] if s["severity"] == "critical"]
    assert critical == {
        "severity": "critical",
        "slaDays": 2,
        "due": 3,
        "closedOnTime": 1,
        "closedLate": 1,
        "openOverdue": 1,
        "pending": 0,
        "excepted": 1,  # api: excepted, and still counted against the SLA
        "attainmentPercent": 33.3,
        "medianTimeToRemediateSeconds": int(timedelta(days=2, hours=12).total_seconds()),
    }
    assert data["period"]["from"].startswith(DUE_DAY)
    # Other severities' deadlines (30 days and more) fall outside this one-day period.
    assert data["total"]["due"] == 3

    table = findings(capsys, database, "--from", DUE_DAY, "--to", DUE_DAY)
    line = next(row for row in table.splitlines() if row.startswith("critical"))
    assert line.split() == ["critical", "2d", "3", "1", "1", "1", "0", "1", "33.3%", "2d", "12h"]
    assert "SLA clock keeps running" in table


def test_periods_select_findings_by_due_date(
    store: Store, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    later = (T0 + timedelta(days=3)).strftime("%Y-%m-%d")
    data = json.loads(findings(capsys, database, "--from", later, "--to", later, "-o", "json"))
    assert data["total"]["due"] == 0 and data["total"]["attainmentPercent"] is None

    with store.reading() as session:
        whole_year = attainment(
            session,
            start=T0 - timedelta(days=5),
            end=T0 + timedelta(days=365),
            now=T0 + timedelta(days=5),
            sla={Severity.CRITICAL: 2, Severity.MEDIUM: 90},
        )
    medium = next(a for a in whole_year.by_severity if a.severity is Severity.MEDIUM)
    # Due on day 90, "now" is day 5: still pending, not yet missed.
    assert medium.due > 0 and medium.pending == medium.due and medium.percent is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--attainment"], "--attainment needs --from"),
        (["--attainment", "--from", "2026-01-01", "--to", "yesterday"], "--to: 'yesterday'"),
        (["--attainment", "--from", "2026-02-01", "--to", "2026-01-01"], "is before --from"),
    ],
)
def test_bad_periods_are_refused(
    database: Database, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    code = main(["findings", "--db", database.url, *extra])
    assert code == 2 and expected in capsys.readouterr().err


def test_attainment_is_computed_relative_to_now(store: Store) -> None:
    """An open finding due after `now` is pending, not missed."""
    with store.reading() as session:
        figures = attainment(
            session,
            start=T0,
            end=T0 + timedelta(days=3),
            now=T0 + timedelta(days=1),
            sla={Severity.CRITICAL: 2},
        )
    assert (figures.total.on_time, figures.total.late, figures.total.pending) == (1, 1, 1)
    assert figures.total.overdue == 0 and figures.total.percent == 50.0
