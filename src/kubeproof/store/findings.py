"""Reading findings back: remediation deadlines by severity, and a subject's history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kubeproof.model import Severity
from kubeproof.store.ledger import canonical_time, utc
from kubeproof.store.lifecycle import DELETED, OPEN, OPENED, REOPENED, RESOLVED
from kubeproof.store.schema import FindingEventRow, FindingRow, SubjectRow

# Days from first_seen to fix a finding, by severity. Info has no deadline.
DEFAULT_SLA_DAYS: dict[Severity, int] = {
    Severity.CRITICAL: 15,
    Severity.HIGH: 30,
    Severity.MEDIUM: 90,
    Severity.LOW: 180,
}


class SlaError(ValueError):
    pass


def parse_sla(text: str, base: Mapping[Severity, int] = DEFAULT_SLA_DAYS) -> dict[Severity, int]:
    """`critical=7,high=30`: the defaults with the given severities changed."""
    days = dict(base)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            severity = Severity(name.strip().lower())
        except ValueError:
            raise SlaError(f"unknown severity {name.strip()!r} in --sla {text!r}") from None
        if not sep or not value.strip().isdigit():
            raise SlaError(f"--sla {text!r}: {name.strip()} needs a whole number of days")
        days[severity] = int(value.strip())
    return days


@dataclass(frozen=True)
class FindingView:
    """A finding with its deadline, as the findings and history commands show it."""

    row: FindingRow
    due: datetime | None
    overdue: bool

    @property
    def subject(self) -> str:
        return subject_text(self.row.kind, self.row.namespace, self.row.name)

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "fingerprint": row.fingerprint,
            "cluster": row.cluster,
            "check": row.check_id,
            "severity": row.severity,
            "subject": {
                "kind": row.kind,
                "namespace": row.namespace or None,
                "name": row.name,
                "container": row.container or None,
            },
            "state": row.state,
            "firstSeen": canonical_time(row.first_seen),
            "firstScan": row.first_scan_id,
            "lastSeen": canonical_time(row.last_seen),
            "lastScan": row.last_scan_id,
            "lastStatus": row.last_status,
            "resolvedAt": canonical_time(row.closed_at) if row.state == RESOLVED else None,
            "deletedAt": canonical_time(row.closed_at) if row.state == DELETED else None,
            "closedScan": row.closed_scan_id,
            "reopened": row.reopened,
            "due": canonical_time(self.due),
            "overdue": self.overdue,
            "message": row.message,
        }


def subject_text(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def due_date(row: FindingRow, sla: Mapping[Severity, int]) -> datetime | None:
    try:
        days = sla.get(Severity(row.severity))
    except ValueError:
        return None
    return None if days is None else utc(row.first_seen) + timedelta(days=days)


def view(row: FindingRow, sla: Mapping[Severity, int], now: datetime) -> FindingView:
    due = due_date(row, sla)
    # Open past its deadline, or closed after it: either way the SLA was missed.
    end = now if row.state == OPEN else utc(row.closed_at or now)
    overdue = due is not None and end > due and (row.state == OPEN or row.state == RESOLVED)
    return FindingView(row, due, overdue)


def list_findings(
    session: Session,
    *,
    state: str | None = None,
    overdue_only: bool = False,
    cluster: str | None = None,
    sla: Mapping[Severity, int] = DEFAULT_SLA_DAYS,
    now: datetime,
) -> list[FindingView]:
    statement = select(FindingRow)
    if state is not None:
        statement = statement.where(FindingRow.state == state)
    if overdue_only:
        statement = statement.where(FindingRow.state == OPEN)
    if cluster is not None:
        statement = statement.where(FindingRow.cluster == cluster)
    views = [view(row, sla, now) for row in session.scalars(statement)]
    if overdue_only:
        views = [v for v in views if v.overdue]
    return sorted(views, key=_order)


def _order(finding: FindingView) -> tuple[Any, ...]:
    row = finding.row
    return (
        row.state != OPEN,
        finding.due is None,
        finding.due or _EPOCH,
        -_rank(row.severity),
        row.cluster,
        row.kind,
        row.namespace,
        row.name,
        row.container,
        row.check_id,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return -1


# --- history ----------------------------------------------------------------------------


class SubjectSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class SubjectQuery:
    kind: str
    namespace: str  # "" for cluster-scoped subjects
    name: str
    container: str | None = None


def parse_subject(text: str) -> SubjectQuery:
    """`Kind/namespace/name`, `Kind/name` (cluster-scoped), optionally `[container]`."""
    body, container = text.strip(), None
    if body.endswith("]") and "[" in body:
        body, _, rest = body.partition("[")
        container = rest[:-1] or None
    parts = body.split("/")
    if len(parts) == 3 and all(parts):
        return SubjectQuery(parts[0], parts[1], parts[2], container)
    if len(parts) == 2 and all(parts):
        return SubjectQuery(parts[0], "", parts[1], container)
    raise SubjectSyntaxError(
        f"cannot read subject {text!r}: use Kind/namespace/name (e.g. Deployment/shop/storefront) "
        "or Kind/name for cluster-scoped objects (e.g. Namespace/shop)"
    )


@dataclass(frozen=True)
class Interval:
    """One stretch of a finding being open: from the scan that opened or reopened it to
    the scan that resolved it or saw its subject deleted (None: still open)."""

    opened_at: datetime
    opened_scan: int
    closed_at: datetime | None
    closed_scan: int | None
    closed_as: str | None

    def duration(self, now: datetime) -> timedelta:
        return utc(self.closed_at or now) - utc(self.opened_at)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "openedAt": canonical_time(self.opened_at),
            "openedByScan": self.opened_scan,
            "closedAt": canonical_time(self.closed_at),
            "closedByScan": self.closed_scan,
            "closedAs": self.closed_as,
            "openSeconds": int(self.duration(now).total_seconds()),
        }


@dataclass
class SubjectHistory:
    query: SubjectQuery
    subjects: list[SubjectRow]
    findings: list[tuple[FindingView, list[Interval]]] = field(default_factory=list)


def intervals(events: Sequence[FindingEventRow]) -> list[Interval]:
    stretches: list[Interval] = []
    start: FindingEventRow | None = None
    for event in events:
        if event.event in (OPENED, REOPENED):
            start = event
        elif start is not None:
            stretches.append(
                Interval(start.at, start.scan_id, event.at, event.scan_id, event.event)
            )
            start = None
    if start is not None:
        stretches.append(Interval(start.at, start.scan_id, None, None, None))
    return stretches


def subject_history(
    session: Session,
    query: SubjectQuery,
    *,
    cluster: str | None = None,
    sla: Mapping[Severity, int] = DEFAULT_SLA_DAYS,
    now: datetime,
) -> SubjectHistory:
    subjects_statement = select(SubjectRow).where(
        SubjectRow.kind == query.kind,
        SubjectRow.namespace == query.namespace,
        SubjectRow.name == query.name,
    )
    findings_statement = select(FindingRow).where(
        FindingRow.kind == query.kind,
        FindingRow.namespace == query.namespace,
        FindingRow.name == query.name,
    )
    if cluster is not None:
        subjects_statement = subjects_statement.where(SubjectRow.cluster == cluster)
        findings_statement = findings_statement.where(FindingRow.cluster == cluster)
    if query.container is not None:
        findings_statement = findings_statement.where(FindingRow.container == query.container)
    history = SubjectHistory(
        query, list(session.scalars(subjects_statement.order_by(SubjectRow.cluster)))
    )
    rows = list(session.scalars(findings_statement.order_by(FindingRow.first_seen, FindingRow.id)))
    events: dict[int, list[FindingEventRow]] = defaultdict(list)
    if rows:
        for event in session.scalars(
            select(FindingEventRow)
            .where(FindingEventRow.finding_id.in_([row.id for row in rows]))
            .order_by(FindingEventRow.at, FindingEventRow.id)
        ):
            events[event.finding_id].append(event)
    history.findings = [(view(row, sla, now), intervals(events[row.id])) for row in rows]
    return history
