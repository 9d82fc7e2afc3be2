"""The period report's anomaly-detection section (CC7.2): detections by detector and
severity, the subjects involved, and the days the monitors were (not) running."""

from __future__ import annotations

from html import escape

from kubeproof.period.detections import (
    COMPONENT_NAMES,
    CRITERION,
    Coverage,
    DetectionEvidence,
)
from kubeproof.period.model import time_text
from kubeproof.period.tables import Column, number, table

SUBJECTS_SHOWN = 50
GAPS_SHOWN = 20


def section(evidence: DetectionEvidence) -> str:
    head = (
        '<section class="major" id="detections"><h2>Anomaly detection '
        f"({CRITERION}: system components monitored for anomalies)</h2>"
    )
    return head + _summary(evidence) + _coverage(evidence) + "</section>"


def _summary(evidence: DetectionEvidence) -> str:
    if evidence.empty:
        watched = (
            "Monitoring sent heartbeats on the days listed below, so this is what it saw."
            if evidence.monitored
            else "No monitor sent a heartbeat either: this report cannot show that anything "
            "was watching (<code>kubeproof audit serve --db</code>, <code>kubeproof agent"
            "</code>)."
        )
        return (
            '<p class="notice">No audit detection or Falco alert was recorded in this '
            f"period. {watched}</p>"
        )
    cards = "".join(
        f'<div class="card"><b>{n:,}</b>{escape(severity)}</div>'
        for severity, n in evidence.by_severity.items()
        if n
    )
    sources = ", ".join(f"{n:,} from {escape(s)}" for s, n in sorted(evidence.by_source.items()))
    return (
        f"<p>{evidence.detections:,} detections ({sources}), first "
        f"{escape(time_text(evidence.first) or '')}, last "
        f"{escape(time_text(evidence.last) or '')}, recorded in {evidence.batches:,} ledger "
        f'entries.</p><div class="cards">{cards}</div>' + _detectors(evidence) + _subjects(evidence)
    )


def _detectors(evidence: DetectionEvidence) -> str:
    rows = "".join(
        f"<tr><td class='mono'>{escape(t.detector_id)}</td><td>{escape(t.severity)}</td>"
        f"<td>{escape(t.source)}</td><td class='num'>{t.detections:,}</td>"
        f"<td class='num'>{t.subjects:,}</td></tr>"
        for t in evidence.detectors
    )
    return "<h3>By detector and severity</h3>" + table(
        rows,
        Column("Detector", 46),
        Column("Severity", 14),
        Column("Source", 12),
        number("Detections", 14),
        number("Subjects", 14),
    )


def _subjects(evidence: DetectionEvidence) -> str:
    shown = evidence.subjects[:SUBJECTS_SHOWN]
    rows = "".join(
        f"<tr><td class='mono'>{escape(s.subject)}</td><td>{escape(s.worst)}</td>"
        f"<td class='mono'>{escape(', '.join(s.detectors))}</td>"
        f"<td class='num'>{s.detections:,}</td></tr>"
        for s in shown
    )
    more = (
        f"<p class='muted'>{len(evidence.subjects) - len(shown)} more subjects in the CSV "
        "export (detections.csv).</p>"
        if len(evidence.subjects) > len(shown)
        else ""
    )
    return (
        "<h3>Subjects involved</h3><p>Users and service accounts (audit detections), "
        "workloads and nodes (Falco alerts).</p>"
        + table(
            rows,
            Column("Subject", 40),
            Column("Worst", 12),
            Column("Detectors", 34),
            number("Detections", 14),
        )
        + more
    )


def _coverage(evidence: DetectionEvidence) -> str:
    days = len(evidence.days)
    rows = "".join(_coverage_row(c, days) for c in evidence.coverage)
    missing = evidence.unmonitored_days
    if not days:
        note = ""
    elif missing:
        listed = ", ".join(d.isoformat() for d in missing[:31])
        more = f" and {len(missing) - 31} more" if len(missing) > 31 else ""
        note = (
            f'<p class="alarm">{len(missing)} of {days} days without any heartbeat: '
            f"{escape(listed)}{more}. Nothing recorded on those days is not evidence of "
            "nothing happening.</p>"
        )
    else:
        note = f'<p class="ok">A monitor sent heartbeats on each of the {days} days.</p>'
    gaps = sorted(
        ((c.component, g) for c in evidence.coverage for g in c.gaps),
        key=lambda item: -item[1].hours,
    )[:GAPS_SHOWN]
    gap_rows = "".join(
        f"<tr><td>{escape(COMPONENT_NAMES.get(name, name))}</td>"
        f"<td>{escape(time_text(g.start) or '')}</td><td>{escape(time_text(g.end) or '')}</td>"
        f"<td class='num'>{g.hours:,.1f}</td></tr>"
        for name, g in gaps
    )
    gap_table = (
        "<h3>Longest silences</h3><p>Stretches longer than two heartbeat intervals without "
        "a heartbeat (a stop counts).</p>"
        + table(gap_rows, Column("Monitor"), Column("From"), Column("To"), number("Hours"))
        if gap_rows
        else ""
    )
    return (
        "<h3>Monitoring coverage</h3>"
        + table(
            rows,
            Column("Monitor"),
            number("Days with heartbeats"),
            number("Heartbeats"),
            number("Runs"),
            number("Silences"),
        )
        + note
        + gap_table
    )


def _coverage_row(coverage: Coverage, days: int) -> str:
    name = COMPONENT_NAMES.get(coverage.component, coverage.component)
    return (
        f"<tr><td>{escape(name)}</td><td class='num'>{len(coverage.days)} of {days}</td>"
        f"<td class='num'>{coverage.heartbeats:,}</td><td class='num'>{coverage.runs:,}</td>"
        f"<td class='num'>{len(coverage.gaps):,}</td></tr>"
    )
