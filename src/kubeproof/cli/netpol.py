"""`kubeproof netpol matrix`: which workloads the NetworkPolicies let talk to which.

Reads manifests or a cluster exactly like `kubeproof scan`, and prints a reachability
matrix: rows are sources, columns destinations, plus an `external` row and column for
addresses outside the cluster (ipBlock peers). See docs/netpol.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

from kubeproof.analysis.reachability import (
    EXTERNAL,
    Matrix,
    Reachability,
    matrix,
    parse_port_query,
)
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_USAGE, UsageError
from kubeproof.cli.inputs import add_input_arguments, load_source

MATRIX_FORMATS = ("table", "json", "csv")
DENIED = "-"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "netpol",
        help="NetworkPolicy analysis: which workloads may reach which",
        description="Analyse NetworkPolicies as a conforming network plugin applies them.",
    )
    actions = parser.add_subparsers(dest="netpol_command", metavar="ACTION", required=True)
    matrix_parser = actions.add_parser(
        "matrix",
        help="workload-to-workload reachability matrix, with traffic from and to outside",
        description="Print which workloads may open connections to which, and on which "
        "ports: rows are sources, columns destinations, and `external` stands for "
        "addresses outside the cluster. Exit codes: 0 printed, 2 usage or input errors.",
    )
    add_input_arguments(matrix_parser)
    matrix_parser.add_argument(
        "-n", "--namespace", metavar="NAMESPACE", help="only the workloads of this namespace"
    )
    matrix_parser.add_argument(
        "-o",
        "--format",
        default="table",
        choices=MATRIX_FORMATS,
        help="output format (default table)",
    )
    matrix_parser.add_argument(
        "--port",
        metavar="PORT[/PROTO]",
        help="judge one port (e.g. 443/TCP, 53/UDP; TCP when no protocol is given): "
        "cells say allowed or denied",
    )
    matrix_parser.set_defaults(run=run_matrix)


def run_matrix(arguments: argparse.Namespace) -> int:
    port = None
    if arguments.port is not None:
        try:
            port = parse_port_query(arguments.port)
        except ValueError as error:
            raise UsageError(f"--port {error}") from None
    source = load_source(arguments)
    for problem in source.errors:
        print(f"kubeproof: input error: {problem}", file=sys.stderr)
    gap = source.inventory.coverage.gap(("NetworkPolicy", "Namespace", "Pod"))
    if gap is not None:
        # Unread policies or namespaces change what is reachable: never print a matrix
        # as if it were complete.
        print(f"kubeproof: warning: matrix incomplete, not read: {gap}", file=sys.stderr)
    analysis = Reachability(source.inventory)
    unlabelled = analysis.namespaces_without_object()
    if unlabelled:
        print(
            "kubeproof: note: no Namespace object for "
            f"{', '.join(unlabelled)}: only their kubernetes.io/metadata.name label is "
            "known, so namespaceSelectors on other labels do not match them here",
            file=sys.stderr,
        )
    if arguments.namespace is not None and arguments.namespace not in analysis.namespaces:
        raise UsageError(f"--namespace {arguments.namespace}: no such namespace in the input")
    result = matrix(analysis, arguments.namespace, port)
    writers = {"table": write_table, "json": write_json, "csv": write_csv}
    writers[arguments.format](result, sys.stdout, gap, unlabelled)
    return EXIT_USAGE if source.errors else EXIT_CLEAN


def cell_text(ports: list[str], allowed: bool, one_port: bool) -> str:
    if one_port:
        return "allowed" if allowed else "denied"
    return " ".join(ports) if allowed else DENIED


def as_json(
    result: Matrix, incomplete: str | None = None, unlabelled: list[str] | None = None
) -> dict[str, Any]:
    return {
        "namespace": result.namespace,
        "port": f"{result.port[1]}/{result.port[0]}" if result.port else None,
        "incomplete": incomplete,
        "namespaces_without_object": unlabelled or [],
        "workloads": result.labels[:-1],
        "not_governed": result.not_governed,
        "isolation": [
            {
                "workload": i.workload,
                "ingress": i.ingress,
                "egress": i.egress,
                "from_outside": i.from_outside,
                "to_outside": i.to_outside,
            }
            for i in result.isolation
        ],
        "matrix": [
            {
                "source": row[0].source,
                "destinations": [
                    {
                        "destination": cell.destination,
                        "allowed": cell.allowed,
                        "ports": cell.ports.labels(),
                    }
                    for cell in row
                ],
            }
            for row in result.cells
        ],
    }


def write_json(
    result: Matrix, out: TextIO, incomplete: str | None = None, unlabelled: list[str] | None = None
) -> None:
    json.dump(as_json(result, incomplete, unlabelled), out, indent=2)
    out.write("\n")


def write_csv(
    result: Matrix, out: TextIO, incomplete: str | None = None, unlabelled: list[str] | None = None
) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["source \\ destination", *result.labels])
    one_port = result.port is not None
    for label, row in zip(result.labels, result.cells, strict=True):
        writer.writerow([label, *(cell_text(c.ports.labels(), c.allowed, one_port) for c in row)])


def write_table(
    result: Matrix, out: TextIO, incomplete: str | None = None, unlabelled: list[str] | None = None
) -> None:
    """Columns are numbered, with a legend: subjects are too long for column headers."""
    one_port = result.port is not None
    keys = [str(i + 1) for i in range(len(result.labels) - 1)] + ["ext"]
    scope = f"namespace {result.namespace}" if result.namespace else "all namespaces"
    what = f"port {result.port[1]}/{result.port[0]}" if result.port else "allowed ports"
    out.write(f"Reachability, {scope}, {what} (rows: source, columns: destination)\n\n")
    width = max(len(label) for label in result.labels)
    for key, isolated in zip(keys, result.isolation, strict=False):
        out.write(
            f"  {key:>3}  {isolated.workload.ljust(width)}  "
            f"ingress {isolated.ingress}, egress {isolated.egress}\n"
        )
    out.write(f"  ext  {EXTERNAL}: addresses outside the cluster (ipBlock peers)\n")
    out.write("\n")
    grid = [["", *keys]]
    for key, row in zip(keys, result.cells, strict=True):
        grid.append([key, *(cell_text(c.ports.labels(), c.allowed, one_port) for c in row)])
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    for line in grid:
        cells = (text.ljust(width) for text, width in zip(line, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")
    if incomplete:
        out.write(f"\nIncomplete: not read: {incomplete}\n")
