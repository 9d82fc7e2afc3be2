"""CSV: one row per result, whatever its status — the full population an auditor samples
from. RFC 4180 (CRLF line ends, fields quoted when they hold a comma, quote or line
break), a header row, and columns in a fixed order (COLUMNS) that only ever grows at the
end.

Spreadsheets run a cell that starts with = + - @ (or a tab or carriage return) as a
formula, and object names, messages and file names come from the scanned input. Such
cells get a leading apostrophe, as OWASP recommends against CSV injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from kubeproof.model import Result
from kubeproof.reports.interface import Renderer
from kubeproof.reports.json import groups_by_check
from kubeproof.scan import ScanReport

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

Cell = Callable[[Result, ScanReport, list[str]], str]


def _join(values: list[str] | tuple[str, ...]) -> str:
    return "; ".join(values)


def _location_line(result: Result) -> str:
    if result.location is None or result.location.line is None:
        return ""
    return str(result.location.line)


# Column name -> how to fill it. The order is the file's column order: append only.
COLUMNS: dict[str, Cell] = {
    "result_id": lambda r, _, __: r.fingerprint,
    "framework": lambda _, report, __: report.framework.id,
    "scanned_at": lambda _, report, __: report.started_at.isoformat(),
    "check": lambda r, _, __: r.check.id,
    "title": lambda r, _, __: r.check.title,
    "severity": lambda r, _, __: r.check.severity.value,
    "status": lambda r, _, __: r.status.value,
    "subject": lambda r, _, __: str(r.subject),
    "api_version": lambda r, _, __: r.subject.api_version,
    "kind": lambda r, _, __: r.subject.kind,
    "namespace": lambda r, _, __: r.subject.namespace or "",
    "name": lambda r, _, __: r.subject.name,
    "container": lambda r, _, __: r.subject.container or "",
    "message": lambda r, _, __: r.message,
    "reason": lambda r, _, __: r.reason or "",
    "field_path": lambda r, _, __: r.path or "",
    "file": lambda r, _, __: r.location.file if r.location else "",
    "line": lambda r, _, __: _location_line(r),
    "criteria": lambda r, _, __: _join(sorted(r.check.criteria)),
    "groups": lambda _, __, groups: _join(groups),
    "cis": lambda r, _, __: _join(r.check.cis),
    "pss_control": lambda r, _, __: r.check.pss.control if r.check.pss else "",
    "pss_level": lambda r, _, __: r.check.pss.level if r.check.pss else "",
    "nsa": lambda r, _, __: _join(r.check.nsa),
    "remediation": lambda r, _, __: r.check.remediation,
}


def neutralise(cell: str) -> str:
    """A cell a spreadsheet will show as text, never evaluate."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def report_rows(report: ScanReport) -> list[list[str]]:
    groups_of = groups_by_check(report.framework)
    rows = [list(COLUMNS)]
    for result in report.results:
        groups = groups_of.get(result.check.id, [])
        rows.append([neutralise(cell(result, report, groups)) for cell in COLUMNS.values()])
    return rows


class CsvRenderer(Renderer):
    name = "csv"

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO(newline="")
        writer = csv.writer(
            buffer, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
        )
        writer.writerows(report_rows(report))
        return buffer.getvalue()
