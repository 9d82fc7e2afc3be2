"""The period report as one self-contained HTML page: inline CSS and inline SVG, no
scripts, no external assets. The PDF is printed from the same page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from html import escape
from statistics import median

from kubeproof.period import admission_html, detections_html, svg
from kubeproof.period.model import (
    ABSENT,
    CriterionReport,
    FindingItem,
    PeriodReport,
    ScanRun,
    pass_rate,
)
from kubeproof.period.tables import Column, number, table

_FRAMEWORK_NAMES = {"soc2": "SOC 2", "cis": "CIS"}
# Findings listed per criterion before pointing at the CSV export for the rest.
FINDINGS_SHOWN = 25

CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-left { content: "kubeproof period report"; font-size: 8pt; color: #777;
    font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt;
    color: #777; font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; } }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10pt;
  line-height: 1.4; color: #1b1b1b; margin: 0 auto; max-width: 190mm; padding: 0 4mm; }
h1 { font-size: 19pt; margin: 0 0 2pt; }
h2 { font-size: 14pt; margin: 18pt 0 6pt; border-bottom: 2px solid #263238; padding-bottom: 2pt; }
h3 { font-size: 11.5pt; margin: 12pt 0 4pt; }
h4 { font-size: 10pt; margin: 9pt 0 3pt; color: #333; }
p { margin: 3pt 0 6pt; }
h2, h3, h4 { break-after: avoid; }
.date { white-space: nowrap; }
.sub { color: #555; margin-top: 0; }
.muted { color: #666; }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0 8pt; table-layout: fixed;
  font-size: 8.5pt; }
th, td { border-bottom: 1px solid #ddd; padding: 2.5pt 4pt; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
th { background: #eceff1; font-weight: bold; font-size: 7.5pt; overflow-wrap: normal;
  hyphens: none; }
td.num { white-space: nowrap; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td.num, th.num { text-align: right; }
.cards { display: flex; flex-wrap: wrap; gap: 6pt; margin: 6pt 0; }
.card { border: 1px solid #cfd8dc; border-radius: 4pt; padding: 4pt 8pt; min-width: 28mm; }
.card b { display: block; font-size: 14pt; }
.badge { display: inline-block; padding: 1pt 6pt; border-radius: 8pt; font-size: 8.5pt;
  color: #fff; font-weight: bold; vertical-align: middle; white-space: nowrap; }
.satisfied { background: #2e7d32; } .exceptions-noted { background: #c62828; }
.incomplete { background: #ef8f00; } .no-evidence { background: #757575; }
.state-open { color: #c62828; font-weight: bold; } .overdue { color: #c62828; font-weight: bold; }
.notice { border-left: 4px solid #ef8f00; background: #fff8e1; padding: 6pt 10pt; margin: 8pt 0; }
.alarm { border-left: 4px solid #c62828; background: #ffebee; padding: 6pt 10pt; margin: 8pt 0; }
.ok { border-left: 4px solid #2e7d32; background: #e8f5e9; padding: 6pt 10pt; margin: 8pt 0; }
section.criterion { break-before: page; }
section.major { break-before: page; }
svg.chart { display: block; margin: 4pt 0 8pt; max-width: 100%; height: auto;
  break-inside: avoid; }
svg.timeline { display: block; width: 100%; height: 10pt; margin-top: 2pt; }
.legend { font-size: 8.5pt; }
.key { margin-right: 10pt; white-space: nowrap; }
.swatch { display: inline-block; width: 9pt; height: 9pt; margin-right: 3pt;
  vertical-align: -1pt; }
"""


def render(report: PeriodReport) -> str:
    title = _title(report)
    body = [_header(report, title), _summary(report)]
    if not report.empty:
        body.extend(_criterion(report, c) for c in report.criteria)
        body.append(_workloads(report))
    if report.admission is not None:
        body.append(admission_html.section(report.admission))
    if report.detections is not None:
        body.append(detections_html.section(report.detections))
    body.append(_appendix(report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def _title(report: PeriodReport) -> str:
    period = report.period
    name = _FRAMEWORK_NAMES.get(report.framework_id, report.framework_id.upper())
    return f"{name} evidence, {period.first_day.isoformat()} to {period.last_day.isoformat()}"


def _header(report: PeriodReport, title: str) -> str:
    scope = f"cluster {report.cluster}" if report.cluster else "every recorded cluster"
    clusters = sorted({s.cluster for s in report.scans})
    seen = ", ".join(clusters) if clusters else "none"
    return (
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="sub">{escape(report.framework_title)}</p>'
        f"<p>Scope: {escape(scope)} (clusters with evidence: {escape(seen)}). "
        f"Period: {_day(report.period.first_day)} 00:00 UTC to "
        f"{_day(report.period.last_day)} 24:00 UTC. "
        f"Generated {escape(_time(report.generated_at))} from the evidence store "
        f'<span class="mono">{escape(report.store)}</span>.</p></header>'
    )


def _summary(report: PeriodReport) -> str:
    if report.empty:
        return (
            "<section><h2>Summary</h2>"
            '<p class="alarm"><b>No evidence in this period.</b> The store holds no recorded '
            "scan between these dates"
            + (f" for cluster {escape(report.cluster)}" if report.cluster else "")
            + ". Nothing in this report evidences any criterion for the period.</p></section>"
        )
    counts = report.counts
    rate = pass_rate(counts)
    open_items = [f for f in report.findings if f.state == "open"]
    overdue = [f for f in report.findings if f.overdue]
    cards = [
        ("scans recorded", str(len(report.scans))),
        (
            "days with evidence",
            f"{len(report.days) - len(report.missing_days)} of {len(report.days)}",
        ),
        ("days without a scan", str(len(report.missing_days))),
        ("results", f"{report.result_count:,}"),
        ("pass rate", "-" if rate is None else f"{rate:.1%}"),
        ("findings open at end", str(len(open_items))),
        ("SLA missed", str(len(overdue))),
    ]
    rows = "".join(
        f"<tr><td>{escape(c.id)}</td><td>{escape(c.title)}</td>"
        f"<td>{_badge(c.verdict)}</td><td class='num'>{sum(c.counts.values()):,}</td>"
        f"<td class='num'>{_rate(pass_rate(c.counts))}</td>"
        f"<td class='num'>{len(c.open_findings)}</td><td class='num'>{len(c.overdue)}</td>"
        f"<td class='num'>{len(c.missing_days)}</td></tr>"
        for c in report.criteria
    )
    return (
        "<section><h2>Summary</h2>"
        + '<div class="cards">'
        + "".join(f'<div class="card"><b>{v}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>"
        + _ledger_line(report)
        + _missing(report.missing_days, "No scan was recorded on")
        + "<h3>Evidence collection by day</h3>"
        + svg.calendar(report.days, {s.day for s in report.scans}, "Evidence collection by day")
        + svg.weekly_chart(report.weekly, "Pass rate per week, all criteria")
        + "<h3>Criteria</h3>"
        + table(
            rows,
            Column("Criterion", 9),
            Column("Title", 29),
            Column("Verdict", 19),
            number("Results", 12),
            number("Pass rate", 9),
            number("Open", 7),
            number("SLA missed", 7),
            number("Days without evidence", 8),
        )
        + "<p class='muted'>Pass rate is passed of judged (pass + fail) results. Verdicts: "
        + "<i>satisfied</i> — every judged result passed and evidence was collected every day; "
        + "<i>exceptions noted</i> — failures or findings open in the period; "
        + "<i>incomplete</i> — days without evidence or results that could not be judged; "
        + "<i>no evidence</i> — no result for the criterion's checks.</p>"
        + "</section>"
    )


def _ledger_line(report: PeriodReport) -> str:
    check = report.ledger
    if check is None:
        return '<p class="notice">The ledger was not verified for this report.</p>'
    if check.intact:
        return (
            f'<p class="ok">Ledger intact: {check.entries} entries verified; head '
            f'<span class="mono">{escape(check.head)}</span>.</p>'
        )
    return (
        f'<p class="alarm"><b>Evidence altered:</b> {escape(check.problem or "")} '
        f"(the first {check.entries} entries verified).</p>"
    )


def _missing(days: Sequence[date], lead: str) -> str:
    if not days:
        return '<p class="ok">Evidence was collected on every day of the period so far.</p>'
    return (
        f'<p class="notice day-gaps">{escape(lead)} {len(days)} '
        f"day{'s' if len(days) != 1 else ''}: {escape(_ranges(days))}.</p>"
    )


def _ranges(days: Sequence[date]) -> str:
    """2026-01-03, 2026-01-07 to 2026-01-09: runs of consecutive days folded."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return ", ".join(
        a.isoformat() if a == b else f"{a.isoformat()} to {b.isoformat()}" for a, b in runs
    )


def _criterion(report: PeriodReport, criterion: CriterionReport) -> str:
    counts = criterion.counts
    population = (
        f"{sum(counts.values()):,} results: {counts['pass']:,} pass, {counts['fail']:,} fail, "
        f"{counts['excepted']:,} excepted, {counts['not_evaluated']:,} not evaluated"
    )
    return (
        f'<section class="criterion" id="criterion-{escape(criterion.id)}">'
        f"<h2>{escape(criterion.id)} {escape(criterion.title)} {_badge(criterion.verdict)}</h2>"
        f'<p class="muted">{escape(criterion.description)}</p>'
        f"<h3>Evidence collected</h3>"
        f"<p>{criterion.scans} scans on {len(criterion.evidence_days)} of {len(report.days)} "
        f"days produced evidence for this criterion. Population: {population}.</p>"
        + _missing(criterion.missing_days, "No evidence for this criterion on")
        + svg.weekly_chart(criterion.weekly, f"{criterion.id}: pass rate per week")
        + _checks_table(criterion)
        + _findings_section(criterion)
        + _exceptions_section(criterion, report.exceptions_available)
        + _gaps_section(criterion)
        + "</section>"
    )


def _checks_table(criterion: CriterionReport) -> str:
    if not criterion.checks:
        return "<p class='notice'>No check in this framework evidences this criterion.</p>"
    rows = "".join(
        f"<tr><td><span class='mono'>{escape(c.check_id)}</span><br>{escape(c.title)}</td>"
        f"<td>{escape(c.severity)}</td><td>{escape(c.rationale)}</td>"
        f"<td class='num'>{c.counts.get('pass', 0):,}</td>"
        f"<td class='num'>{c.counts.get('fail', 0):,}</td>"
        f"<td class='num'>{c.counts.get('excepted', 0):,}</td>"
        f"<td class='num'>{c.counts.get('not_evaluated', 0):,}</td>"
        f"<td class='num'>{c.days}</td></tr>"
        for c in criterion.checks
    )
    return "<h3>Checks that evidence it</h3>" + table(
        rows,
        Column("Check", 24),
        Column("Severity", 10),
        Column("Why it evidences the criterion", 30),
        number("Pass", 7),
        number("Fail", 6),
        number("Excepted", 9),
        number("Not eval.", 8),
        number("Days", 6),
    )


def _findings_section(criterion: CriterionReport) -> str:
    findings = criterion.findings
    closed = criterion.closed_findings
    fixed = [f.remediation_days for f in closed if f.remediation_days is not None]
    typical = f"; median time to remediate {median(fixed):.1f} days" if fixed else ""
    head = (
        f"<h3>Findings</h3><p>{len(findings)} findings were open at some time in the period: "
        f"{len(criterion.open_findings)} still open at its end, {len(closed)} closed"
        f"{typical}. {len(criterion.overdue)} missed their remediation SLA.</p>"
    )
    if not findings:
        return head
    shown = findings[:FINDINGS_SHOWN]
    more = len(findings) - len(shown)
    rows = "".join(_finding_row(f) for f in shown)
    tail = (
        f"<p class='muted'>…and {more} more findings: the CSV export lists every one.</p>"
        if more
        else ""
    )
    return (
        head
        + table(
            rows,
            Column("Check", 18),
            Column("Subject", 25),
            Column("Severity", 9),
            Column("State at end", 10),
            Column("First seen", 12),
            Column("Due (SLA)", 13),
            Column("Closed", 13),
        )
        + tail
    )


def _finding_row(item: FindingItem) -> str:
    due = f"<span class='date'>{_day(item.due.date())}</span>" if item.due else "no SLA"
    if item.overdue:
        due = f"<span class='overdue'>{due}<br>missed</span>"
    closed = "-"
    if item.closed_at is not None and item.remediation_days is not None:
        closed = (
            f"<span class='date'>{_day(item.closed_at.date())}</span><br>"
            f"after {item.remediation_days:.1f} days"
        )
    state = f"<span class='state-{escape(item.state)}'>{escape(item.state)}</span>"
    if item.reopened:
        state += f" <span class='muted'>(reopened {item.reopened} times)</span>"
    return (
        f"<tr><td class='mono'>{escape(item.check_id)}</td>"
        f"<td>{escape(item.subject)}<br><span class='muted'>{escape(item.cluster)}</span></td>"
        f"<td>{escape(item.severity)}</td><td>{state}</td>"
        f"<td class='date'>{_day(item.first_seen.date())}</td><td>{due}</td><td>{closed}</td></tr>"
    )


def _exceptions_section(criterion: CriterionReport, available: bool) -> str:
    if not available or criterion.exceptions is None:
        return (
            "<h3>Exceptions in force</h3><p class='muted'>This evidence store records no "
            "exceptions (risk acceptances).</p>"
        )
    if not criterion.exceptions:
        return "<h3>Exceptions in force</h3><p>None during the period.</p>"
    rows = "".join(
        f"<tr><td>{escape(e.id)}</td><td class='mono'>{escape(', '.join(e.checks))}</td>"
        f"<td>{escape(e.scope)}</td><td>{escape(e.owner)}</td><td>{escape(e.reason)}</td>"
        f"<td class='date'>{_day(e.expires.date()) if e.expires else '-'}"
        f"{'<br>revoked' if e.revoked else ''}</td></tr>"
        for e in criterion.exceptions
    )
    return "<h3>Exceptions in force</h3>" + table(
        rows,
        Column("Id", 9),
        Column("Checks", 18),
        Column("Scope", 20),
        Column("Owner", 13),
        Column("Reason", 28),
        Column("Expires", 12),
    )


def _gaps_section(criterion: CriterionReport) -> str:
    if not criterion.gaps:
        return "<h3>Coverage gaps</h3><p>Every result of this criterion's checks was judged.</p>"
    rows = "".join(
        f"<tr><td class='mono'>{escape(g.check_id)}</td><td>{escape(g.reason)}</td>"
        f"<td class='num'>{g.results:,}</td></tr>"
        for g in criterion.gaps
    )
    return (
        "<h3>Coverage gaps</h3><p>These results could not be judged (not evaluated); they "
        "are not counted as passing.</p>"
        + table(
            rows,
            Column("Check", 28),
            Column("Why it could not be judged", 58),
            number("Results", 14),
        )
    )


def _workloads(report: PeriodReport) -> str:
    total = len(report.days)
    rows = "".join(
        f"<tr><td>{escape(w.subject)}<br><span class='muted'>{escape(w.cluster)}</span></td>"
        f"<td>{svg.timeline(w.segments, total, w.subject)}</td>"
        f"<td class='num'>{w.days_in('fail')}</td><td class='num'>{w.days_in('pass')}</td>"
        f"<td class='num'>{w.days_in('not_evaluated')}</td>"
        f"<td class='num'>{w.days_in(ABSENT)}</td></tr>"
        for w in report.workloads
    )
    first, last = (report.days[0], report.days[-1]) if report.days else (None, None)
    span = f"{_day(first)} to {_day(last)}" if first and last else ""
    return (
        '<section class="major"><h2>Workloads: compliance timeline</h2>'
        f"<p>Each strip runs from {span}; a day's colour is the workload's worst result "
        "that day (failing beats not evaluated beats excepted beats passing).</p>"
        + svg.legend()
        + table(
            rows,
            Column("Workload", 30),
            Column("Timeline", 38),
            number("Days failing", 8),
            number("Days passing", 8),
            number("Days not judged", 8),
            number("Days without evidence", 8),
        )
        + "</section>"
    )


def _appendix(report: PeriodReport) -> str:
    rows = "".join(_scan_row(s) for s in report.scans)
    scans = (
        table(
            rows,
            Column("Scan", 6),
            Column("Started (UTC)", 15),
            Column("Cluster", 11),
            number("Results", 9),
            number("Failed", 9),
            Column("Coverage", 14),
            Column("Ledger entry and hash", 36),
        )
        if report.scans
        else "<p>No scan was recorded in the period.</p>"
    )
    return (
        '<section class="major"><h2>Evidence appendix</h2>'
        "<p>Every scan run of the period with its ledger entry. <code>kubeproof evidence "
        "verify</code> recomputes each entry from the stored scans and results; its result "
        "for the whole store when this report was generated:</p>"
        + _ledger_line(report)
        + scans
        + "</section>"
    )


def _scan_row(scan: ScanRun) -> str:
    coverage = "complete"
    if scan.incomplete_kinds:
        coverage = "incomplete: " + ", ".join(scan.incomplete_kinds)
    if scan.input_errors:
        coverage += f"; {scan.input_errors} input errors"
    entry = (
        f"#{scan.ledger_seq} <span class='mono'>{escape(scan.ledger_hash or '')}</span>"
        if scan.ledger_seq is not None
        else "<span class='overdue'>no ledger entry</span>"
    )
    return (
        f"<tr><td>#{scan.id}</td><td>{escape(_time(scan.started_at))}</td>"
        f"<td>{escape(scan.cluster)}</td><td class='num'>{scan.result_count:,}</td>"
        f"<td class='num'>{scan.totals.get('fail', 0):,}</td><td>{escape(coverage)}</td>"
        f"<td>{entry}</td></tr>"
    )


def _badge(verdict: str) -> str:
    css = verdict.replace(" ", "-")
    return f'<span class="badge {escape(css)}">{escape(verdict)}</span>'


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _day(value: date | None) -> str:
    return value.isoformat() if value else "-"


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")
