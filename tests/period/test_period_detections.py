"""The period report's anomaly-detection evidence (CC7.2): audit detections and Falco
alerts from the store by detector, severity and subject, and monitoring coverage from the
agent's and the audit receivers' heartbeats, in every format, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import period_helpers
import pytest
from trestle.oscal.assessment_results import AssessmentResults

from databases import Database
from kubeproof.audit.evidence import detection_row
from kubeproof.cli.main import main
from kubeproof.store.db import open_store
from kubeproof.store.detections import write_detections
from kubeproof.store.monitoring import write_monitoring

T0 = datetime(2026, 2, 2, 0, 0, tzinfo=UTC)  # a Monday
PERIOD = ("2026-02-02", "2026-02-08")
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def printed(
    check: str, severity: str, subject: dict[str, Any], key: str, at: datetime
) -> dict[str, Any]:
    falco = check.startswith("falco.")
    stamp = at.isoformat().replace("+00:00", "Z")
    evidence = (
        {"source": "falco", "time": stamp, "pod": "shop/db-0"}
        if falco
        else {"auditIDs": [key], "firstTime": stamp, "count": 1}
    )
    return {
        "check": check,
        "severity": severity,
        "criteria": {"CC7.2": "...", "CC6.1": "..."},
        "subject": subject,
        "message": f"{check} on {subject['name']}",
        "fingerprint": key.ljust(32, "0")[:32],
        "evidence": evidence,
        "key": key,
    }


ALICE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "User", "name": "alice"}
MALLORY = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "User", "name": "mallory"}
DB = {"apiVersion": "apps/v1", "kind": "StatefulSet", "namespace": "shop", "name": "db",
      "container": "pg"}  # fmt: skip


def heartbeat(at: datetime, interval_s: int, run_id: str, state: str = "alive") -> dict[str, Any]:
    return {
        "cluster": "prod",
        "run_id": run_id,
        "at": at,
        "state": state,
        "interval_s": interval_s,
        "counters": {"events": 1},
    }


@pytest.fixture
def monitored(database: Database) -> Iterator[Database]:
    """A week of prod: four detections, an audit receiver beating hourly except from
    Wednesday night to Friday morning, the agent only on Monday morning; one detection in
    staging and one the week after."""
    store = open_store(database.url)
    detections = [
        ("prod", printed("audit.pod-exec", "high", ALICE, "e1", T0 + 9 * HOUR)),
        ("prod", printed("audit.pod-exec", "high", ALICE, "e2", T0 + 10 * HOUR)),
        ("prod", printed("falco.terminal-shell-in-container", "medium", DB, "falco:f1",
                         T0 + 11 * HOUR)),
        ("prod", printed("audit.cluster-admin-binding", "critical", MALLORY, "c1",
                         T0 + 2 * DAY)),
        ("staging", printed("audit.pod-exec", "high", ALICE, "s1", T0 + DAY)),
        ("prod", printed("audit.pod-exec", "high", ALICE, "late", T0 + 8 * DAY)),
    ]  # fmt: skip
    beats = [heartbeat(T0 + n * HOUR, 3600, "receiver-1") for n in range(72)]
    beats += [heartbeat(T0 + 4 * DAY + 10 * HOUR + n * HOUR, 3600, "receiver-2") for n in range(62)]
    now = datetime.now(UTC)
    with store.writing() as session:
        rows = [
            detection_row(p, cluster=cluster, run_id="r", received_at=now)
            for cluster, p in detections
        ]
        write_detections(session, rows[:3], beats[:72], now)
    with store.writing() as session:
        write_detections(session, rows[3:], beats[72:], now)
    with store.writing() as session:
        agent = [
            heartbeat(T0 + 9 * HOUR + n * timedelta(seconds=60), 60, "agent") for n in range(3)
        ]
        write_monitoring(session, [], agent, now)
    store.close()
    yield database


report = partial(period_helpers.report, period=PERIOD)


def test_json_counts_detections_subjects_and_monitoring_coverage(
    monitored: Database, tmp_path: Path
) -> None:
    output = tmp_path / "report.json"
    assert report(monitored, output, "json", "--cluster", "prod") == 0
    document = json.loads(output.read_text())
    assert document["ledger"]["intact"] is True
    found = document["detections"]
    assert found["detections"] == 4  # not staging's, not the week after's
    assert {s: n for s, n in found["bySeverity"].items() if n} == {
        "critical": 1,
        "high": 2,
        "medium": 1,
    }
    assert found["bySource"] == {"audit": 3, "falco": 1}
    assert found["ledgerEntries"] == 2
    assert [(d["detector"], d["severity"], d["detections"]) for d in found["byDetector"]] == [
        ("audit.cluster-admin-binding", "critical", 1),
        ("audit.pod-exec", "high", 2),
        ("falco.terminal-shell-in-container", "medium", 1),
    ]
    assert [(s["subject"], s["detections"], s["worstSeverity"]) for s in found["subjects"]] == [
        ("User/mallory", 1, "critical"),
        ("User/alice", 2, "high"),
        ("StatefulSet/shop/db", 1, "medium"),
    ]
    coverage = {c["component"]: c for c in found["coverage"]}
    receiver, agent = coverage["audit"], coverage["agent"]
    assert (receiver["daysWithHeartbeats"], receiver["heartbeats"], receiver["runs"]) == (6, 134, 2)
    assert receiver["gaps"] == [
        {"from": "2026-02-04T23:00:00Z", "to": "2026-02-06T10:00:00Z", "hours": 35.0}
    ]
    assert agent["daysWithHeartbeats"] == 1
    # Silent from the period's start until it began, and after its last heartbeat.
    assert [g["from"] for g in agent["gaps"]] == ["2026-02-02T00:00:00Z", "2026-02-02T09:02:00Z"]
    assert found["daysWithoutMonitoring"] == ["2026-02-05"]
    every_cluster = tmp_path / "all.json"
    assert report(monitored, every_cluster, "json") == 0
    assert json.loads(every_cluster.read_text())["detections"]["detections"] == 5


def test_html_shows_detections_and_coverage_and_an_empty_period_says_so(
    monitored: Database, tmp_path: Path
) -> None:
    output = tmp_path / "report.html"
    assert report(monitored, output, "html", "--cluster", "prod") == 0
    page = output.read_text()
    section = page[page.index('id="detections"') :]
    assert "Anomaly detection (CC7.2" in section
    assert "4 detections (3 from audit, 1 from falco)" in section
    assert section.index("User/mallory") < section.index("User/alice")
    assert "1 of 7 days without any heartbeat: 2026-02-05" in section
    assert "<td class='num'>6 of 7</td>" in section  # the receiver's days
    empty = tmp_path / "empty.html"
    arguments = ["report", "--from", "2025-02-02", "--to", "2025-02-08", "--output", str(empty)]
    assert main([*arguments, "--db", monitored.url]) == 0
    text = empty.read_text()
    assert "No audit detection or Falco alert was recorded in this period" in text
    assert "No monitor sent a heartbeat either" in text
    assert "7 of 7 days without any heartbeat" in text


def test_csv_holds_every_detection_of_the_period(monitored: Database, tmp_path: Path) -> None:
    output = tmp_path / "export.zip"
    assert report(monitored, output, "csv", "--cluster", "prod") == 0
    with zipfile.ZipFile(output) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("detections.csv").decode())))
    assert [row["evidence_key"] for row in rows] == ["e1", "e2", "falco:f1", "c1"]
    first = rows[0]
    assert (first["detector"], first["severity"], first["subject"]) == (
        "audit.pod-exec",
        "high",
        "User/alice",
    )
    assert first["criteria"] == "CC6.1; CC7.2" and first["observed_at"] == "2026-02-02T09:00:00Z"
    assert json.loads(first["evidence"])["auditIDs"] == ["e1"]
    assert rows[2]["container"] == "pg" and rows[2]["source"] == "falco"
    assert {row["ledger_seq"] for row in rows} == {"1", "2"}


def test_oscal_has_cc7_2_observations(monitored: Database, tmp_path: Path) -> None:
    output = tmp_path / "results.oscal.json"
    assert report(monitored, output, "oscal", "--cluster", "prod") == 0
    document = json.loads(output.read_text())
    AssessmentResults.model_validate(document["assessment-results"])
    [result] = document["assessment-results"]["results"]
    [summary] = [o for o in result["observations"] if o["title"] == "anomaly-detection"]
    props = {p["name"]: p["value"] for p in summary["props"]}
    assert (props["detections"], props["detections-critical"]) == ("4", "1")
    assert (props["audit-heartbeat-days"], props["days-without-monitoring"]) == ("6", "1")
    per_detector = [o for o in result["observations"] if o["title"].startswith(("audit.", "falco"))]
    assert len(per_detector) == 3
    [cc72] = [f for f in result["findings"] if f["target"]["target-id"] == "cc7.2"]
    related = {r["observation-uuid"] for r in cc72["related-observations"]}
    assert {summary["uuid"], *(o["uuid"] for o in per_detector)} <= related
