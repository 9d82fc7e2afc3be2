"""Full populations for sampling: every result, every finding and every scan run of the
period, as CSV files in a zip (PATH ending in .zip) or a directory. Results are streamed
from the database in batches, so a year of evidence never sits in memory at once.

Cells that a spreadsheet would run as a formula get a leading apostrophe (see
kubeproof.reports.csv)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from kubeproof.period.admission import DECISION_COLUMNS, iter_decisions
from kubeproof.period.detections import DETECTION_COLUMNS, iter_detections
from kubeproof.period.model import PeriodReport, pass_rate, time_text
from kubeproof.period.query import RESULT_COLUMNS, Options, iter_results
from kubeproof.reports.csv import neutralise

RESULTS, FINDINGS, SCANS, CRITERIA = "results.csv", "findings.csv", "scan_runs.csv", "criteria.csv"
DECISIONS = "admission_decisions.csv"  # every admission decision of the period (CC6.8)
DETECTIONS = "detections.csv"  # every audit detection and Falco alert of the period (CC7.2)
FINDING_COLUMNS = (
    "finding_id",
    "cluster",
    "check_id",
    "severity",
    "kind",
    "namespace",
    "name",
    "container",
    "state_at_period_end",
    "first_seen",
    "closed_at",
    "due",
    "sla_missed",
    "remediation_days",
    "reopened",
    "message",
)
SCAN_COLUMNS = (
    "scan_id",
    "cluster",
    "framework",
    "started_at",
    "finished_at",
    "tool_version",
    "catalogue_digest",
    "results",
    "pass",
    "fail",
    "excepted",
    "not_evaluated",
    "input_errors",
    "incomplete_kinds",
    "ledger_seq",
    "ledger_hash",
)
CRITERION_COLUMNS = (
    "criterion",
    "title",
    "verdict",
    "checks",
    "scans",
    "evidence_days",
    "missing_days",
    "pass",
    "fail",
    "excepted",
    "not_evaluated",
    "pass_rate",
    "findings",
    "open_at_end",
    "sla_missed",
)


def write(report: PeriodReport, session: Session, options: Options, output: Path) -> int:
    """Write the CSV files; returns the number of result rows written."""
    tables: list[tuple[str, Sequence[str], Iterable[Sequence[Any]]]] = [
        (SCANS, SCAN_COLUMNS, _scan_rows(report)),
        (CRITERIA, CRITERION_COLUMNS, _criterion_rows(report)),
        (FINDINGS, FINDING_COLUMNS, _finding_rows(report)),
        (DECISIONS, DECISION_COLUMNS, iter_decisions(session, options.period, options.cluster)),
        (DETECTIONS, DETECTION_COLUMNS, iter_detections(session, options.period, options.cluster)),
        (RESULTS, RESULT_COLUMNS, iter_results(session, options)),
    ]
    written = 0
    if output.suffix.lower() == ".zip":
        stamp = report.generated_at.timetuple()[:6]
        with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, header, rows in tables:
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                with (
                    archive.open(info, "w", force_zip64=True) as raw,
                    io.TextIOWrapper(raw, encoding="utf-8", newline="") as stream,
                ):
                    written = _write(stream, header, rows)
        return written
    output.mkdir(parents=True, exist_ok=True)
    for name, header, rows in tables:
        with (output / name).open("w", encoding="utf-8", newline="") as stream:
            written = _write(stream, header, rows)
    return written  # the last table is the results


def _write(stream: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    writer = csv.writer(stream)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise(_cell(value)) for value in row])
        count += 1
    stream.flush()
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scan_rows(report: PeriodReport) -> Iterator[Sequence[Any]]:
    for scan in report.scans:
        yield (
            scan.id,
            scan.cluster,
            scan.framework,
            time_text(scan.started_at),
            time_text(scan.finished_at),
            scan.tool_version,
            scan.catalogue_digest,
            scan.result_count,
            scan.totals.get("pass", 0),
            scan.totals.get("fail", 0),
            scan.totals.get("excepted", 0),
            scan.totals.get("not_evaluated", 0),
            scan.input_errors,
            "; ".join(scan.incomplete_kinds),
            scan.ledger_seq,
            scan.ledger_hash,
        )


def _finding_rows(report: PeriodReport) -> Iterator[Sequence[Any]]:
    for item in report.findings:
        days = item.remediation_days
        yield (
            item.id,
            item.cluster,
            item.check_id,
            item.severity,
            item.kind,
            item.namespace,
            item.name,
            item.container,
            item.state,
            time_text(item.first_seen),
            time_text(item.closed_at),
            time_text(item.due),
            item.overdue,
            None if days is None else f"{days:.2f}",
            item.reopened,
            item.message,
        )


def _criterion_rows(report: PeriodReport) -> Iterator[Sequence[Any]]:
    for criterion in report.criteria:
        counts = criterion.counts
        rate = pass_rate(counts)
        yield (
            criterion.id,
            criterion.title,
            criterion.verdict,
            "; ".join(c.check_id for c in criterion.checks),
            criterion.scans,
            len(criterion.evidence_days),
            "; ".join(d.isoformat() for d in criterion.missing_days),
            counts["pass"],
            counts["fail"],
            counts["excepted"],
            counts["not_evaluated"],
            None if rate is None else f"{rate:.4f}",
            len(criterion.findings),
            len(criterion.open_findings),
            len(criterion.overdue),
        )
