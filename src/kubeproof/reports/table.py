"""The terminal report: a per-criterion summary, then what failed, grouped by criterion."""

from __future__ import annotations

import io
import shutil
from collections import defaultdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubeproof.model import Result, Severity, Status
from kubeproof.reports.interface import Renderer
from kubeproof.scan import ScanReport

ROWS_PER_CHECK = 3
MAX_GAP_REASONS = 40
VERDICT_STYLE = {
    "compliant": "green",
    "failing": "bold red",
    "incomplete": "yellow",
    "not_covered": "dim",
}
SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


class TableRenderer(Renderer):
    name = "table"
    interactive = True

    def __init__(self, color: bool = False, width: int | None = None) -> None:
        self.color = color
        self.width = width or max(100, shutil.get_terminal_size((140, 40)).columns)

    def render(self, report: ScanReport) -> str:
        buffer = io.StringIO()
        console = Console(
            file=buffer,
            force_terminal=self.color,
            no_color=not self.color,
            width=self.width,
            highlight=False,
        )
        console.print(_heading(report))
        console.print(_summary_table(report))
        _print_failures(console, report)
        _print_gaps(console, report)
        _print_errors(console, report)
        return buffer.getvalue()


def _heading(report: ScanReport) -> Text:
    totals = report.totals()
    text = Text()
    text.append(f"kubeproof {report.tool_version}", style="bold")
    text.append(f" · {report.framework.title}\n")
    origin = f"{report.files} file(s)" if report.files else ", ".join(report.sources)
    text.append(f"{report.objects} objects from {origin} · {len(report.results)} results: ")
    for status in Status:
        text.append(f"{totals.get(status, 0)} {status.value}  ")
    return text


def _summary_table(report: ScanReport) -> Table:
    table = Table(
        title="Summary by " + _group_noun(report),
        title_justify="left",
        show_lines=False,
        expand=False,
    )
    table.add_column("id", no_wrap=True)
    table.add_column("title")
    table.add_column("verdict", no_wrap=True)
    for status in Status:
        table.add_column(status.value, justify="right", no_wrap=True)
    for group in report.summary():
        table.add_row(
            group.id,
            group.title,
            Text(group.verdict, style=VERDICT_STYLE[group.verdict]),
            *(str(group.counts.get(status, 0)) for status in Status),
        )
    return table


def _group_noun(report: ScanReport) -> str:
    return {"criteria": "SOC 2 criterion", "cis": "CIS control", "pss": "Pod Security control"}[
        report.framework.group_by
    ]


def _print_failures(console: Console, report: ScanReport) -> None:
    """Each failing check once, most severe first, with a few examples: the summary above
    already counts them per criterion, and a check listed under each of its criteria made
    a large scan's terminal report long and slow to lay out."""
    failed_by_check: dict[str, list[Result]] = defaultdict(list)
    for result in report.results:
        if result.status is Status.FAIL:
            failed_by_check[result.check.id].append(result)
    if not failed_by_check:
        return
    groups_of: dict[str, list[str]] = defaultdict(list)
    for group in report.framework.groups:
        for check in group.checks:
            groups_of[check.id].append(group.id)
    specs = {results[0].check.id: results[0].check for results in failed_by_check.values()}
    ordered = sorted(
        specs.values(), key=lambda s: (-s.severity.rank, -len(failed_by_check[s.id]), s.id)
    )
    failing = sum(map(len, failed_by_check.values()))
    text = Text()
    text.append(
        f"Failing checks: {len(ordered)}, {failing} failing results, most severe first "
        f"(the first {ROWS_PER_CHECK} of each; json and csv carry every result)\n",
        style="bold",
    )
    for spec in ordered:
        results = sorted(failed_by_check[spec.id], key=lambda r: str(r.subject))
        text.append(f"\n{spec.severity.value:<9}", style=SEVERITY_STYLE[spec.severity])
        text.append(spec.id, style="bold")
        text.append(f" · {' '.join(groups_of.get(spec.id, ()))} · {len(results)} failing\n")
        for result in results[:ROWS_PER_CHECK]:
            where = _where(result)
            text.append(f"  {result.subject}" + (f" · {where}" if where else "") + "\n")
            text.append(f"    {result.message}\n")
        if len(results) > ROWS_PER_CHECK:
            text.append(f"  … and {len(results) - ROWS_PER_CHECK} more\n")
    # Soft wrap: the terminal folds long lines itself. Laying a large scan's findings out
    # as a table, once under each criterion, took longer than running the checks.
    console.print(text, soft_wrap=True)


def _where(result: Result) -> str:
    if result.location is None:
        return ""
    line = f":{result.location.line}" if result.location.line else ""
    return result.location.file + line


def _print_gaps(console: Console, report: ScanReport) -> None:
    gaps = [r for r in report.results if r.status is Status.NOT_EVALUATED]
    if not gaps:
        return
    reasons: dict[str, int] = defaultdict(int)
    for result in gaps:
        reasons[f"{result.check.id}: {result.reason}"] += 1
    console.print(
        Text(f"Not evaluated ({len(gaps)} results): evidence is incomplete", style="yellow bold")
    )
    for reason, count in sorted(reasons.items())[:MAX_GAP_REASONS]:
        console.print(f"  {count} x {reason}")


def _print_errors(console: Console, report: ScanReport) -> None:
    if not report.errors:
        return
    console.print(
        Text(
            f"Input errors ({len(report.errors)}): these inputs were not scanned", style="red bold"
        )
    )
    for error in report.errors:
        console.print(f"  {error}", markup=False)
