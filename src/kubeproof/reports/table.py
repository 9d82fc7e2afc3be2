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
    """What failed, grouped by criterion (or control), most severe check first, with a few
    examples of each: the terminal is for reading, the json and csv formats carry every
    result. A check evidencing several criteria shows its examples under the first."""
    failed_by_check: dict[str, list[Result]] = defaultdict(list)
    for result in report.results:
        if result.status is Status.FAIL:
            failed_by_check[result.check.id].append(result)
    if not failed_by_check:
        return
    failing = sum(map(len, failed_by_check.values()))
    text = Text()
    text.append(
        f"Failing checks by {_group_noun(report)}: {len(failed_by_check)} checks, {failing} "
        f"failing results (the first {ROWS_PER_CHECK} of each; json and csv carry every "
        "result)\n",
        style="bold",
    )
    shown_under: dict[str, str] = {}  # check id -> the group its examples are under
    for group in report.framework.groups:
        checks = sorted(
            (c.spec for c in group.checks if c.id in failed_by_check),
            key=lambda s: (-s.severity.rank, s.id),
        )
        if not checks:
            continue
        count = sum(len(failed_by_check[spec.id]) for spec in checks)
        name = group.id if group.title == group.id else f"{group.id} · {group.title}"
        text.append(f"\n{name}: {count} failing\n", style="bold")
        for spec in checks:
            results = failed_by_check[spec.id]
            text.append(f"  {spec.severity.value:<9}", style=SEVERITY_STYLE[spec.severity])
            text.append(spec.id, style="bold")
            text.append(f" · {len(results)} failing")
            if spec.id in shown_under:
                text.append(f" (examples under {shown_under[spec.id]})\n")
                continue
            shown_under[spec.id] = group.id
            text.append("\n")
            _append_examples(text, results)
    # Soft wrap: the terminal folds long lines itself. Laid out by rich as a table, a large
    # scan's failures took longer to print than the checks took to run.
    console.print(text, soft_wrap=True)


def _append_examples(text: Text, results: list[Result]) -> None:
    for result in sorted(results, key=lambda r: str(r.subject))[:ROWS_PER_CHECK]:
        where = _where(result)
        text.append(f"    {result.subject}" + (f" · {where}" if where else "") + "\n")
        text.append(f"      {result.message}\n")
    if len(results) > ROWS_PER_CHECK:
        text.append(f"    … and {len(results) - ROWS_PER_CHECK} more\n")


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
