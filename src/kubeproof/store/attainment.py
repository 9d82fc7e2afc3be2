"""SLA attainment over a period: of the findings due in it, how many were fixed in time.

The population is every finding whose due date (first seen + the SLA of its severity)
falls in the period. Each one is:

* closed on time: resolved, or closed because its subject was deleted, by its due date;
* closed late: closed after its due date;
* overdue: still open, past its due date;
* pending: still open, due later than now (a period that reaches into the future).

Attainment is on time / (on time + late + overdue); pending findings are not counted yet.
Time to remediate is closed_at - first_seen, its median over the closed findings.

An exception does not stop the clock: an excepted finding is still open (accepting a risk
is not fixing it), so it counts against attainment once its due date passes. The
`excepted` column says how many findings were excepted in their latest scan.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kubeproof.model import Severity, Status
from kubeproof.store.findings import DEFAULT_SLA_DAYS, due_date
from kubeproof.store.ledger import canonical_time, utc
from kubeproof.store.lifecycle import DELETED, OPEN, RESOLVED
from kubeproof.store.schema import FindingRow


@dataclass
class Attainment:
    """One severity's figures (or the total, severity None)."""

    severity: Severity | None
    sla_days: int | None
    due: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    pending: int = 0
    excepted: int = 0
    remediation_times: list[timedelta] = field(default_factory=list)

    @property
    def judged(self) -> int:
        return self.on_time + self.late + self.overdue

    @property
    def percent(self) -> float | None:
        return None if not self.judged else round(100.0 * self.on_time / self.judged, 1)

    @property
    def median_time_to_remediate(self) -> timedelta | None:
        if not self.remediation_times:
            return None
        seconds = statistics.median(t.total_seconds() for t in self.remediation_times)
        return timedelta(seconds=seconds)

    def as_dict(self) -> dict[str, Any]:
        median = self.median_time_to_remediate
        return {
            "severity": self.severity.value if self.severity else "total",
            "slaDays": self.sla_days,
            "due": self.due,
            "closedOnTime": self.on_time,
            "closedLate": self.late,
            "openOverdue": self.overdue,
            "pending": self.pending,
            "excepted": self.excepted,
            "attainmentPercent": self.percent,
            "medianTimeToRemediateSeconds": None if median is None else int(median.total_seconds()),
        }


@dataclass
class PeriodAttainment:
    start: datetime
    end: datetime  # exclusive
    by_severity: list[Attainment]
    total: Attainment

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {"from": canonical_time(self.start), "to": canonical_time(self.end)},
            "severities": [a.as_dict() for a in self.by_severity],
            "total": self.total.as_dict(),
        }


def attainment(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    sla: Mapping[Severity, int] = DEFAULT_SLA_DAYS,
    cluster: str | None = None,
) -> PeriodAttainment:
    """Figures for the findings due in [start, end)."""
    rated = [s for s in Severity if s in sla]
    rows: dict[Severity, Attainment] = {s: Attainment(s, sla[s]) for s in rated}
    total = Attainment(None, None)
    statement = select(FindingRow)
    if cluster is not None:
        statement = statement.where(FindingRow.cluster == cluster)
    for row in session.scalars(statement):
        due = due_date(row, sla)
        if due is None or not start <= due < end:
            continue
        figures = rows[Severity(row.severity)]
        for target in (figures, total):
            _count(target, row, due, now)
    return PeriodAttainment(start, end, [rows[s] for s in rated], total)


def _count(target: Attainment, row: FindingRow, due: datetime, now: datetime) -> None:
    target.due += 1
    if row.last_status == Status.EXCEPTED.value:
        target.excepted += 1
    if row.state in (RESOLVED, DELETED) and row.closed_at is not None:
        closed = utc(row.closed_at)
        if closed <= due:
            target.on_time += 1
        else:
            target.late += 1
        target.remediation_times.append(closed - utc(row.first_seen))
    elif row.state == OPEN:
        if due <= now:
            target.overdue += 1
        else:
            target.pending += 1
