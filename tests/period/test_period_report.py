"""`kubeproof report` over two weeks of real scans of the example application, on SQLite and
PostgreSQL: every format, its counts against the store's own populations, the day gaps,
the weekly chart, OSCAL validity, an empty period and hostile dates."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from period_databases import new_database
from period_helpers import MISSING_DAYS, PERIOD, PRIVILEGED, SCHEDULE, T0, build_history, report
from sqlalchemy import create_engine, text
from trestle.oscal.assessment_results import AssessmentResults

from databases import Database
from databases import query as sql
from kubeproof import frameworks
from kubeproof.cli.main import main
from kubeproof.store.db import open_store, parse_url

T_EXCEPTION = T0 + timedelta(days=1, hours=3)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    directory = tmp_path_factory.mktemp(f"period-{request.param}")
    database = new_database(request.param, request, directory)
    store = open_store(database.url)
    try:
        build_history(store, directory)
    finally:
        store.close()
    yield database


def web_privileged(data: dict[str, Any]) -> dict[str, Any]:
    """The one finding of pss.privileged on the web Deployment (listed under each of the
    check's criteria)."""
    found = {
        f["id"]: f
        for c in data["criteria"]
        for f in c["findings"]
        if f["check"] == PRIVILEGED and f["subject"].startswith("Deployment/shop/web")
    }
    [finding] = found.values()
    return finding


def json_report(database: Database, tmp_path: Path, *extra: str, **kw: Any) -> dict[str, Any]:
    output = tmp_path / "report.json"
    assert report(database, output, "json", *extra, **kw) == 0
    data: dict[str, Any] = json.loads(output.read_text())
    return data


def test_counts_equal_the_stores_populations(history: Database, tmp_path: Path) -> None:
    data = json_report(history, tmp_path)
    by_status = dict(sql(history.url, "SELECT status, count(*) FROM results GROUP BY status"))
    assert data["counts"] == {s: by_status.get(s, 0) for s in data["counts"]}
    assert sum(data["counts"].values()) == sql(history.url, "SELECT count(*) FROM results")[0][0]
    assert len(data["scans"]) == len(SCHEDULE)
    assert data["missingDays"] == MISSING_DAYS
    assert data["ledger"]["intact"] is True
    assert data["ledger"]["entries"] == len(SCHEDULE)

    # Per criterion: the results of its checks, counted by the database.
    per_check = Counter[tuple[str, str]]()
    for check_id, status, count in sql(
        history.url, "SELECT check_id, status, count(*) FROM results GROUP BY check_id, status"
    ):
        per_check[(check_id, status)] += count
    soc2 = frameworks.load("soc2")
    for criterion in data["criteria"]:
        [group] = [g for g in soc2.groups if g.id == criterion["id"]]
        members = {c.id for c in group.checks}
        expected = {
            status: sum(
                n for (check, s), n in per_check.items() if s == status and check in members
            )
            for status in criterion["counts"]
        }
        assert criterion["counts"] == expected, criterion["id"]
        if sum(expected.values()):
            assert criterion["missingDays"] == MISSING_DAYS
            assert criterion["evidenceDays"] == len(SCHEDULE)


def test_findings_as_they_stood_at_the_end_of_the_period(history: Database, tmp_path: Path) -> None:
    data = json_report(history, tmp_path)
    findings = [f for c in data["criteria"] for f in c["findings"]]
    privileged = web_privileged(data)
    # Failing on days 1-2, fixed on day 4, failing again from day 9: open at the end.
    assert privileged["state"] == "open" and privileged["reopened"] == 1
    assert privileged["due"] == "2026-01-21T09:00:00Z"  # critical: 15 days from first seen
    worker = [f for f in findings if "shop-data/worker" in f["subject"]]
    assert worker and {f["state"] for f in worker} == {"deleted"}
    assert {f["closedAt"] for f in worker} == {"2026-01-13T09:00:00Z"}

    # The first week alone: the same finding stood resolved after one open stretch.
    first_week = json_report(history, tmp_path, period=("2026-01-05", "2026-01-11"))
    early = web_privileged(first_week)
    assert early["state"] == "resolved"
    assert early["closedAt"] == "2026-01-09T09:00:00Z"
    assert early["remediationDays"] == 3.0

    # A tight SLA: resolved after its deadline, the SLA counts as missed.
    tight = json_report(
        history, tmp_path, "--sla", "critical=1", period=("2026-01-05", "2026-01-11")
    )
    late = web_privileged(tight)
    assert late["overdue"] is True


def test_workload_timeline_shows_each_day(history: Database, tmp_path: Path) -> None:
    data = json_report(history, tmp_path)
    timelines = {w["subject"]: w["segments"] for w in data["workloads"]}
    days = _days(timelines["Deployment/shop/web"])
    assert days[date(2026, 1, 5)] == "pass"
    assert days[date(2026, 1, 6)] == days[date(2026, 1, 7)] == "fail"
    assert days[date(2026, 1, 8)] == "absent"  # no scan that day
    assert days[date(2026, 1, 9)] == "pass"
    assert days[date(2026, 1, 14)] == "fail"
    worker = _days(timelines["Deployment/shop-data/worker"])
    assert worker[date(2026, 1, 12)] != "absent"
    assert {worker[date(2026, 1, 5) + timedelta(days=n)] for n in range(8, 14)} == {"absent"}


def _days(segments: list[dict[str, str]]) -> dict[date, str]:
    days: dict[date, str] = {}
    for segment in segments:
        day = date.fromisoformat(segment["from"])
        while day <= date.fromisoformat(segment["to"]):
            days[day] = segment["state"]
            day += timedelta(days=1)
    return days


@pytest.mark.parametrize("container", ["zip", "directory"])
def test_csv_holds_every_result_finding_and_scan(
    history: Database, tmp_path: Path, container: str
) -> None:
    output = tmp_path / ("export.zip" if container == "zip" else "export")
    assert report(history, output, "csv") == 0
    tables = _csv_tables(output)
    results = tables["results.csv"]
    assert len(results) == sql(history.url, "SELECT count(*) FROM results")[0][0]
    statuses = Counter(row["status"] for row in results)
    assert statuses == Counter(
        dict(sql(history.url, "SELECT status, count(*) FROM results GROUP BY status"))
    )
    assert [int(r["scan_id"]) for r in tables["scan_runs.csv"]] == [
        row[0] for row in sql(history.url, "SELECT id FROM scans ORDER BY started_at")
    ]
    data = json_report(history, tmp_path)
    assert len(tables["findings.csv"]) == len(
        {f["id"] for c in data["criteria"] for f in c["findings"]}
    )
    assert {r["criterion"] for r in tables["criteria.csv"]} == {c["id"] for c in data["criteria"]}


def _csv_tables(output: Path) -> dict[str, list[dict[str, str]]]:
    if output.suffix == ".zip":
        with zipfile.ZipFile(output) as archive:
            return {
                name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
                for name in archive.namelist()
            }
    return {
        path.name: list(csv.DictReader(path.open(newline="")))
        for path in sorted(output.glob("*.csv"))
    }


def test_html_has_the_weekly_chart_and_the_day_gaps(history: Database, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    assert report(history, output, "html") == 0
    page = output.read_text()
    assert page.count('class="chart weekly"') == 1 + len(frameworks.load("soc2").groups)
    assert "week of 2026-01-05" in page and "week of 2026-01-12" in page
    missing = re.findall(r'class="day missing"[^>]*><title>([0-9-]+): NO SCAN', page)
    assert missing == MISSING_DAYS
    assert "2026-01-10 to 2026-01-11" in page  # consecutive missing days, folded
    assert "Ledger intact: 8 entries verified" in page
    assert "Deployment/shop/web" in page and 'class="timeline"' in page
    # Self-contained: no scripts, no external assets.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page


def test_pdf_is_printed_from_the_same_page(history: Database, tmp_path: Path) -> None:
    output = tmp_path / "report.pdf"
    assert report(history, output, "pdf") == 0
    assert output.read_bytes().startswith(b"%PDF-")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) missing: the PDF's text is not checked")
    words = subprocess.run(
        ["pdftotext", "-layout", str(output), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "SOC 2 evidence, 2026-01-05 to 2026-01-18" in words
    assert "Evidence appendix" in words and "Workloads: compliance timeline" in words
    assert "2026-01-10 to 2026-01-11" in words


def test_oscal_assessment_results_validate(history: Database, tmp_path: Path) -> None:
    output = tmp_path / "results.oscal.json"
    assert report(history, output, "oscal") == 0
    document = json.loads(output.read_text())
    model = AssessmentResults.model_validate(document["assessment-results"])
    [result] = model.results
    assert document["assessment-results"]["metadata"]["oscal-version"].startswith("1.1.")
    soc2 = frameworks.load("soc2")
    targets = {f.target.target_id: f.target.status.state for f in result.findings or []}
    assert set(targets) == {g.id.lower() for g in soc2.groups}
    assert targets["cc6.1"].value == "not-satisfied"  # findings open in the period
    observed = {o.title for o in result.observations or []}
    checks_with_results = {
        row[0] for row in sql(history.url, "SELECT DISTINCT check_id FROM results")
    }
    assert observed == {c for c in checks_with_results if any(c == k.id for k in soc2.checks)}
    items = {i.uuid for i in result.local_definitions.inventory_items}  # type: ignore[union-attr]
    subjects = [s for o in result.observations or [] for s in o.subjects or []]
    assert subjects and all(s.subject_uuid in items for s in subjects)
    raw = document["assessment-results"]["results"][0]
    privileged = [
        r for r in raw["risks"] if r["title"].startswith(f"{PRIVILEGED} on Deployment/shop/web")
    ]
    assert [r["deadline"] for r in privileged] == ["2026-01-21T09:00:00Z"]
    assert privileged[0]["status"] == "open"
    # Rendering twice gives the same identifiers.
    again = tmp_path / "again.json"
    assert report(history, again, "oscal") == 0
    second = json.loads(again.read_text())["assessment-results"]
    assert second["uuid"] == document["assessment-results"]["uuid"]
    assert [r["uuid"] for r in second["results"][0]["risks"]] == [r["uuid"] for r in raw["risks"]]


def test_empty_period_says_so_in_every_format(history: Database, tmp_path: Path) -> None:
    empty = ("2025-03-01", "2025-03-31")
    data = json_report(history, tmp_path, period=empty)
    assert data["empty"] is True and data["scans"] == [] and sum(data["counts"].values()) == 0
    html = tmp_path / "empty.html"
    assert report(history, html, "html", period=empty) == 0
    assert "No evidence in this period" in html.read_text()
    oscal = tmp_path / "empty.oscal.json"
    assert report(history, oscal, "oscal", period=empty) == 0
    document = json.loads(oscal.read_text())
    AssessmentResults.model_validate(document["assessment-results"])
    states = {
        f["target"]["status"]["state"]
        for f in document["assessment-results"]["results"][0]["findings"]
    }
    assert states == {"not-satisfied"}
    export = tmp_path / "empty.zip"
    assert report(history, export, "csv", period=empty) == 0
    assert _csv_tables(export)["results.csv"] == []
    other = json_report(history, tmp_path, "--cluster", "staging")
    assert other["empty"] is True


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2026-01-18", "2026-01-05", "is before --from"),
        ("2026-13-01", "2026-01-05", "--from '2026-13-01' is not a date"),
        ("2026-01-05", "yesterday", "--to 'yesterday' is not a date"),
        ("", "2026-01-05", "--from '' is not a date"),
        ("2026-01-05T00:00", "2026-01-06", "is not a date"),
        ("2026-02-30", "2026-03-01", "is not a date"),
    ],
)
def test_hostile_dates_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: str, last: str, message: str
) -> None:
    output = tmp_path / "r.html"
    arguments = ["report", "--from", first, "--to", last, "--output", str(output)]
    assert main([*arguments, "--db", str(tmp_path / "none.db")]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not output.exists()


def test_other_usage_errors_exit_2(
    history: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_db = ["--db", str(tmp_path / "absent.db")]
    base = ["report", "--from", PERIOD[0], "--to", PERIOD[1]]
    assert main([*base, "--output", str(tmp_path / "r.html"), *missing_db]) == 2
    assert "no evidence store" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()
    assert main([*base, "--output", str(tmp_path / "no" / "r.html"), "--db", history.url]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert report(history, tmp_path / "r.html", "html", "--framework", "nope") == 2
    assert "unknown framework" in capsys.readouterr().err
    assert report(history, tmp_path / "r.html", "html", "--sla", "critical=soon") == 2
    assert "--sla" in capsys.readouterr().err


def test_an_altered_store_shows_in_the_report(tmp_path: Path) -> None:
    database = Database("sqlite", f"sqlite:///{tmp_path / 'evidence.db'}")
    store = open_store(database.url)
    try:
        build_history(store, tmp_path)
    finally:
        store.close()
    engine = create_engine(parse_url(database.url))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE results SET status = 'pass' WHERE status = 'fail' AND scan_id = 3")
        )
    engine.dispose()
    data = json_report(database, tmp_path)
    assert data["ledger"]["intact"] is False
    assert "scan #3" in data["ledger"]["problem"]
    html = tmp_path / "altered.html"
    assert report(database, html, "html") == 0
    assert "Evidence altered" in html.read_text()
    skipped = json_report(database, tmp_path, "--no-verify")
    assert skipped["ledger"] is None


def test_exceptions_in_force_appear_with_owner_reason_and_expiry(tmp_path: Path) -> None:
    from kubeproof.store.exceptions import NewException, add_exception

    database = Database("sqlite", f"sqlite:///{tmp_path / 'evidence.db'}")
    store = open_store(database.url)
    try:
        build_history(store, tmp_path)
        accepted = NewException(
            checks=[PRIVILEGED],
            owner="platform-team",
            reason="the log shipper needs the host's journal until it moves to the API",
            expires=date(2026, 2, 28),
            subjects=["Deployment/shop/web"],
            namespaces=[],
        )
        add_exception(store, accepted, now=T_EXCEPTION, max_days=365)
        before = NewException(  # expired before the period: not in force
            checks=["pss.*"],
            owner="someone",
            reason="old",
            expires=date(2025, 12, 31),
            subjects=[],
            namespaces=["shop"],
        )
        add_exception(store, before, now=T_EXCEPTION - timedelta(days=60), max_days=365)
    finally:
        store.close()
    data = json_report(database, tmp_path)
    assert data["exceptionsAvailable"] is True and data["ledger"]["intact"] is True
    cc61 = next(c for c in data["criteria"] if c["id"] == "CC6.1")
    [exception] = cc61["exceptions"]
    assert exception["owner"] == "platform-team" and exception["checks"] == [PRIVILEGED]
    assert exception["scope"] == "Deployment/shop/web"
    assert exception["expires"] == "2026-02-28T00:00:00Z"  # expired from the start of that day
    cc72 = next(c for c in data["criteria"] if c["id"] == "CC7.2")
    assert cc72["exceptions"] == []  # none of its checks is covered

    html = tmp_path / "exceptions.html"
    assert report(database, html, "html") == 0
    assert "the log shipper needs the host&#x27;s journal" in html.read_text()

    oscal = tmp_path / "exceptions.oscal.json"
    assert report(database, oscal, "oscal") == 0
    document = json.loads(oscal.read_text())
    AssessmentResults.model_validate(document["assessment-results"])
    risks = document["assessment-results"]["results"][0]["risks"]
    [risk] = [r for r in risks if r["title"] == f"{PRIVILEGED} on Deployment/shop/web"]
    assert risk["status"] == "risk-accepted"
    [entry] = risk["risk-log"]["entries"]
    assert entry["status-change"] == "risk-accepted" and "platform-team" in entry["description"]
    assert entry["end"] == "2026-02-28T00:00:00Z"
    others = [r for r in risks if "shop-data/worker" in r["title"]]
    assert others and {r["status"] for r in others} == {"closed"}
