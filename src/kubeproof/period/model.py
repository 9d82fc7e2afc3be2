"""What a period report says: plain data that every format (HTML, PDF, CSV, JSON, OSCAL)
renders, built once from the evidence store by `kubeproof.period.query`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from kubeproof.inventory.selectors import selector_matches
from kubeproof.model import Subject
from kubeproof.risk_acceptance import (
    ExceptionSpecError,
    parse_selector,
    parse_subject_pattern,
    subject_namespace,
)

if TYPE_CHECKING:
    from kubeproof.period.admission import AdmissionEvidence
    from kubeproof.period.detections import DetectionEvidence

STATUSES = ("pass", "fail", "excepted", "not_evaluated")
# The order in which a subject's results on one day decide its state that day.
STATE_ORDER = ("fail", "not_evaluated", "excepted", "pass")
ABSENT = "absent"  # no evidence that day: no scan, or the subject was not in it


class PeriodError(ValueError):
    """The period asked for is not one: malformed or reversed dates."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=UTC)

    def days(self, until: date | None = None) -> list[date]:
        """Every day of the period, up to `until` (days still to come cannot lack evidence)."""
        last = self.last_day if until is None else min(self.last_day, until)
        count = (last - self.first_day).days + 1
        return [self.first_day + timedelta(days=n) for n in range(max(count, 0))]


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{flag} {text!r} is not a date: use YYYY-MM-DD") from None


def parse_period(first: str, last: str) -> Period:
    first_day, last_day = parse_day(first, "--from"), parse_day(last, "--to")
    if last_day < first_day:
        raise PeriodError(
            f"--to {last_day.isoformat()} is before --from {first_day.isoformat()}: "
            "the period would be reversed"
        )
    return Period(first_day, last_day)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def pass_rate(counts: dict[str, int]) -> float | None:
    """Passed among judged (pass + fail); None when nothing was judged."""
    judged = counts["pass"] + counts["fail"]
    return None if judged == 0 else counts["pass"] / judged


@dataclass(frozen=True)
class ScanRun:
    id: int
    cluster: str
    framework: str
    started_at: datetime
    finished_at: datetime | None
    tool_version: str
    catalogue_digest: str
    result_count: int
    totals: dict[str, int]
    input_errors: int
    incomplete_kinds: tuple[str, ...]  # kinds forbidden, unserved or in error
    ledger_seq: int | None
    ledger_hash: str | None

    @property
    def day(self) -> date:
        return self.started_at.date()


@dataclass(frozen=True)
class WeekPoint:
    week: date  # Monday
    counts: dict[str, int]

    @property
    def pass_rate(self) -> float | None:
        return pass_rate(self.counts)


@dataclass(frozen=True)
class CheckEvidence:
    check_id: str
    title: str
    severity: str
    rationale: str  # why this check evidences the criterion
    counts: dict[str, int]
    scans: int  # scans that produced a result for it
    days: int  # days with a result for it


@dataclass(frozen=True)
class FindingItem:
    id: int
    cluster: str
    check_id: str
    severity: str
    kind: str
    namespace: str
    name: str
    container: str
    state: str  # at the end of the period: open | resolved | deleted
    first_seen: datetime
    closed_at: datetime | None  # within the period
    due: datetime | None
    overdue: bool
    reopened: int
    message: str
    # Its subject as last seen in a cluster (None when never read from one).
    uid: str | None = None
    labels: Mapping[str, str] | None = field(default=None, compare=False, hash=False)

    @property
    def subject(self) -> str:
        base = (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )
        return f"{base}[{self.container}]" if self.container else base

    @property
    def remediation_days(self) -> float | None:
        if self.closed_at is None:
            return None
        return (self.closed_at - self.first_seen).total_seconds() / 86400


@dataclass(frozen=True)
class CoverageGap:
    """Results that could not be judged: which check, why, how many."""

    check_id: str
    reason: str
    results: int


def selector_text(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector as a reader writes it: `team=payments, tier in (web, api)`."""
    if not selector:
        return "(unreadable)"
    labels = selector.get("matchLabels")
    parts = [f"{k}={v}" for k, v in sorted(labels.items())] if isinstance(labels, dict) else []
    expressions = selector.get("matchExpressions")
    for expression in expressions if isinstance(expressions, list) else []:
        if isinstance(expression, dict):
            values = expression.get("values") or []
            listed = f" ({', '.join(map(str, values))})" if values else ""
            parts.append(f"{expression.get('key')} {expression.get('operator')}{listed}")
    return ", ".join(parts) or "(unreadable)"


@dataclass(frozen=True)
class ExceptionInForce:
    """A risk acceptance in force at some moment of the period."""

    id: str
    checks: tuple[str, ...]  # check ids or globs
    subjects: tuple[str, ...]  # Kind/namespace/name patterns (globs)
    namespaces: tuple[str, ...]  # namespace globs
    has_selector: bool
    owner: str
    reason: str
    expires: datetime | None  # the end of its expiry day, or its revocation if earlier
    granted: datetime | None = None
    revoked: datetime | None = None
    selector: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def scope(self) -> str:
        parts = [*self.subjects, *(f"namespace {n}" for n in self.namespaces)]
        if self.has_selector:
            parts.append(f"label selector {selector_text(self.selector)}")
        return ", ".join(parts) or "every subject"

    def covers_check(self, check_id: str) -> bool:
        return any(fnmatchcase(check_id, pattern) for pattern in self.checks)

    def covers(self, finding: FindingItem) -> bool:
        """Whether it excepts the finding's subject, by the rule a scan applies
        (kubeproof.risk_acceptance). A label selector is matched against the labels the
        store kept for the subject; a subject whose labels the store never saw (recorded
        before revision 0005) is not taken to be covered by one."""
        if not self.covers_check(finding.check_id):
            return False
        if self.has_selector and not self._selects(finding.labels):
            return False
        subject = Subject(
            "", finding.kind, finding.namespace or None, finding.name, finding.container or None
        )
        try:
            patterns = [parse_subject_pattern(p, "subjects") for p in self.subjects]
        except ExceptionSpecError:  # a row edited by hand: it covers nothing
            return False
        if patterns and not any(p.matches(subject) for p in patterns):
            return False
        namespace = subject_namespace(subject)
        return not self.namespaces or any(fnmatchcase(namespace, n) for n in self.namespaces)

    def _selects(self, labels: Mapping[str, str] | None) -> bool:
        if labels is None or self.selector is None:
            return False
        try:
            selector = parse_selector(dict(self.selector), f"exception {self.id} selector")
        except ExceptionSpecError:  # a row edited by hand: it covers nothing
            return False
        return selector_matches(selector, dict(labels))


@dataclass
class CriterionReport:
    id: str
    title: str
    description: str
    checks: list[CheckEvidence]
    counts: dict[str, int]
    scans: int
    evidence_days: list[date]
    missing_days: list[date]
    weekly: list[WeekPoint]
    findings: list[FindingItem]
    gaps: list[CoverageGap]
    exceptions: list[ExceptionInForce] | None  # None: the store keeps no exceptions

    @property
    def open_findings(self) -> list[FindingItem]:
        return [f for f in self.findings if f.state == "open"]

    @property
    def closed_findings(self) -> list[FindingItem]:
        return [f for f in self.findings if f.state != "open"]

    @property
    def overdue(self) -> list[FindingItem]:
        return [f for f in self.findings if f.overdue]

    @property
    def verdict(self) -> str:
        """failing beats incomplete beats satisfied; no evidence is not compliance."""
        if not self.checks or not sum(self.counts.values()):
            return "no evidence"
        if self.open_findings or self.counts["fail"]:
            return "exceptions noted"
        if self.counts["not_evaluated"] or self.missing_days:
            return "incomplete"
        return "satisfied"


@dataclass(frozen=True)
class Segment:
    first_day: date
    last_day: date
    state: str  # one of STATE_ORDER or ABSENT


@dataclass
class WorkloadTimeline:
    cluster: str
    kind: str
    namespace: str
    name: str
    segments: list[Segment]

    @property
    def subject(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def days_in(self, state: str) -> int:
        return sum((s.last_day - s.first_day).days + 1 for s in self.segments if s.state == state)


@dataclass(frozen=True)
class LedgerCheck:
    intact: bool
    entries: int
    head: str
    problem: str | None


@dataclass
class PeriodReport:
    period: Period
    generated_at: datetime
    framework_id: str
    framework_title: str
    cluster: str | None
    sla_days: dict[str, int]
    scans: list[ScanRun]
    days: list[date]  # the period's days up to the report's date
    missing_days: list[date]
    counts: dict[str, int]
    weekly: list[WeekPoint]
    criteria: list[CriterionReport]
    workloads: list[WorkloadTimeline]
    findings: list[FindingItem]
    ledger: LedgerCheck | None  # None: not verified (asked not to)
    exceptions_available: bool
    store: str = ""
    notes: list[str] = field(default_factory=list)
    # What the admission webhook decided in the period (CC6.8); None: not read.
    admission: AdmissionEvidence | None = None
    # Audit detections, Falco alerts and monitoring coverage (CC7.2); None: not read.
    detections: DetectionEvidence | None = None

    @property
    def empty(self) -> bool:
        return not self.scans

    @property
    def result_count(self) -> int:
        return sum(self.counts.values())


def time_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finding_dict(
    item: FindingItem, exceptions: Sequence[ExceptionInForce] | None = None
) -> dict[str, Any]:
    data = {
        "id": item.id,
        "cluster": item.cluster,
        "check": item.check_id,
        "severity": item.severity,
        "subject": item.subject,
        "uid": item.uid,
        "labels": dict(item.labels) if item.labels is not None else None,
        "state": item.state,
        "firstSeen": time_text(item.first_seen),
        "closedAt": time_text(item.closed_at),
        "due": time_text(item.due),
        "overdue": item.overdue,
        "remediationDays": (
            None if item.remediation_days is None else round(item.remediation_days, 2)
        ),
        "reopened": item.reopened,
        "message": item.message,
    }
    if exceptions is not None:
        data["acceptedBy"] = [e.id for e in exceptions if e.covers(item)]
    return data


def as_dict(report: PeriodReport) -> dict[str, Any]:
    """The report as JSON-ready data (the json format)."""
    return {
        "period": {
            "from": report.period.first_day.isoformat(),
            "to": report.period.last_day.isoformat(),
        },
        "generatedAt": time_text(report.generated_at),
        "framework": {"id": report.framework_id, "title": report.framework_title},
        "cluster": report.cluster,
        "store": report.store,
        "slaDays": report.sla_days,
        "empty": report.empty,
        "counts": report.counts,
        "missingDays": [d.isoformat() for d in report.missing_days],
        "weekly": [_week_dict(w) for w in report.weekly],
        "criteria": [_criterion_dict(c) for c in report.criteria],
        "workloads": [
            {
                "cluster": w.cluster,
                "subject": w.subject,
                "segments": [
                    {
                        "from": s.first_day.isoformat(),
                        "to": s.last_day.isoformat(),
                        "state": s.state,
                    }
                    for s in w.segments
                ],
            }
            for w in report.workloads
        ],
        "scans": [_scan_dict(s) for s in report.scans],
        "ledger": None
        if report.ledger is None
        else {
            "intact": report.ledger.intact,
            "entries": report.ledger.entries,
            "head": report.ledger.head,
            "problem": report.ledger.problem,
        },
        "exceptionsAvailable": report.exceptions_available,
        "notes": report.notes,
        "admission": None if report.admission is None else report.admission.as_dict(),
        "detections": None if report.detections is None else report.detections.as_dict(),
    }


def _week_dict(week: WeekPoint) -> dict[str, Any]:
    rate = week.pass_rate
    return {
        "week": week.week.isoformat(),
        "counts": week.counts,
        "passRate": None if rate is None else round(rate, 4),
    }


def _criterion_dict(criterion: CriterionReport) -> dict[str, Any]:
    return {
        "id": criterion.id,
        "title": criterion.title,
        "verdict": criterion.verdict,
        "counts": criterion.counts,
        "scans": criterion.scans,
        "evidenceDays": len(criterion.evidence_days),
        "missingDays": [d.isoformat() for d in criterion.missing_days],
        "checks": [
            {
                "id": c.check_id,
                "title": c.title,
                "severity": c.severity,
                "rationale": c.rationale,
                "counts": c.counts,
                "scans": c.scans,
                "days": c.days,
            }
            for c in criterion.checks
        ],
        "weekly": [_week_dict(w) for w in criterion.weekly],
        "findings": [finding_dict(f, criterion.exceptions) for f in criterion.findings],
        "coverageGaps": [
            {"check": g.check_id, "reason": g.reason, "results": g.results} for g in criterion.gaps
        ],
        "exceptions": None
        if criterion.exceptions is None
        else [
            {
                "id": e.id,
                "checks": list(e.checks),
                "scope": e.scope,
                "owner": e.owner,
                "reason": e.reason,
                "granted": time_text(e.granted),
                "expires": time_text(e.expires),
                "revoked": time_text(e.revoked),
            }
            for e in criterion.exceptions
        ],
    }


def _scan_dict(scan: ScanRun) -> dict[str, Any]:
    return {
        "id": scan.id,
        "cluster": scan.cluster,
        "framework": scan.framework,
        "startedAt": time_text(scan.started_at),
        "finishedAt": time_text(scan.finished_at),
        "toolVersion": scan.tool_version,
        "catalogueDigest": scan.catalogue_digest,
        "results": scan.result_count,
        "totals": scan.totals,
        "inputErrors": scan.input_errors,
        "incompleteKinds": list(scan.incomplete_kinds),
        "ledgerSeq": scan.ledger_seq,
        "ledgerHash": scan.ledger_hash,
    }
