"""Anomaly detection over a period (SOC 2 CC7.2): the audit detections and Falco alerts
`kubeproof audit` recorded (revision 0008 of the store), by detector and severity and by
subject, and whether monitoring was running at all: the days on which the agent and the
audit receivers sent heartbeats, and the stretches in which they were silent.

A period without detections is evidence only when monitoring ran through it: the coverage
is what tells "nothing happened" from "nothing was watching".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kubeproof.model import Severity
from kubeproof.period.model import Period, time_text
from kubeproof.store.ledger import utc
from kubeproof.store.schema import AgentHeartbeatRow, DetectionRow

CRITERION = "CC7.2"
COMPONENTS = ("agent", "audit")  # agent_heartbeats.component: what was watching
COMPONENT_NAMES = {"agent": "kubeproof agent", "audit": "audit receiver"}
# A silence longer than this many heartbeat intervals is a gap in monitoring.
GAP_INTERVALS = 2
# The columns of the CSV population, in order.
DETECTION_COLUMNS = (
    "observed_at",
    "received_at",
    "cluster",
    "source",
    "detector",
    "severity",
    "criteria",
    "subject",
    "container",
    "fingerprint",
    "evidence_key",
    "message",
    "evidence",
    "run_id",
    "detection_id",
    "ledger_seq",
)


@dataclass(frozen=True)
class DetectorTally:
    detector_id: str
    severity: str
    source: str  # audit | falco
    detections: int
    subjects: int


@dataclass(frozen=True)
class SubjectTally:
    """Who or what the detections were about: a user or service account (audit), or a
    workload or node (Falco)."""

    subject: str
    detections: int
    detectors: tuple[str, ...]
    worst: str  # the highest severity among them


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


@dataclass
class Coverage:
    """One kind of monitor over the period: the days it sent heartbeats, and its silences."""

    component: str
    heartbeats: int = 0
    runs: int = 0
    days: list[date] = field(default_factory=list)  # days with at least one heartbeat
    gaps: list[Gap] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "heartbeats": self.heartbeats,
            "runs": self.runs,
            "daysWithHeartbeats": len(self.days),
            "gaps": [
                {"from": time_text(g.start), "to": time_text(g.end), "hours": round(g.hours, 2)}
                for g in self.gaps
            ],
        }


@dataclass
class DetectionEvidence:
    days: list[date]  # the period's days up to the report's date
    detections: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    detectors: list[DetectorTally] = field(default_factory=list)
    subjects: list[SubjectTally] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    batches: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.detections == 0

    @property
    def monitored(self) -> bool:
        return any(c.heartbeats for c in self.coverage)

    @property
    def unmonitored_days(self) -> list[date]:
        """Days of the period on which nothing sent a heartbeat."""
        covered = {day for c in self.coverage for day in c.days}
        return [day for day in self.days if day not in covered]

    def as_dict(self) -> dict[str, Any]:
        return {
            "criterion": CRITERION,
            "detections": self.detections,
            "bySeverity": self.by_severity,
            "bySource": self.by_source,
            "ledgerEntries": self.batches,
            "first": time_text(self.first),
            "last": time_text(self.last),
            "byDetector": [
                {
                    "detector": t.detector_id,
                    "severity": t.severity,
                    "source": t.source,
                    "detections": t.detections,
                    "subjects": t.subjects,
                }
                for t in self.detectors
            ],
            "subjects": [
                {
                    "subject": s.subject,
                    "detections": s.detections,
                    "detectors": list(s.detectors),
                    "worstSeverity": s.worst,
                }
                for s in self.subjects
            ],
            "coverage": [c.as_dict() for c in self.coverage],
            "daysWithoutMonitoring": [d.isoformat() for d in self.unmonitored_days],
        }


def subject_text(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _in_period(statement: Any, period: Period, cluster: str | None) -> Any:
    statement = statement.where(
        DetectionRow.observed_at >= period.start, DetectionRow.observed_at < period.end
    )
    if cluster is not None:
        statement = statement.where(DetectionRow.cluster == cluster)
    return statement


def load_detections(
    session: Session, period: Period, cluster: str | None, days: Sequence[date], now: datetime
) -> DetectionEvidence:
    row = DetectionRow
    evidence = DetectionEvidence(list(days))
    evidence.by_severity = {s.value: 0 for s in sorted(Severity, key=lambda s: -s.rank)}
    per_subject = _in_period(
        select(
            row.detector_id,
            row.severity,
            row.source,
            row.kind,
            row.namespace,
            row.name,
            func.count(),
            func.min(row.observed_at),
            func.max(row.observed_at),
        ).group_by(row.detector_id, row.severity, row.source, row.kind, row.namespace, row.name),
        period,
        cluster,
    )
    tallies: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    subjects: dict[str, Counter[str]] = defaultdict(Counter)
    worst: dict[str, str] = {}
    for detector, severity, source, kind, namespace, name, count, first, last in session.execute(
        per_subject
    ):
        evidence.detections += count
        evidence.by_severity[severity] = evidence.by_severity.get(severity, 0) + count
        evidence.by_source[source] = evidence.by_source.get(source, 0) + count
        tally = tallies[(detector, severity, source)]
        tally[0] += count
        tally[1] += 1
        subject = subject_text(kind, namespace, name)
        subjects[subject][detector] += count
        if _rank(severity) > _rank(worst.get(subject, "")):
            worst[subject] = severity
        evidence.first = utc(first) if evidence.first is None else min(evidence.first, utc(first))
        evidence.last = utc(last) if evidence.last is None else max(evidence.last, utc(last))
    evidence.detectors = sorted(
        (DetectorTally(d, s, src, n, k) for (d, s, src), (n, k) in tallies.items()),
        key=lambda t: (-_rank(t.severity), -t.detections, t.detector_id),
    )
    evidence.subjects = sorted(
        (
            SubjectTally(subject, sum(counts.values()), tuple(sorted(counts)), worst[subject])
            for subject, counts in subjects.items()
        ),
        key=lambda s: (-_rank(s.worst), -s.detections, s.subject),
    )
    if not evidence.empty:
        batches = _in_period(select(func.count(func.distinct(row.ledger_seq))), period, cluster)
        evidence.batches = session.execute(batches).scalar_one()
    evidence.coverage = [
        _coverage(session, period, cluster, component, days, now) for component in COMPONENTS
    ]
    return evidence


def _rank(severity: str) -> int:
    try:
        return Severity(severity).rank
    except ValueError:
        return -1


def _coverage(
    session: Session,
    period: Period,
    cluster: str | None,
    component: str,
    days: Sequence[date],
    now: datetime,
) -> Coverage:
    """Heartbeats of one component, streamed in time order: the days they fall on, and each
    silence longer than GAP_INTERVALS intervals (the period's start and its end, or now,
    count as ends of a silence; a stop is silence too). A component that sent none in the
    period has no gaps listed: it was not running at all, which its zero days say."""
    beat = AgentHeartbeatRow
    statement = (
        select(beat.at, beat.interval_s, beat.run_id, beat.state)
        .where(beat.component == component, beat.at >= period.start, beat.at < period.end)
        .order_by(beat.at, beat.id)
        .execution_options(yield_per=20_000)
    )
    if cluster is not None:
        statement = statement.where(beat.cluster == cluster)
    coverage = Coverage(component)
    seen_days: set[date] = set()
    runs: set[str] = set()
    previous: datetime | None = None
    allowed = timedelta(0)
    stopped = False
    for at, interval_s, run_id, state in session.execute(statement):
        at = utc(at)
        allowed = timedelta(seconds=GAP_INTERVALS * max(int(interval_s), 1))
        if previous is None and at - period.start > allowed:
            coverage.gaps.append(Gap(period.start, at))
        elif previous is not None and (stopped or at - previous > allowed):
            coverage.gaps.append(Gap(previous, at))
        coverage.heartbeats += 1
        runs.add(run_id)
        seen_days.add(at.date())
        previous, stopped = at, state == "stopped"
    coverage.runs = len(runs)
    coverage.days = [day for day in days if day in seen_days]
    end = min(period.end, utc(now))
    if previous is not None and (stopped or end - previous > allowed):
        coverage.gaps.append(Gap(previous, end))
    return coverage


def iter_detections(
    session: Session, period: Period, cluster: str | None, batch: int = 5000
) -> Iterator[Sequence[Any]]:
    """Every detection of the period as a CSV row (DETECTION_COLUMNS), oldest first."""
    statement = _in_period(select(DetectionRow), period, cluster).order_by(
        DetectionRow.observed_at, DetectionRow.id
    )
    for row in session.scalars(statement.execution_options(yield_per=batch)):
        yield (
            time_text(utc(row.observed_at)),
            time_text(utc(row.received_at)),
            row.cluster,
            row.source,
            row.detector_id,
            row.severity,
            "; ".join(row.criteria) if isinstance(row.criteria, list) else "",
            subject_text(row.kind, row.namespace, row.name),
            row.container,
            row.fingerprint,
            row.evidence_key,
            row.message,
            orjson.dumps(row.evidence, option=orjson.OPT_SORT_KEYS).decode(),
            row.run_id,
            row.id,
            row.ledger_seq,
        )
