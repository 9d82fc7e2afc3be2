"""`kubeproof frameworks`, `kubeproof checks` and `kubeproof explain`: what is checked, why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from kubeproof import frameworks
from kubeproof.checks import catalogue, find
from kubeproof.cli.errors import EXIT_CLEAN, UsageError
from kubeproof.model import CheckSpec


def register(commands: Any) -> None:
    listing = commands.add_parser("frameworks", help="list the frameworks")
    listing.add_argument("-o", "--format", choices=("table", "json"), default="table")
    listing.set_defaults(run=run_frameworks)

    checks = commands.add_parser("checks", help="list the checks (of one framework)")
    checks.add_argument("-f", "--framework", help="only the checks this framework selects")
    checks.add_argument("-o", "--format", choices=("table", "json"), default="table")
    checks.set_defaults(run=run_checks)

    explain = commands.add_parser("explain", help="what a check judges, why, and how to fix")
    explain.add_argument("check", metavar="CHECK", help="a check id, e.g. pss.privileged")
    explain.add_argument("-o", "--format", choices=("text", "json"), default="text")
    explain.set_defaults(run=run_explain)


def spec_as_dict(spec: CheckSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "title": spec.title,
        "description": spec.description,
        "severity": spec.severity.value,
        "scope": spec.scope,
        "criteria": spec.criteria,
        "references": {
            "cis": list(spec.cis),
            "pss": {"control": spec.pss.control, "level": spec.pss.level} if spec.pss else None,
            "nsa": list(spec.nsa),
        },
        "remediation": spec.remediation,
        "frameworks": [f.id for f in frameworks.available().values() if f.groups_of(spec)],
    }


def run_frameworks(arguments: argparse.Namespace) -> int:
    available = frameworks.available().values()
    if arguments.format == "json":
        print(
            json.dumps(
                [
                    {
                        "id": f.id,
                        "title": f.title,
                        "reference": f.reference,
                        "groups": len(f.groups),
                        "checks": len(f.checks),
                    }
                    for f in available
                ],
                indent=2,
            )
        )
        return EXIT_CLEAN
    table = Table("id", "title", "groups", "checks")
    for framework in available:
        table.add_row(
            framework.id, framework.title, str(len(framework.groups)), str(len(framework.checks))
        )
    Console(highlight=False).print(table)
    return EXIT_CLEAN


def run_checks(arguments: argparse.Namespace) -> int:
    if arguments.framework:
        try:
            chosen = frameworks.load(arguments.framework).checks
        except frameworks.UnknownFramework as error:
            raise UsageError(str(error.args[0])) from None
    else:
        chosen = catalogue()
    if arguments.format == "json":
        print(json.dumps([spec_as_dict(c.spec) for c in chosen], indent=2))
        return EXIT_CLEAN
    table = Table("id", "severity", "criteria", "CIS", "title")
    for check in chosen:
        spec = check.spec
        table.add_row(
            spec.id, spec.severity.value, " ".join(spec.criteria), " ".join(spec.cis), spec.title
        )
    Console(highlight=False).print(table)
    return EXIT_CLEAN


def run_explain(arguments: argparse.Namespace) -> int:
    from kubeproof.images.judge import image_checks, with_image_checks

    check = find(arguments.check)
    # Image checks are not in the catalogue: they join a scan's framework with --images.
    spec = check.spec if check is not None else image_checks().get(arguments.check)
    if spec is None:
        raise UsageError(f"unknown check {arguments.check!r} (`kubeproof checks` lists them)")
    data = spec_as_dict(spec)
    if check is None:
        data["frameworks"] = [
            f.id for f in frameworks.available().values() if with_image_checks(f).groups_of(spec)
        ]
    if arguments.format == "json":
        print(json.dumps(data, indent=2))
        return EXIT_CLEAN
    console = Console(highlight=False)
    console.print(f"[bold]{data['id']}[/bold] — {data['title']}", markup=True)
    console.print(
        f"severity: {data['severity']}   scope: {data['scope']}   "
        f"frameworks: {', '.join(data['frameworks'])}",
        markup=False,
    )
    console.print(f"\n{data['description']}\n", markup=False)
    console.print("[bold]SOC 2 criteria[/bold]")
    for criterion, rationale in spec.criteria.items():
        console.print(f"  {criterion}: {rationale}", markup=False)
    references = data["references"]
    if references["cis"]:
        console.print(
            f"CIS Kubernetes Benchmark v1.12: {', '.join(references['cis'])}", markup=False
        )
    if references["pss"]:
        console.print(
            f"Pod Security Standards: {references['pss']['control']} "
            f"({references['pss']['level']})",
            markup=False,
        )
    for nsa in references["nsa"]:
        console.print(nsa, markup=False)
    console.print(f"\n[bold]Remediation[/bold]\n  {data['remediation']}")
    return EXIT_CLEAN
