"""`kubeproof scan PATH...` or `kubeproof scan --cluster`: scan manifests or a live cluster,
print or write a report."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from kubeproof import frameworks
from kubeproof.cli import database, scan_images
from kubeproof.cli import exceptions as exceptions_cli
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, EXIT_USAGE, UsageError
from kubeproof.cli.inputs import add_input_arguments, load_source
from kubeproof.collector import collector_paused
from kubeproof.engine import parse_pss_version
from kubeproof.model import Severity, Status
from kubeproof.reports import FORMATS, Renderer, renderer_for
from kubeproof.scan import ScanReport, scan_inventory

FAIL_ON = [s.value for s in Severity] + ["none"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "scan",
        help="scan manifests (files, directories, Helm charts, Kustomize, -) or a cluster",
        description="Scan Kubernetes manifests or a live cluster (--cluster) and report, per "
        "criterion, what passes and fails. Exit codes: 0 clean, 1 failures at or above "
        "--fail-on, 2 usage or input errors.",
    )
    add_input_arguments(parser)
    parser.add_argument(
        "-f",
        "--framework",
        default=frameworks.DEFAULT_FRAMEWORK,
        help="soc2 (default), pss-baseline, pss-restricted, cis",
    )
    parser.add_argument(
        "--pss-version",
        default="latest",
        metavar="v1.N|latest",
        help="Pod Security Standards version to judge by (default latest)",
    )
    parser.add_argument(
        "-o", "--format", default="table", choices=FORMATS, help="output format (default table)"
    )
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--fail-on",
        default="info",
        choices=FAIL_ON,
        help="exit 1 when a result fails at or above this severity "
        "(default info: any failure; none: never)",
    )
    database.add_db_argument(parser)
    database.add_signing_key_argument(parser)
    parser.add_argument(
        "--record",
        action="store_true",
        help="record the scan in the evidence store (implied by --db and $KUBEPROOF_DB)",
    )
    exceptions_cli.add_scan_arguments(parser)
    scan_images.add_image_arguments(parser)
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    try:
        framework = frameworks.load(arguments.framework)
        pss_version = parse_pss_version(arguments.pss_version)
    except (frameworks.UnknownFramework, ValueError) as error:
        raise UsageError(str(error.args[0])) from None
    now = datetime.now(UTC)
    declared = exceptions_cli.declared_exceptions(arguments, now)  # a bad file fails fast
    scan_images.check_image_arguments(arguments)
    store = database.recording_store(arguments)  # before scanning: a bad --db fails fast
    # What is read and judged lives until the command ends: the cyclic collector would
    # only walk it again and again while results pile up (a third of the evaluation time on
    # large inputs), so it is paused, and all of it frozen before it resumes. A one-shot
    # command can afford this; a daemon not.
    with collector_paused(freeze=True):
        source = load_source(arguments)
        report = scan_inventory(
            source.inventory,
            framework,
            pss_version=pss_version,
            cluster_name=source.cluster_name,
            errors=source.errors,
            sources=source.names,
            files=source.files,
            baselines=database.approved_baselines(store, source.cluster_name),
        )
        scan_images.judge_images(arguments, report, source)  # --images: before exceptions
        exceptions_cli.apply_to_scan(arguments, report, source.inventory, declared, store, now)
        write_report(report, arguments.format, arguments.output)
        if store is not None:
            database.record(store, report, source)
    for problem in source.errors:
        print(f"kubeproof: input error: {problem}", file=sys.stderr)
    unread = sorted(
        (c for c in source.inventory.coverage.kinds.values() if not c.complete),
        key=lambda c: c.kind,
    )
    if unread:
        # Whatever the format, say what could not be seen: results cannot cover it.
        kinds = ", ".join(f"{c.kind} ({c.state})" for c in unread)
        print(f"kubeproof: warning: not read from the cluster: {kinds}", file=sys.stderr)
    if source.errors:
        return EXIT_USAGE
    if failed_at_or_above(report, arguments.fail_on):
        return EXIT_FAILURES
    return EXIT_CLEAN


def write_report(report: ScanReport, format_name: str, output: str | None) -> None:
    renderer: Renderer
    if format_name == "table":
        from kubeproof.reports.table import TableRenderer  # rich: imported only when used

        renderer = TableRenderer(color=output is None and sys.stdout.isatty())
    else:
        renderer = renderer_for(format_name)()
    if output is None:
        renderer.write(report, sys.stdout)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            renderer.write(report, handle)
    except OSError as error:
        raise UsageError(f"cannot write --output {output}: {error.strerror or error}") from None


def failed_at_or_above(report: ScanReport, threshold: str) -> bool:
    if threshold == "none":
        return False
    floor = Severity(threshold).rank
    return any(r.status is Status.FAIL and r.check.severity.rank >= floor for r in report.results)
