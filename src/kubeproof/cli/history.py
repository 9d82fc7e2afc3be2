"""`kubeproof history SUBJECT` and `kubeproof findings`: what the evidence store remembers
about findings over time, with remediation deadlines by severity."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from kubeproof.cli import attainment as attainment_cli
from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, UsageError

if TYPE_CHECKING:
    from kubeproof.model import Severity
    from kubeproof.store.findings import FindingView, Interval, SubjectHistory

SLA_HELP = (
    "remediation deadlines in days from first seen, by severity, e.g. critical=7,high=30 "
    "(defaults critical=15, high=30, medium=90, low=180; info has none)"
)


def register(commands: Any) -> None:
    history = commands.add_parser(
        "history",
        help="timeline of a subject's findings in the evidence store",
        description="Show which checks failed for SUBJECT, when, for how long, and which "
        "recorded scans opened and closed each finding. SUBJECT is Kind/namespace/name "
        "(Deployment/shop/storefront) or Kind/name for cluster-scoped subjects "
        "(Namespace/shop), optionally with [container]. Exit codes: 0, 2 usage errors.",
    )
    history.add_argument("subject", metavar="SUBJECT")
    _common(history)
    history.set_defaults(run=run_history)

    findings = commands.add_parser(
        "findings",
        help="findings in the evidence store, with remediation due dates",
        description="List findings recorded by `kubeproof scan --db`, with their due dates "
        "(first seen + the SLA of their severity). Exit codes: 0, 2 usage errors.",
    )
    which = findings.add_mutually_exclusive_group()
    which.add_argument("--open", dest="state", action="store_const", const="open")
    which.add_argument("--resolved", dest="state", action="store_const", const="resolved")
    which.add_argument("--deleted", dest="state", action="store_const", const="deleted")
    which.add_argument(
        "--overdue",
        dest="state",
        action="store_const",
        const="overdue",
        help="open findings past their due date",
    )
    _common(findings)
    attainment_cli.add_arguments(findings)
    findings.set_defaults(run=run_findings)


def _common(parser: Any) -> None:
    database.add_db_argument(parser)
    parser.add_argument("--cluster", metavar="NAME", help="only this cluster")
    parser.add_argument("--sla", metavar="SEVERITY=DAYS,...", default="", help=SLA_HELP)
    parser.add_argument(
        "-o", "--format", default="table", choices=["table", "json"], help="output format"
    )


def _sla(arguments: argparse.Namespace) -> dict[Severity, int]:
    from kubeproof.store.findings import SlaError, parse_sla

    try:
        return parse_sla(arguments.sla)
    except SlaError as error:
        raise UsageError(str(error)) from None


def run_findings(arguments: argparse.Namespace) -> int:
    from kubeproof.store.findings import list_findings

    sla = _sla(arguments)
    now = datetime.now(UTC)
    if arguments.attainment:
        attainment_cli.period(arguments)  # a bad date fails before opening the store
    store = database.open_for_reading(arguments)
    try:
        if arguments.attainment:
            return attainment_cli.run(arguments, store, sla, now)
        with store.reading() as session:
            overdue = arguments.state == "overdue"
            views = list_findings(
                session,
                state=None if overdue else arguments.state,
                overdue_only=overdue,
                cluster=arguments.cluster,
                sla=sla,
                now=now,
            )
            if arguments.format == "json":
                _print_json({"findings": [v.as_dict() for v in views]})
            else:
                _print_findings(views, now)
    finally:
        store.close()
    return EXIT_CLEAN


def run_history(arguments: argparse.Namespace) -> int:
    from kubeproof.store.findings import SubjectSyntaxError, parse_subject, subject_history
    from kubeproof.store.transitions import subject_transitions, transition_dict

    try:
        query = parse_subject(arguments.subject)
    except SubjectSyntaxError as error:
        raise UsageError(str(error)) from None
    sla = _sla(arguments)
    now = datetime.now(UTC)
    store = database.open_for_reading(arguments)
    try:
        with store.reading() as session:
            history = subject_history(session, query, cluster=arguments.cluster, sla=sla, now=now)
            moved = [
                transition_dict(row)
                for row in subject_transitions(
                    session, query.kind, query.namespace, query.name, arguments.cluster
                )
            ]
            if arguments.format == "json":
                _print_json({**_history_dict(history, now), "transitions": moved})
            else:
                _print_history(history, arguments.subject, now)
                _print_transitions(moved)
    finally:
        store.close()
    return EXIT_CLEAN


def _history_dict(history: SubjectHistory, now: datetime) -> dict[str, Any]:
    from kubeproof.store.ledger import canonical_time

    query = history.query
    return {
        "subject": {
            "kind": query.kind,
            "namespace": query.namespace or None,
            "name": query.name,
            "container": query.container,
        },
        "seen": [
            {
                "cluster": row.cluster,
                "firstSeen": canonical_time(row.first_seen),
                "lastSeen": canonical_time(row.last_seen),
                "deletedAt": canonical_time(row.deleted_at),
            }
            for row in history.subjects
        ],
        "findings": [
            {**view.as_dict(), "intervals": [i.as_dict(now) for i in stretches]}
            for view, stretches in history.findings
        ],
    }


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _print_findings(views: Sequence[FindingView], now: datetime) -> None:
    if not views:
        print("no findings")
        return
    rows = [
        [
            view.row.severity,
            view.row.state + (" OVERDUE" if view.overdue else ""),
            view.row.check_id,
            view.subject + (f"[{view.row.container}]" if view.row.container else ""),
            view.row.cluster,
            _day(view.row.first_seen),
            _day(view.due) if view.due else "-",
            _day(view.row.closed_at) if view.row.closed_at else "-",
            _age(view, now),
        ]
        for view in views
    ]
    headers = ["SEVERITY", "STATE", "CHECK", "SUBJECT", "CLUSTER", "FIRST SEEN", "DUE", "CLOSED"]
    _print_table([*headers, "OPEN FOR"], rows)
    opened = sum(1 for v in views if v.row.state == "open")
    overdue = sum(1 for v in views if v.overdue and v.row.state == "open")
    print(f"\n{len(views)} findings: {opened} open, {overdue} overdue")


def _print_history(history: SubjectHistory, text: str, now: datetime) -> None:
    if not history.subjects and not history.findings:
        print(f"{text}: not in the evidence store")
        return
    for row in history.subjects:
        gone = f", deleted {_time(row.deleted_at)}" if row.deleted_at else ""
        print(
            f"{text} in {row.cluster}: first seen {_time(row.first_seen)}, "
            f"last seen {_time(row.last_seen)}{gone}"
        )
    if not history.findings:
        print("no findings: every recorded check passed or could not be judged")
        return
    print()
    rows: list[list[str]] = []
    for view, stretches in history.findings:
        container = f"[{view.row.container}]" if view.row.container else ""
        for index, stretch in enumerate(stretches or [None]):
            rows.append(
                [
                    view.row.check_id + container if index == 0 else "",
                    view.row.severity if index == 0 else "",
                    *_stretch_cells(stretch, now),
                    _due_cell(view) if index == 0 else "",
                ]
            )
    headers = ["CHECK", "SEVERITY", "FAILING FROM", "UNTIL", "FOR", "CLOSED AS", "DUE"]
    _print_table(headers, rows)


def _print_transitions(moved: list[dict[str, Any]]) -> None:
    """What `kubeproof agent` saw change, and who changed it when audit data showed it."""
    if not moved:
        return
    print("\ntransitions recorded by kubeproof agent:")
    rows = []
    for item in moved:
        actor = item["changedBy"]
        who = "-"
        if actor is not None:
            where = f" from {actor['sourceIP']}" if actor["sourceIP"] else ""
            who = f"{actor['user']} ({actor['verb']}{where})"
        observed = item["observedAt"][:19].replace("T", " ")
        rows.append([observed, item["transition"], item["check"], item["cause"], who])
    _print_table(["OBSERVED (UTC)", "TRANSITION", "CHECK", "CAUSE", "CHANGED BY"], rows)


def _stretch_cells(stretch: Interval | None, now: datetime) -> list[str]:
    if stretch is None:
        return ["-", "-", "-", "-"]
    opened = f"{_time(stretch.opened_at)} (scan #{stretch.opened_scan})"
    if stretch.closed_at is None:
        return [opened, "still failing", _duration(stretch.duration(now)), "-"]
    closed = f"{_time(stretch.closed_at)} (scan #{stretch.closed_scan})"
    return [opened, closed, _duration(stretch.duration(now)), stretch.closed_as or "-"]


def _due_cell(view: FindingView) -> str:
    if view.due is None:
        return "-"
    return _day(view.due) + (" OVERDUE" if view.overdue else "")


def _age(view: FindingView, now: datetime) -> str:
    from kubeproof.store.ledger import utc

    end = utc(view.row.closed_at) if view.row.closed_at else now
    return _duration(end - utc(view.row.first_seen))


def _time(value: datetime | None) -> str:
    """UTC, whatever time zone the database session hands times back in."""
    from kubeproof.store.ledger import utc

    return utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _day(value: datetime | None) -> str:
    from kubeproof.store.ledger import utc

    return utc(value).strftime("%Y-%m-%d") if value else "-"


def _duration(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {rest // 60}m"
    return f"{rest // 60}m"


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    for line in [headers, *rows]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)
            ).rstrip()
        )
