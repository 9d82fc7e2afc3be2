"""A period's evidence, read from the store's per-scan summaries: results counted per
scan, check and status, and per subject and scan, written when each scan was recorded
(revision 0004). A year of daily scans of ten thousand results each is a few hundred
thousand summary rows, never millions of results. Only the CSV export streams results
themselves; scans, findings and ledger entries (thousands, not millions) are read as rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Integer,
    String,
    Text,
    column,
    func,
    inspect,
    select,
    table,
)
from sqlalchemy.orm import Session

from kubeproof.frameworks import Framework
from kubeproof.model import Severity
from kubeproof.period.admission import load_admission
from kubeproof.period.detections import load_detections
from kubeproof.period.model import (
    ABSENT,
    STATE_ORDER,
    CheckEvidence,
    CoverageGap,
    CriterionReport,
    ExceptionInForce,
    FindingItem,
    LedgerCheck,
    Period,
    PeriodReport,
    ScanRun,
    Segment,
    WeekPoint,
    WorkloadTimeline,
    empty_counts,
    week_start,
)
from kubeproof.risk_acceptance import expires_at
from kubeproof.store import ledger
from kubeproof.store.findings import DEFAULT_SLA_DAYS
from kubeproof.store.ledger import RESULT_FIELDS, utc
from kubeproof.store.lifecycle import OPENED, REOPENED, RESOLVED
from kubeproof.store.schema import (
    FindingEventRow,
    FindingRow,
    LedgerEntryRow,
    ResultRow,
    ScanCheckCountRow,
    ScanRow,
    ScanSubjectCountRow,
    SubjectRow,
)

# Kinds a per-workload timeline is drawn for (the inventory's top owners).
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "Pod", "ReplicaSet")
# The result columns the CSV export writes, in order: the scan, then what the ledger's
# digest covers (the details are JSON, left to the JSON report).
RESULT_COLUMNS = ("scan_id", *(field for field in RESULT_FIELDS if field != "details"))
_INCOMPLETE_STATES = ("forbidden", "error", "unread")


@dataclass(frozen=True)
class Options:
    period: Period
    framework: Framework
    cluster: str | None = None
    sla: Mapping[Severity, int] = field(default_factory=lambda: dict(DEFAULT_SLA_DAYS))
    verify: bool = True
    store: str = ""


def load_report(session: Session, options: Options, now: datetime) -> PeriodReport:
    period, framework = options.period, options.framework
    today = utc(now).date()
    days = period.days(until=today)
    scans = _scans(session, options)
    scan_day = {scan.id: scan.day for scan in scans}
    counts = _check_counts(session, options) if scans else []
    findings = _findings(session, options, now) if scans else []
    exceptions = _exceptions(session, options)
    criteria = [
        _criterion(group, counts, scan_day, days, findings, exceptions)
        for group in framework.groups
    ]
    totals = empty_counts()
    weekly: dict[date, dict[str, int]] = {}
    for row in counts:
        totals[row.status] += row.results
        _add(weekly, week_start(scan_day[row.scan_id]), row.status, row.results)
    scan_days = set(scan_day.values())
    return PeriodReport(
        period=period,
        generated_at=utc(now),
        framework_id=framework.id,
        framework_title=framework.title,
        cluster=options.cluster,
        sla_days={severity.value: d for severity, d in options.sla.items()},
        scans=scans,
        days=days,
        missing_days=[d for d in days if d not in scan_days],
        counts=totals,
        weekly=_weeks(days, weekly),
        criteria=criteria,
        workloads=_timelines(session, options, scan_day, days) if scans else [],
        findings=findings,
        ledger=_verify(session) if options.verify else None,
        exceptions_available=exceptions is not None,
        store=options.store,
        admission=load_admission(session, period, options.cluster),
        detections=load_detections(session, period, options.cluster, days, now),
    )


# --- scans and ledger ------------------------------------------------------------------


def _period_scans(options: Options) -> Any:
    statement = select(ScanRow.id).where(
        ScanRow.started_at >= options.period.start, ScanRow.started_at < options.period.end
    )
    if options.cluster is not None:
        statement = statement.where(ScanRow.cluster == options.cluster)
    return statement


def _scans(session: Session, options: Options) -> list[ScanRun]:
    entries = {
        scan_id: (seq, digest)
        for scan_id, seq, digest in session.execute(
            select(LedgerEntryRow.scan_id, LedgerEntryRow.seq, LedgerEntryRow.entry_hash).where(
                LedgerEntryRow.scan_id.in_(_period_scans(options))
            )
        )
    }
    rows = session.scalars(
        select(ScanRow).where(ScanRow.id.in_(_period_scans(options))).order_by(ScanRow.started_at)
    )
    return [_scan_run(row, entries.get(row.id)) for row in rows]


def _scan_run(row: ScanRow, entry: tuple[int, str] | None) -> ScanRun:
    incomplete = tuple(
        str(kind.get("kind", ""))
        for kind in row.coverage or []
        if str(kind.get("state", "")) in _INCOMPLETE_STATES
    )
    return ScanRun(
        id=row.id,
        cluster=row.cluster,
        framework=row.framework,
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at) if row.finished_at else None,
        tool_version=row.tool_version,
        catalogue_digest=row.catalogue_digest,
        result_count=row.result_count,
        totals=dict(row.totals or {}),
        input_errors=row.input_errors,
        incomplete_kinds=incomplete,
        ledger_seq=entry[0] if entry else None,
        ledger_hash=entry[1] if entry else None,
    )


def _verify(session: Session) -> LedgerCheck:
    result = ledger.verify(session)
    return LedgerCheck(result.intact, result.entries, result.head, result.problem)


# --- results, counted per scan -----------------------------------------------------------


@dataclass(frozen=True)
class CheckCount:
    scan_id: int
    check_id: str
    status: str
    reason: str | None  # only for not_evaluated: why
    results: int


def _check_counts(session: Session, options: Options) -> list[CheckCount]:
    """Results per scan, check and status (and reason, for what could not be judged)."""
    counts = ScanCheckCountRow
    statement = select(
        counts.scan_id, counts.check_id, counts.status, counts.reason, counts.results
    ).where(counts.scan_id.in_(_period_scans(options)))
    return [CheckCount(*row) for row in session.execute(statement)]


def _add(buckets: dict[Any, dict[str, int]], key: Any, status: str, count: int) -> None:
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = empty_counts()
    if status in bucket:
        bucket[status] += count


def _weeks(days: Sequence[date], buckets: Mapping[date, dict[str, int]]) -> list[WeekPoint]:
    weeks = sorted({week_start(d) for d in days} | set(buckets))
    return [WeekPoint(w, dict(buckets.get(w) or empty_counts())) for w in weeks]


def _criterion(
    group: Any,
    counts: Sequence[CheckCount],
    scan_day: Mapping[int, date],
    days: Sequence[date],
    findings: Sequence[FindingItem],
    exceptions: Sequence[ExceptionInForce] | None,
) -> CriterionReport:
    check_ids = {check.id for check in group.checks}
    totals = empty_counts()
    per_check: dict[str, dict[str, int]] = defaultdict(empty_counts)
    check_scans: dict[str, set[int]] = defaultdict(set)
    weekly: dict[date, dict[str, int]] = {}
    gaps: dict[tuple[str, str], int] = defaultdict(int)
    scans: set[int] = set()
    for row in counts:
        if row.check_id not in check_ids:
            continue
        totals[row.status] = totals.get(row.status, 0) + row.results
        per_check[row.check_id][row.status] += row.results
        check_scans[row.check_id].add(row.scan_id)
        scans.add(row.scan_id)
        _add(weekly, week_start(scan_day[row.scan_id]), row.status, row.results)
        if row.status == "not_evaluated":
            gaps[(row.check_id, row.reason or "no reason recorded")] += row.results
    evidence_days = sorted({scan_day[s] for s in scans})
    present = set(evidence_days)
    return CriterionReport(
        id=group.id,
        title=group.title,
        description=group.description,
        checks=[
            CheckEvidence(
                check_id=check.id,
                title=check.spec.title,
                severity=check.spec.severity.value,
                rationale=check.spec.criteria.get(group.id, ""),
                counts=dict(per_check[check.id]),
                scans=len(check_scans[check.id]),
                days=len({scan_day[s] for s in check_scans[check.id]}),
            )
            for check in group.checks
        ],
        counts=totals,
        scans=len(scans),
        evidence_days=evidence_days,
        missing_days=[d for d in days if d not in present],
        weekly=_weeks(days, weekly),
        findings=[f for f in findings if f.check_id in check_ids],
        gaps=sorted(
            (CoverageGap(check, reason, n) for (check, reason), n in gaps.items()),
            key=lambda g: (-g.results, g.check_id, g.reason),
        ),
        exceptions=None
        if exceptions is None
        else [e for e in exceptions if any(e.covers_check(c) for c in check_ids)],
    )


# --- findings --------------------------------------------------------------------------


def _findings(session: Session, options: Options, now: datetime) -> list[FindingItem]:
    """Findings open at some moment of the period, as they stood at its end. The findings
    table holds the current state; the events say what it was then (a finding resolved in
    the period and reopened after it was resolved at the period's end)."""
    period = options.period
    statement = select(FindingRow).where(FindingRow.first_seen < period.end)
    if options.cluster is not None:
        statement = statement.where(FindingRow.cluster == options.cluster)
    rows = {row.id: row for row in session.scalars(statement)}
    if not rows:
        return []
    events: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    event_rows = session.execute(
        select(FindingEventRow.finding_id, FindingEventRow.at, FindingEventRow.event)
        .where(FindingEventRow.finding_id.in_(select(statement.subquery().c.id)))
        .where(FindingEventRow.at < period.end)
        .order_by(FindingEventRow.at, FindingEventRow.id)
    )
    for finding_id, at, event in event_rows:
        events[finding_id].append((utc(at), event))
    end = min(period.end, utc(now))
    identities = _identities(session, {row.subject_id for row in rows.values()})
    items = []
    for finding_id, row in rows.items():
        stood = _state_at(events.get(finding_id, []), period.start)
        if stood is not None:
            uid, labels = identities.get(row.subject_id, (None, None))
            items.append(_finding(row, stood, options.sla, end, uid, labels))
    return sorted(items, key=lambda f: (f.state != "open", not f.overdue, f.first_seen, f.id))


def _state_at(
    events: Sequence[tuple[datetime, str]], start: datetime
) -> tuple[str, datetime | None] | None:
    """(state at the period's end, when it closed) from the events before the end, or None
    when the finding was not open at any moment of the period."""
    open_in_period = False
    state, closed_at = "open", None
    for at, event in events:
        if event in (OPENED, REOPENED):
            state, closed_at = "open", None
            open_in_period = open_in_period or at >= start
        else:
            if at >= start and state == "open":
                open_in_period = True  # it was open until this moment of the period
            state, closed_at = event, at
    if state == "open":
        open_in_period = True
    return (state, closed_at) if open_in_period else None


def _identities(
    session: Session, subject_ids: set[int]
) -> dict[int, tuple[str | None, dict[str, str] | None]]:
    """Each subject's Kubernetes UID and labels as last seen in a cluster (revision 0005)."""
    found = {}
    ordered = sorted(subject_ids)
    for start in range(0, len(ordered), 10_000):  # bounded IN lists
        chunk = ordered[start : start + 10_000]
        statement = select(SubjectRow.id, SubjectRow.uid, SubjectRow.labels).where(
            SubjectRow.id.in_(chunk)
        )
        for subject_id, uid, labels in session.execute(statement):
            found[subject_id] = (uid, labels if isinstance(labels, dict) else None)
    return found


def _finding(
    row: FindingRow,
    stood: tuple[str, datetime | None],
    sla: Mapping[Severity, int],
    end: datetime,
    uid: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> FindingItem:
    state, closed = stood
    first_seen = utc(row.first_seen)
    try:
        days = sla.get(Severity(row.severity))
    except ValueError:
        days = None
    due = None if days is None else first_seen + timedelta(days=days)
    # Open past its deadline at the period's end, or resolved after it: the SLA was missed.
    overdue = due is not None and (
        (state == "open" and end > due)
        or (state == RESOLVED and closed is not None and closed > due)
    )
    return FindingItem(
        id=row.id,
        cluster=row.cluster,
        check_id=row.check_id,
        severity=row.severity,
        kind=row.kind,
        namespace=row.namespace,
        name=row.name,
        container=row.container,
        state=state,
        first_seen=first_seen,
        closed_at=closed,
        due=due,
        overdue=overdue,
        reopened=row.reopened,
        message=row.message,
        uid=uid,
        labels=labels,
    )


# --- exceptions (risk acceptance), when the store keeps them ---------------------------

_EXCEPTIONS = table(
    "exceptions",
    column("id", Integer),
    column("checks", JSON),
    column("subjects", JSON),
    column("namespaces", JSON),
    column("selector", JSON),
    column("owner", String),
    column("reason", Text),
    column("created_at", DateTime(timezone=True)),
    column("expires_on", Date),
)
_REVOCATIONS = table(
    "exception_revocations",
    column("exception_id", Integer),
    column("revoked_at", DateTime(timezone=True)),
)


def _exceptions(session: Session, options: Options) -> list[ExceptionInForce] | None:
    """Exceptions in force at some moment of the period; None when the store's schema has
    no exceptions table. Read as plain columns, so that this report keeps working
    whichever kubeproof wrote them."""
    if not inspect(session.connection()).has_table("exceptions"):
        return None
    period = options.period
    revoked = {
        exception_id: utc(at)
        for exception_id, at in session.execute(
            select(_REVOCATIONS.c.exception_id, _REVOCATIONS.c.revoked_at)
        )
    }
    statement = select(_EXCEPTIONS).where(
        _EXCEPTIONS.c.created_at < period.end, _EXCEPTIONS.c.expires_on > period.first_day
    )
    items: list[ExceptionInForce] = []
    for row in session.execute(statement.order_by(_EXCEPTIONS.c.id)).mappings():
        revoked_at = revoked.get(row["id"])
        if revoked_at is not None and revoked_at < period.start:
            continue
        expires = expires_at(row["expires_on"])  # the same moment a scan stops excepting
        items.append(
            ExceptionInForce(
                id=f"EXC-{row['id']}",
                checks=_texts(row["checks"]),
                subjects=_texts(row["subjects"]),
                namespaces=_texts(row["namespaces"]),
                has_selector=bool(row["selector"]),
                selector=row["selector"] if isinstance(row["selector"], dict) else None,
                owner=str(row["owner"]),
                reason=str(row["reason"]),
                expires=min(expires, revoked_at) if revoked_at is not None else expires,
                granted=utc(row["created_at"]),
                revoked=revoked_at,
            )
        )
    return items


def _texts(value: Any) -> tuple[str, ...]:
    """A JSON list of strings; anything else (a row edited by hand) counts as empty."""
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


# --- per-workload timelines ------------------------------------------------------------


def _timelines(
    session: Session, options: Options, scan_day: Mapping[int, date], days: Sequence[date]
) -> list[WorkloadTimeline]:
    """Per workload and scan, the worst status of its results, folded into days."""
    counts = ScanSubjectCountRow
    statement = select(
        counts.scan_id,
        counts.kind,
        counts.namespace,
        counts.name,
        counts.fail,
        counts.not_evaluated,
        counts.excepted,
    ).where(counts.scan_id.in_(_period_scans(options)), counts.kind.in_(WORKLOAD_KINDS))
    cluster_of = _scan_clusters(session, options)
    states: dict[tuple[str, str, str, str], dict[date, str]] = defaultdict(dict)
    for scan_id, kind, namespace, name, fails, unjudged_n, excepted_n in session.execute(statement):
        state = (
            "fail"
            if fails
            else "not_evaluated"
            if unjudged_n
            else ("excepted" if excepted_n else "pass")
        )
        day_states = states[(cluster_of[scan_id], kind, namespace, name)]
        day = scan_day[scan_id]
        known = day_states.get(day)
        if known is None or STATE_ORDER.index(state) < STATE_ORDER.index(known):
            day_states[day] = state
    return [
        WorkloadTimeline(cluster, kind, namespace, name, _segments(day_states, days))
        for (cluster, kind, namespace, name), day_states in sorted(states.items())
    ]


def _scan_clusters(session: Session, options: Options) -> dict[int, str]:
    statement = select(ScanRow.id, ScanRow.cluster).where(ScanRow.id.in_(_period_scans(options)))
    return {scan_id: cluster for scan_id, cluster in session.execute(statement)}


def _segments(day_states: Mapping[date, str], days: Sequence[date]) -> list[Segment]:
    """Consecutive days in the same state, as one segment each."""
    segments: list[Segment] = []
    for day in days:
        state = day_states.get(day, ABSENT)
        if segments and segments[-1].state == state:
            segments[-1] = Segment(segments[-1].first_day, day, state)
        else:
            segments.append(Segment(day, day, state))
    return segments


# --- full populations, streamed (CSV) --------------------------------------------------


def iter_results(session: Session, options: Options, batch: int = 20_000) -> Iterator[Any]:
    """Every result of the period's scans, in scan order, without holding them all."""
    columns = [getattr(ResultRow, name) for name in RESULT_COLUMNS]
    statement = (
        select(*columns)
        .where(ResultRow.scan_id.in_(_period_scans(options)))
        .order_by(ResultRow.scan_id, ResultRow.id)
        .execution_options(yield_per=batch)
    )
    yield from session.execute(statement)


def result_count(session: Session, options: Options) -> int:
    statement = select(func.count()).where(ResultRow.scan_id.in_(_period_scans(options)))
    return int(session.execute(statement).scalar_one())
