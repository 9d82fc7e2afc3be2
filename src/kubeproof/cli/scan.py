"""`kubeproof scan PATH...`: scan manifests, print or write a report."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Any

from kubeproof import frameworks
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, EXIT_USAGE, UsageError
from kubeproof.engine import parse_pss_version
from kubeproof.inventory import Inventory
from kubeproof.model import Severity, Status
from kubeproof.reports import FORMATS, Renderer, renderers
from kubeproof.reports.table import TableRenderer
from kubeproof.scan import ScanReport, scan_inventory
from kubeproof.sources.files import RenderOptions, load_paths

FAIL_ON = [s.value for s in Severity] + ["none"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "scan",
        help="scan manifests (files, directories, Helm charts, Kustomize, -)",
        description="Scan Kubernetes manifests and report, per criterion, what passes and "
        "fails. Exit codes: 0 clean, 1 failures at or above --fail-on, 2 usage or input errors.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="YAML/JSON file, directory (recursive), Helm chart, "
        "Kustomize directory, or - for stdin",
    )
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
    parser.add_argument(
        "--values",
        action="append",
        default=[],
        metavar="FILE",
        help="Helm values file (repeatable)",
    )
    parser.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Helm --set value (repeatable)",
    )
    parser.add_argument("--release-name", default="release", help="Helm release name")
    parser.add_argument("--namespace", help="namespace passed to helm template")
    parser.set_defaults(run=run)


def run(arguments: argparse.Namespace) -> int:
    try:
        framework = frameworks.load(arguments.framework)
        pss_version = parse_pss_version(arguments.pss_version)
    except (frameworks.UnknownFramework, ValueError) as error:
        raise UsageError(str(error.args[0])) from None
    loaded = load_paths(
        arguments.paths,
        RenderOptions(
            values=arguments.values,
            set_values=arguments.set_values,
            release=arguments.release_name,
            namespace=arguments.namespace,
        ),
    )
    # The parsed objects live until the process ends: keep the cyclic garbage collector
    # from walking millions of them again and again while results pile up (a third of the
    # evaluation time on large inputs). A one-shot command can afford this; a daemon not.
    gc.freeze()
    report = scan_inventory(
        Inventory(loaded.objects),
        framework,
        pss_version=pss_version,
        errors=loaded.errors,
        sources=list(arguments.paths),
        files=loaded.files,
    )
    write_report(report, arguments.format, arguments.output)
    for problem in loaded.errors:
        print(f"kubeproof: input error: {problem}", file=sys.stderr)
    if loaded.errors:
        return EXIT_USAGE
    if failed_at_or_above(report, arguments.fail_on):
        return EXIT_FAILURES
    return EXIT_CLEAN


def write_report(report: ScanReport, format_name: str, output: str | None) -> None:
    renderer: Renderer
    if format_name == "table":
        renderer = TableRenderer(color=output is None and sys.stdout.isatty())
    else:
        renderer = renderers()[format_name]()
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
