"""How a recorded scan moves findings: open, keep open, resolve, reopen, or close as deleted.

A finding is a failing (check, subject) in a cluster, keyed by the result fingerprint
(check, kind, namespace, top-owner name, container): pods that churn fold into their top
owner, so a new ReplicaSet does not make a new finding.

For each open finding, a later scan of the same cluster that ran its check:

* fails it again: it stays open (last_seen moves on);
* passes it, or judged its subject without producing a result for it (the container is
  gone, the check no longer applies): resolved;
* did not see its subject at all, and read that subject's kind completely with no input
  errors: the subject was deleted; the subject is marked deleted and its findings close
  as `deleted`, not `resolved`;
* did not see its subject because the kind was not fully read: no change;
* says not_evaluated or excepted: no change. What could not be judged never resolves.

A closed finding that fails again reopens, and its `reopened` count goes up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from kubeproof.inventory import Coverage
from kubeproof.model import Status
from kubeproof.store.schema import FindingEventRow, FindingRow, ScanRow, SubjectRow, table_of

OPEN, RESOLVED, DELETED = "open", "resolved", "deleted"
OPENED, REOPENED = "opened", "reopened"

SubjectKey = tuple[str, str, str]  # kind, namespace ("" when none), name

# Bulk updates by primary key; the session holds none of these rows as objects.
_NO_SYNC = {"synchronize_session": False}
# Finding rows per statement: a large scan's thousands are never all held at once.
_CHUNK = 5000
# Subjects that stand for the whole cluster: never "deleted".
_CLUSTER_KINDS = frozenset({"Cluster"})
# The order in which a subject's several results for one check decide its status.
_PRECEDENCE = (Status.FAIL, Status.NOT_EVALUATED, Status.EXCEPTED, Status.PASS)


@dataclass(frozen=True)
class SubjectIdentity:
    """Who a subject is in Kubernetes: its metadata.uid and labels (either may be absent)."""

    uid: str | None
    labels: dict[str, str] | None


@dataclass
class Changes:
    opened: int = 0
    reopened: int = 0
    resolved: int = 0
    deleted_findings: int = 0
    deleted_subjects: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)  # one per result of a scan
class Observation:
    """What one scan says about one fingerprint."""

    status: Status
    result: Mapping[str, Any]  # the deciding result's row values


def observe(results: Iterable[Mapping[str, Any]]) -> dict[str, Observation]:
    """Per fingerprint, the status that counts: fail beats not_evaluated beats excepted
    beats pass (a check yields one result per subject; this stays right if it ever yields
    more)."""
    observed: dict[str, Observation] = {}
    for row in results:
        status = Status(row["status"])
        known = observed.get(row["fingerprint"])
        if known is None or _PRECEDENCE.index(status) < _PRECEDENCE.index(known.status):
            observed[row["fingerprint"]] = Observation(status, row)
    return observed


def subject_key(row: Mapping[str, Any]) -> SubjectKey:
    return (row["kind"], row["namespace"], row["name"])


def kind_fully_read(coverage: Coverage, kind: str) -> bool:
    return coverage.gap([kind]) is None


def apply_scan(
    session: Session,
    scan: ScanRow,
    results: Sequence[Mapping[str, Any]],
    coverage: Coverage,
    checks_run: frozenset[str],
    present: Iterable[SubjectKey] = (),
    identities: Mapping[SubjectKey, SubjectIdentity] | None = None,
) -> Changes:
    """Update subjects and findings of the scan's cluster for one recorded scan."""
    changes = Changes()
    observed = observe(results)
    judged = {subject_key(row) for row in results}
    seen = judged | set(present)
    subject_ids = _update_subjects(session, scan, judged, seen)
    _record_identities(session, subject_ids, identities or {})
    deleted = _mark_deleted(session, scan, coverage, seen, changes)

    # Plain rows, not ORM objects: a cluster can have many thousands of findings.
    findings = {
        f.fingerprint: f
        for f in session.execute(
            select(
                FindingRow.id,
                FindingRow.fingerprint,
                FindingRow.state,
                FindingRow.check_id,
                FindingRow.kind,
                FindingRow.namespace,
                FindingRow.name,
                FindingRow.reopened,
            ).where(FindingRow.cluster == scan.cluster)
        )
    }
    new_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []

    def write(final: bool = False) -> None:
        """Write the rows gathered so far once there are a chunk's worth (or the last)."""
        if updates and (final or len(updates) >= _CHUNK):
            session.execute(update(FindingRow), updates, execution_options=_NO_SYNC)
            updates.clear()
        if new_rows and (final or len(new_rows) >= _CHUNK):
            session.execute(insert(table_of(FindingRow)), new_rows)
            changes.opened += len(new_rows)
            new_rows.clear()

    for fingerprint, observation in observed.items():
        write()
        finding = findings.get(fingerprint)
        if observation.status is Status.FAIL:
            if finding is None:
                new_rows.append(_new_finding(scan, observation.result, subject_ids))
                continue
            update_values = _still_failing(scan, finding.id, observation.result)
            if finding.state != OPEN:
                update_values.update(state=OPEN, closed_at=None, closed_scan_id=None)
                update_values["reopened"] = finding.reopened + 1
                changes.reopened += 1
                changes.events.append(_event(finding.id, scan, REOPENED))
            updates.append(update_values)
        elif finding is not None and finding.state == OPEN:
            if observation.status is Status.PASS:
                updates.append(_closed(finding.id, scan, RESOLVED, observation.status))
                changes.resolved += 1
                changes.events.append(_event(finding.id, scan, RESOLVED))
            else:  # not_evaluated, excepted: remembered, never a resolution
                updates.append({"id": finding.id, "last_status": observation.status.value})

    for finding in findings.values():
        write()
        if finding.state != OPEN or finding.fingerprint in observed:
            continue
        key = (finding.kind, finding.namespace, finding.name)
        if key in deleted:
            updates.append(_closed(finding.id, scan, DELETED, None))
            changes.deleted_findings += 1
            changes.events.append(_event(finding.id, scan, DELETED))
        elif finding.check_id in checks_run and key in seen:
            # The subject was judged by this check's scan but yielded no result for this
            # fingerprint: the container is gone or the check no longer applies.
            updates.append(_closed(finding.id, scan, RESOLVED, None))
            changes.resolved += 1
            changes.events.append(_event(finding.id, scan, RESOLVED))

    write(final=True)
    if changes.opened:
        opened = session.execute(
            select(FindingRow.id).where(
                FindingRow.cluster == scan.cluster, FindingRow.first_scan_id == scan.id
            )
        ).scalars()
        changes.events.extend(_event(finding_id, scan, OPENED) for finding_id in opened)
    if changes.events:
        session.execute(insert(table_of(FindingEventRow)), changes.events)
    return changes


def _new_finding(
    scan: ScanRow, row: Mapping[str, Any], subject_ids: Mapping[SubjectKey, int]
) -> dict[str, Any]:
    return {
        "cluster": scan.cluster,
        "fingerprint": row["fingerprint"],
        "subject_id": subject_ids[subject_key(row)],
        "check_id": row["check_id"],
        "severity": row["severity"],
        "kind": row["kind"],
        "namespace": row["namespace"],
        "name": row["name"],
        "container": row["container"],
        "state": OPEN,
        "first_seen": scan.started_at,
        "first_scan_id": scan.id,
        "last_seen": scan.started_at,
        "last_scan_id": scan.id,
        "last_status": Status.FAIL.value,
        "message": row["message"],
        "closed_at": None,
        "closed_scan_id": None,
        "reopened": 0,
    }


def _still_failing(scan: ScanRow, finding_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": finding_id,
        "last_seen": scan.started_at,
        "last_scan_id": scan.id,
        "last_status": Status.FAIL.value,
        "message": row["message"],
        "severity": row["severity"],  # the catalogue may have re-rated the check
    }


def _closed(finding_id: int, scan: ScanRow, state: str, status: Status | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": finding_id,
        "state": state,
        "closed_at": scan.started_at,
        "closed_scan_id": scan.id,
    }
    if status is not None:
        values["last_status"] = status.value
    return values


def _event(finding_id: int, scan: ScanRow, event: str) -> dict[str, Any]:
    return {"finding_id": finding_id, "scan_id": scan.id, "at": scan.started_at, "event": event}


def _update_subjects(
    session: Session, scan: ScanRow, judged: set[SubjectKey], seen: set[SubjectKey]
) -> dict[SubjectKey, int]:
    """Subjects with results are tracked; every subject the scan saw is refreshed (and
    undeleted, if it came back). Returns the ids of the tracked subjects."""
    known = {
        (row.kind, row.namespace, row.name): row
        for row in session.execute(
            select(SubjectRow.id, SubjectRow.kind, SubjectRow.namespace, SubjectRow.name).where(
                SubjectRow.cluster == scan.cluster
            )
        )
    }
    at = scan.started_at
    refreshed = [
        {
            "id": row.id,
            "last_seen": at,
            "last_scan_id": scan.id,
            "deleted_at": None,
            "deleted_scan_id": None,
        }
        for key, row in known.items()
        if key in seen
    ]
    if refreshed:
        session.execute(update(SubjectRow), refreshed, execution_options=_NO_SYNC)
    new = [
        {
            "cluster": scan.cluster,
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "first_seen": at,
            "first_scan_id": scan.id,
            "last_seen": at,
            "last_scan_id": scan.id,
            "deleted_at": None,
            "deleted_scan_id": None,
        }
        for (kind, namespace, name) in sorted(judged - known.keys())
    ]
    if new:
        session.execute(insert(table_of(SubjectRow)), new)
    ids = {key: row.id for key, row in known.items()}
    if new:
        added = session.execute(
            select(SubjectRow.id, SubjectRow.kind, SubjectRow.namespace, SubjectRow.name).where(
                SubjectRow.cluster == scan.cluster, SubjectRow.first_scan_id == scan.id
            )
        )
        ids.update({(kind, namespace, name): id_ for id_, kind, namespace, name in added})
    return ids


def _record_identities(
    session: Session,
    ids: Mapping[SubjectKey, int],
    identities: Mapping[SubjectKey, SubjectIdentity],
) -> None:
    """The UID and labels each tracked subject had when this scan saw it. A scan that did
    not see them (files without metadata.uid) leaves what an earlier one recorded."""
    rows = [
        {"id": ids[key], "uid": identity.uid, "labels": identity.labels}
        for key, identity in identities.items()
        if key in ids
    ]
    if rows:
        session.execute(update(SubjectRow), rows, execution_options=_NO_SYNC)


def _mark_deleted(
    session: Session,
    scan: ScanRow,
    coverage: Coverage,
    seen: set[SubjectKey],
    changes: Changes,
) -> set[SubjectKey]:
    """Tracked subjects this scan should have seen and did not: deleted. A scan with input
    errors proves nothing about absence (the missing object may be in the broken file)."""
    if scan.input_errors:
        return set()
    live = session.execute(
        select(SubjectRow.id, SubjectRow.kind, SubjectRow.namespace, SubjectRow.name).where(
            SubjectRow.cluster == scan.cluster, SubjectRow.deleted_at.is_(None)
        )
    )
    gone: dict[SubjectKey, int] = {}
    for id_, kind, namespace, name in live:
        key = (kind, namespace, name)
        if key in seen or kind in _CLUSTER_KINDS or not kind_fully_read(coverage, kind):
            continue
        gone[key] = id_
    if gone:
        session.execute(
            update(SubjectRow),
            [
                {"id": id_, "deleted_at": scan.started_at, "deleted_scan_id": scan.id}
                for id_ in gone.values()
            ],
            execution_options=_NO_SYNC,
        )
    changes.deleted_subjects = len(gone)
    return set(gone)


def as_subject_key(kind: str, namespace: str | None, name: str) -> SubjectKey:
    return (kind, namespace or "", name)
