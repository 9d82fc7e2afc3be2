"""`kubeproof report`: an auditor's view of a period (a SOC 2 Type II window) from the
evidence store, as HTML, PDF, CSV, JSON or OSCAL assessment results."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, UsageError
from kubeproof.cli.history import SLA_HELP

if TYPE_CHECKING:
    from kubeproof.period.model import Period, PeriodReport
    from kubeproof.period.query import Options

FORMATS = ("html", "pdf", "csv", "json", "oscal")


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="period report from the evidence store (HTML, PDF, CSV, JSON, OSCAL)",
        description="Report what the evidence store shows for a period, per criterion "
        "(checks, collection days and gaps, pass rate per week, findings against their SLA, "
        "exceptions, coverage gaps) and per workload, with the scan runs and the ledger's "
        "verification as an appendix. Dates are whole UTC days, both included. Exit codes: "
        "0 written (also for a period without evidence: the report says so), 2 usage or "
        "database errors.",
    )
    report.add_argument("--from", dest="first", metavar="DATE", required=True, help="YYYY-MM-DD")
    report.add_argument("--to", dest="last", metavar="DATE", required=True, help="YYYY-MM-DD")
    report.add_argument("--format", default="html", choices=FORMATS, help="output format")
    report.add_argument(
        "--output",
        metavar="PATH",
        required=True,
        help="file to write; for csv a .zip file or a directory of CSV files",
    )
    database.add_db_argument(report)
    report.add_argument("--cluster", metavar="NAME", help="only this cluster")
    report.add_argument("--framework", default="soc2", help="framework that groups the checks")
    report.add_argument("--sla", metavar="SEVERITY=DAYS,...", default="", help=SLA_HELP)
    report.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip recomputing the ledger (the appendix then says it was not verified)",
    )
    report.set_defaults(run=run_report)


def _period(arguments: argparse.Namespace) -> Period:
    from kubeproof.period.model import PeriodError, parse_period

    try:
        return parse_period(arguments.first, arguments.last)
    except PeriodError as error:
        raise UsageError(str(error)) from None


def _options(arguments: argparse.Namespace, period: Period, store_url: str) -> Options:
    from kubeproof import frameworks
    from kubeproof.images.judge import with_image_checks
    from kubeproof.period.query import Options
    from kubeproof.store.findings import SlaError, parse_sla

    try:
        # Image checks join the framework so that periods scanned with --images show them
        # under their criteria (and periods without say there was no such evidence).
        framework = with_image_checks(frameworks.load(arguments.framework))
    except frameworks.UnknownFramework as error:
        raise UsageError(str(error.args[0])) from None
    try:
        sla = parse_sla(arguments.sla)
    except SlaError as error:
        raise UsageError(str(error)) from None
    return Options(
        period=period,
        framework=framework,
        cluster=arguments.cluster,
        sla=sla,
        verify=arguments.verify,
        store=store_url,
    )


def _check_output(output: Path, format_: str) -> None:
    if format_ == "csv" and output.suffix.lower() != ".zip":
        if output.exists() and not output.is_dir():
            raise UsageError(
                f"--output {output}: exists and is not a directory (csv writes a "
                "directory of files, or a .zip)"
            )
        return
    if output.is_dir():
        raise UsageError(f"--output {output} is a directory: name a file")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: directory {output.parent} does not exist")


def run_report(arguments: argparse.Namespace) -> int:
    from sqlalchemy import exc

    from kubeproof.period.query import load_report
    from kubeproof.store.db import describe

    period = _period(arguments)
    output = Path(arguments.output)
    _check_output(output, arguments.format)
    store = database.open_for_reading(arguments)
    try:
        options = _options(arguments, period, store.url)
        with store.reading() as session:
            report = load_report(session, options, datetime.now(UTC))
            rows = _write(arguments.format, report, session, options, output)
    except exc.DBAPIError as error:
        raise UsageError(f"cannot read {store.url}: {describe(error)}") from None
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from None
    finally:
        store.close()
    _summary(report, arguments.format, output, rows)
    return EXIT_CLEAN


def _write(
    format_: str, report: PeriodReport, session: Any, options: Options, output: Path
) -> int | None:
    from kubeproof.period import csv, html, oscal
    from kubeproof.period.model import as_dict

    if format_ == "csv":
        return csv.write(report, session, options, output)
    if format_ == "json":
        output.write_bytes(orjson.dumps(as_dict(report), option=orjson.OPT_INDENT_2) + b"\n")
    elif format_ == "oscal":
        output.write_bytes(orjson.dumps(oscal.render(report), option=orjson.OPT_INDENT_2) + b"\n")
    elif format_ == "pdf":
        from kubeproof.period import pdf

        try:
            pdf.write(html.render(report), output)
        except pdf.PdfUnavailable as error:
            raise UsageError(str(error)) from None
    else:
        output.write_text(html.render(report), encoding="utf-8")
    return None


def _summary(report: PeriodReport, format_: str, output: Path, rows: int | None) -> None:
    period = f"{report.period.first_day.isoformat()} to {report.period.last_day.isoformat()}"
    ledger = ""
    if report.ledger is not None:
        ledger = "; ledger intact" if report.ledger.intact else "; LEDGER ALTERED"
    if report.empty:
        # An altered ledger can be why a period looks empty: say so here too.
        held = _besides_scans(report)
        contents = f"the {format_} report of {held}" if held else f"an empty {format_} report"
        print(
            f"kubeproof: no scans recorded from {period}: wrote {contents} to {output}{ledger}",
            file=sys.stderr,
        )
        return
    written = f" ({rows} result rows)" if rows is not None else ""
    print(
        f"kubeproof: wrote the {format_} report for {period} to {output}{written}: "
        f"{len(report.scans)} scans, {report.result_count} results, "
        f"{len(report.missing_days)} days without a scan{ledger}",
        file=sys.stderr,
    )


def _besides_scans(report: PeriodReport) -> str:
    """What the period holds other than scans ("3 admission decisions and 2 audit
    detections"); "" when nothing: a report without scans is not empty then."""
    held = []
    if report.admission is not None and not report.admission.empty:
        held.append(f"{report.admission.decisions} admission decisions")
    detections = report.detections
    if detections is not None and not detections.empty:
        held.append(f"{detections.detections} audit detections")
    if detections is not None and detections.monitored:
        covered = len(detections.days) - len(detections.unmonitored_days)
        held.append(f"monitoring heartbeats on {covered} days")
    return " and ".join([", ".join(held[:-1]), held[-1]] if len(held) > 2 else held)
