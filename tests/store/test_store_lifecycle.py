"""Findings over time: pod churn, resolution, reopening, deletion, incomplete coverage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import T0, deployment, record, replica_set_and_pod, scan_of

from databases import Database
from kubeproof.cli.main import main
from kubeproof.inventory import Coverage
from kubeproof.model import Result, Status, Subject
from kubeproof.store.db import Store, open_store
from kubeproof.store.record import record_scan
from kubeproof.store.schema import FindingRow, SubjectRow

PRIVILEGED = "pss.privileged"
CONTAINER_CHECK = "workload.liveness-probe"  # judged per container; fails: no probe


@pytest.fixture
def store(database: Database) -> Iterator[Store]:
    opened = open_store(database.url)
    yield opened
    opened.close()


def findings(store: Store, check: str | None = None) -> list[FindingRow]:
    with store.reading() as session:
        rows = session.query(FindingRow).order_by(FindingRow.id).all()
        session.expunge_all()
    return [row for row in rows if check is None or row.check_id == check]


def subject(store: Store, kind: str, name: str) -> SubjectRow:
    with store.reading() as session:
        row = session.query(SubjectRow).filter_by(kind=kind, name=name).one()
        session.expunge_all()
    return row


def test_pod_churn_keeps_one_finding(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two scans of the same Deployment, as a cluster shows it: a rollout in between gave
    # it a new ReplicaSet and new pods. The workload's identity is the Deployment.
    for number, suffix in enumerate(["6d4cf56db6", "7f9b8c5d44"], start=1):
        directory = tmp_path / f"scan{number}"
        directory.mkdir()
        (directory / "objects.yaml").write_text(
            deployment() + "---\n" + replica_set_and_pod("storefront", suffix)
        )
        assert main(["scan", str(directory), "--fail-on", "none", "--db", database.url]) == 0
    capsys.readouterr()
    assert main(["findings", "--db", database.url, "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["findings"]
    privileged = [f for f in listed if f["check"] == PRIVILEGED]
    assert len(privileged) == 1
    [finding] = privileged
    assert finding["subject"] == {
        "kind": "Deployment",
        "namespace": "shop",
        "name": "storefront",
        "container": None,  # pss.privileged judges the pod spec, not one container
    }
    assert (finding["state"], finding["firstScan"], finding["lastScan"]) == ("open", 1, 2)
    probes = [f for f in listed if f["check"] == CONTAINER_CHECK]
    assert [f["subject"]["container"] for f in probes] == ["web"]
    assert not [f for f in listed if f["subject"]["kind"] in ("ReplicaSet", "Pod")]


def test_resolve_then_reopen(store: Store) -> None:
    record(store, deployment(privileged=True), day=0)
    second = record(store, deployment(privileged=False), day=1)
    [finding] = findings(store, PRIVILEGED)
    assert finding.state == "resolved"
    assert finding.closed_scan_id == second.scan_id
    assert finding.closed_at is not None and finding.closed_at.replace(tzinfo=None) == (
        T0 + timedelta(days=1)
    ).replace(tzinfo=None)
    third = record(store, deployment(privileged=True), day=2)
    [finding] = findings(store, PRIVILEGED)
    assert (finding.state, finding.reopened, finding.closed_at) == ("open", 1, None)
    assert finding.first_scan_id == 1 and finding.last_scan_id == third.scan_id
    assert third.reopened >= 1


def test_deleted_workload_closes_as_deleted_not_resolved(store: Store) -> None:
    record(store, deployment("storefront", uid="a"), deployment("checkout", uid="b"), day=0)
    later = record(store, deployment("checkout", uid="b"), day=3)
    gone = [f for f in findings(store) if f.name == "storefront"]
    assert gone and all(f.state == "deleted" for f in gone)
    assert all(f.closed_scan_id == later.scan_id for f in gone)
    assert later.deleted == len(gone)
    kept = [f for f in findings(store) if f.name == "checkout"]
    assert kept and all(f.state == "open" for f in kept)
    storefront = subject(store, "Deployment", "storefront")
    assert storefront.deleted_scan_id == later.scan_id and storefront.deleted_at is not None
    assert subject(store, "Deployment", "checkout").deleted_at is None


def test_absent_because_not_read_changes_nothing(store: Store) -> None:
    record(store, deployment("storefront", uid="a"), deployment("checkout", uid="b"), day=0)
    before = {f.id: (f.state, f.closed_at) for f in findings(store)}
    coverage = Coverage()
    coverage.record("Deployment", "forbidden", "deployments.apps is forbidden")
    record(store, deployment("checkout", uid="b"), day=1, coverage=coverage)
    after = {f.id: (f.state, f.closed_at) for f in findings(store)}
    assert after == before
    assert subject(store, "Deployment", "storefront").deleted_at is None


def test_not_evaluated_never_resolves(store: Store) -> None:
    # One replica and no HorizontalPodAutoscaler: availability.single-replica fails.
    record(store, deployment(replicas=1, privileged=False), day=0)
    [finding] = findings(store, "availability.single-replica")
    assert finding.state == "open"
    # HPAs could not be read: the check cannot judge, and the finding must stay open.
    coverage = Coverage()
    coverage.record("HorizontalPodAutoscaler", "forbidden", "403")
    record(store, deployment(replicas=1, privileged=False), day=1, coverage=coverage)
    [finding] = findings(store, "availability.single-replica")
    assert (finding.state, finding.last_status, finding.last_scan_id) == (
        "open",
        "not_evaluated",
        1,
    )


def test_scans_of_other_clusters_and_frameworks_leave_findings_alone(store: Store) -> None:
    record(store, deployment(replicas=1), day=0)
    open_before = {f.id for f in findings(store) if f.state == "open"}
    record(store, deployment("other", uid="z", privileged=False), cluster="staging", day=1)
    # pss-baseline does not run availability.single-replica: its finding is untouched.
    record(store, deployment(replicas=1, privileged=False), day=2, framework="pss-baseline")
    prod = [f for f in findings(store) if f.cluster == "prod"]
    assert {f.id for f in prod if f.state == "open"} == open_before - {
        f.id for f in prod if f.check_id == PRIVILEGED
    }
    [privileged] = [f for f in prod if f.check_id == PRIVILEGED]
    assert privileged.state == "resolved"


def test_removed_container_resolves_its_findings(store: Store) -> None:
    record(store, deployment(containers=("web", "sidecar")), day=0)
    assert {f.container for f in findings(store, CONTAINER_CHECK)} == {"web", "sidecar"}
    record(store, deployment(containers=("web",)), day=1)
    states = {f.container: f.state for f in findings(store, CONTAINER_CHECK)}
    assert states == {"web": "open", "sidecar": "resolved"}


def test_cluster_wide_findings_are_tracked_and_never_deleted(store: Store) -> None:
    report, _ = scan_of(deployment())
    spec = report.results[0].check
    cluster = Subject("", "Cluster", None, "prod")
    report.results = [
        Result(spec, Status.FAIL, cluster, "the API server allows anonymous requests")
    ]
    report.started_at = T0
    record_scan(store, report, cluster="prod")
    record(store, deployment(), day=1)  # complete coverage, no result for the cluster
    [finding] = [f for f in findings(store) if f.kind == "Cluster"]
    assert (finding.state, finding.name, finding.check_id) == ("open", "prod", spec.id)
    assert subject(store, "Cluster", "prod").deleted_at is None
