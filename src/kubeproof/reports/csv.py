"""CSV: one row per result, whatever its status — the full population an auditor samples
from. RFC 4180 (CRLF line ends, fields quoted when they hold a comma, quote or line
break), a header row, and columns in a fixed order (COLUMNS) that only ever grows at the
end.

Spreadsheets run a cell that starts with = + - @ (or a tab or carriage return) as a
formula, and object names, messages and file names come from the scanned input. Such
cells get a leading apostrophe, as OWASP recommends against CSV injection.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, NamedTuple, TextIO

from kubeproof.collector import collector_paused
from kubeproof.model import CheckSpec, Fingerprints
from kubeproof.reports.interface import Renderer
from kubeproof.reports.json import groups_by_check
from kubeproof.scan import ScanReport

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class CheckCells(NamedTuple):
    spec: CheckSpec
    groups: list[str]


# What a cell depends on. A large scan has hundreds of thousands of results but only ~100
# checks and some thousands of subjects and locations: a cell that depends on one of those
# is made (and quoted) once per check, subject or location, not once per row.
RESULT, SCAN, CHECK, SUBJECT, LOCATION = "result", "scan", "check", "subject", "location"
PARTS = (RESULT, SCAN, CHECK, SUBJECT, LOCATION)


def _join(values: list[str] | tuple[str, ...]) -> str:
    return "; ".join(values)


# Column name -> (what the cell depends on, how to fill it from that). The order is the
# file's column order: append only. A result's id is its fingerprint (made by `Fingerprints`).
COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "result_id": (RESULT, lambda r: r.fingerprint),
    "framework": (SCAN, lambda report: report.framework.id),
    "scanned_at": (SCAN, lambda report: report.started_at.isoformat()),
    "check": (CHECK, lambda c: c.spec.id),
    "title": (CHECK, lambda c: c.spec.title),
    "severity": (CHECK, lambda c: c.spec.severity.value),
    "status": (RESULT, lambda r: r.status.value),
    "subject": (SUBJECT, str),
    "api_version": (SUBJECT, lambda s: s.api_version),
    "kind": (SUBJECT, lambda s: s.kind),
    "namespace": (SUBJECT, lambda s: s.namespace or ""),
    "name": (SUBJECT, lambda s: s.name),
    "container": (SUBJECT, lambda s: s.container or ""),
    "message": (RESULT, lambda r: r.message),
    "reason": (RESULT, lambda r: r.reason or ""),
    "field_path": (RESULT, lambda r: r.path or ""),
    "file": (LOCATION, lambda at: at.file if at else ""),
    "line": (LOCATION, lambda at: "" if at is None or at.line is None else str(at.line)),
    "criteria": (CHECK, lambda c: _join(sorted(c.spec.criteria))),
    "groups": (CHECK, lambda c: _join(c.groups)),
    "cis": (CHECK, lambda c: _join(c.spec.cis)),
    "pss_control": (CHECK, lambda c: c.spec.pss.control if c.spec.pss else ""),
    "pss_level": (CHECK, lambda c: c.spec.pss.level if c.spec.pss else ""),
    "nsa": (CHECK, lambda c: _join(c.spec.nsa)),
    "remediation": (CHECK, lambda c: c.spec.remediation),
}
LINE_END = "\r\n"
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def neutralise(cell: str) -> str:
    """A cell a spreadsheet will show as text, never evaluate."""
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def field(cell: str) -> str:
    """One neutralised cell as RFC 4180 text: quoted (quotes doubled) when it holds a
    comma, a quote or a line break, as the csv module writes it with QUOTE_MINIMAL."""
    cell = neutralise(cell)
    return '"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES.search(cell) else cell


class _Cells:
    """The fields of one part (a check, a subject ...), remembered by key."""

    def __init__(self, part: str) -> None:
        self.fills = [fill for depends, fill in COLUMNS.values() if depends == part]
        self.known: dict[Any, list[str]] = {}

    def of(self, value: Any, key: Any) -> list[str]:
        fields = self.known.get(key)
        if fields is None:
            fields = self.known[key] = [field(fill(value)) for fill in self.fills]
        return fields


def report_lines(report: ScanReport) -> Iterator[str]:
    """The header, then one line per result, each with its line end."""
    yield ",".join(map(field, COLUMNS)) + LINE_END
    groups_of = groups_by_check(report.framework)
    fingerprints = Fingerprints()
    parts = {part: _Cells(part) for part in PARTS}
    checks, subjects, locations = parts[CHECK], parts[SUBJECT], parts[LOCATION]
    result_fills = parts[RESULT].fills[1:]  # the first, the result id, is made faster
    # Where each column's field sits: (part number, position among that part's fields).
    seen = dict.fromkeys(PARTS, 0)
    layout = []
    for depends, _ in COLUMNS.values():
        layout.append((PARTS.index(depends), seen[depends]))
        seen[depends] += 1
    scan_fields = parts[SCAN].of(report, None)
    for result in report.results:
        spec, subject, location = result.check, result.subject, result.location
        # Subjects and locations are shared by many results and live as long as the
        # report: their identity is a safe and cheap key.
        row = (
            [fingerprints.of(result), *(field(fill(result)) for fill in result_fills)],
            scan_fields,
            checks.known.get(spec.id)
            or checks.of(CheckCells(spec, groups_of.get(spec.id, [])), spec.id),
            subjects.of(subject, id(subject)),
            locations.of(location, id(location)),
        )
        yield ",".join([row[part][position] for part, position in layout]) + LINE_END


_BATCH = 100  # lines written at a time: see the JSON report's batches


class CsvRenderer(Renderer):
    name = "csv"

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO(newline="")
        self.write(report, buffer)
        return buffer.getvalue()

    @collector_paused()  # short-lived lines, no cycles
    def write(self, report: ScanReport, out: TextIO) -> None:
        """Streamed, so that a large scan's rows never exist all at once."""
        lines = report_lines(report)
        while batch := "".join(islice(lines, _BATCH)):
            out.write(batch)
