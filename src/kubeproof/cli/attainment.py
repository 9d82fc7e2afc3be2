"""`kubeproof findings --attainment --from DATE --to DATE`: remediation SLA attainment per
severity over a period (see kubeproof.store.attainment for the definitions)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from kubeproof.cli.errors import EXIT_CLEAN, UsageError
from kubeproof.risk_acceptance import ExceptionSpecError, parse_date

if TYPE_CHECKING:
    from kubeproof.model import Severity
    from kubeproof.store.attainment import Attainment
    from kubeproof.store.db import Store


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--attainment",
        action="store_true",
        help="SLA attainment per severity for the findings due between --from and --to",
    )
    parser.add_argument(
        "--from", dest="period_from", metavar="YYYY-MM-DD", help="first day of the period"
    )
    parser.add_argument(
        "--to", dest="period_to", metavar="YYYY-MM-DD", help="last day of the period (included)"
    )


def period(arguments: argparse.Namespace) -> tuple[datetime, datetime]:
    """[from 00:00 UTC, the day after `to` 00:00 UTC)."""
    if not arguments.period_from or not arguments.period_to:
        raise UsageError("--attainment needs --from YYYY-MM-DD and --to YYYY-MM-DD")
    try:
        first = parse_date(arguments.period_from, "--from")
        last = parse_date(arguments.period_to, "--to")
    except ExceptionSpecError as error:
        raise UsageError(str(error)) from None
    if last < first:
        raise UsageError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    return _midnight(first), _midnight(last) + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def run(
    arguments: argparse.Namespace, store: Store, sla: dict[Severity, int], now: datetime
) -> int:
    from kubeproof.store.attainment import attainment

    start, end = period(arguments)
    with store.reading() as session:
        figures = attainment(
            session, start=start, end=end, now=now, sla=sla, cluster=arguments.cluster
        )
    if arguments.format == "json":
        data = figures.as_dict()
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_CLEAN
    last = (end - timedelta(days=1)).strftime("%Y-%m-%d")
    print(f"SLA attainment for findings due {start.strftime('%Y-%m-%d')} to {last} (UTC)")
    headers = ["SEVERITY", "SLA", "DUE", "ON TIME", "LATE", "OVERDUE", "PENDING", "EXCEPTED"]
    rows = [_cells(a) for a in [*figures.by_severity, figures.total]]
    table = [[*headers, "ATTAINMENT", "MEDIAN TTR"], *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print("\nAn excepted finding's SLA clock keeps running: accepting a risk is not fixing it.")
    return EXIT_CLEAN


def _cells(figures: Attainment) -> list[str]:
    percent = figures.percent
    median = figures.median_time_to_remediate
    return [
        figures.severity.value if figures.severity else "total",
        f"{figures.sla_days}d" if figures.sla_days is not None else "-",
        str(figures.due),
        str(figures.on_time),
        str(figures.late),
        str(figures.overdue),
        str(figures.pending),
        str(figures.excepted),
        "-" if percent is None else f"{percent:.1f}%",
        "-" if median is None else _duration(median),
    ]


def _duration(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours = rest // 3600
    return f"{days}d {hours}h" if days else f"{hours}h {(rest % 3600) // 60}m"
