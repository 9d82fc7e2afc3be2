"""`kubeproof image scan REF`, `kubeproof image sbom REF` and `kubeproof image rescan`: the
OS and language packages of a container image (OCI layout, docker-archive or registry),
their known vulnerabilities from the local OSV database, a CycloneDX SBOM, and the
vulnerabilities newly disclosed for images already scanned. Exit codes: 0 no known
vulnerability (other than ones a --vex document excepts) and every package checked
(rescan: nothing newly disclosed that is not excepted), 1 vulnerabilities found or
packages that could not be checked (rescan: new disclosures), 2 usage or input errors."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, UsageError
from kubeproof.cli.vex_options import add_vex_argument, vex_index
from kubeproof.cli.vulndb import add_vulndb_argument, age_text, status_as_dict, vulndb_path
from kubeproof.images.cached import ScannedImage, scan_image
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Platform
from kubeproof.model import Status
from kubeproof.vulndb.cyclonedx import sbom_with_vulnerabilities
from kubeproof.vulndb.match import Finding, MatchReport, match_packages
from kubeproof.vulndb.rescan import RescanReport, record_scan, rescan
from kubeproof.vulndb.store import SourceStatus, VulnDb, VulnDbError
from kubeproof.vulndb.vex import Judged, judge_findings

STALE_AFTER_DAYS = 7


def _image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reference",
        metavar="REF",
        help="oci:PATH[:TAG], docker-archive:PATH, or REGISTRY/REPO[:TAG][@DIGEST]",
    )
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="platform to read from a multi-arch image (default linux/amd64)",
    )
    parser.add_argument(
        "--registry-config",
        metavar="FILE",
        type=Path,
        help="docker config.json with registry credentials (default "
        "$DOCKER_CONFIG/config.json, else ~/.docker/config.json)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="read the layers even when the SBOM cache has this digest",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="registry timeout per request (default 30)",
    )


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "image",
        help="container images: packages, vulnerabilities, SBOM",
        description="Read a container image without a container runtime. Exit codes: 0 no "
        "known vulnerability, 1 vulnerabilities or unchecked packages, 2 usage or input errors.",
    )
    actions = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    scan = actions.add_parser("scan", help="known vulnerabilities of an image's packages")
    _image_arguments(scan)
    scan.add_argument("-o", "--format", choices=("table", "json"), default="table")
    scan.add_argument(
        "--sbom",
        metavar="FILE",
        type=Path,
        help="also write the image's CycloneDX 1.6 SBOM, with its vulnerabilities, to FILE",
    )
    scan.add_argument(
        "--offline",
        action="store_true",
        help="no network: registry images only from the SBOM cache by digest",
    )
    add_vex_argument(scan)
    add_vulndb_argument(scan)
    scan.set_defaults(run=run_scan)
    sbom = actions.add_parser("sbom", help="CycloneDX 1.6 SBOM of an image")
    _image_arguments(sbom)
    sbom.add_argument("--output", metavar="FILE", type=Path, help="write to FILE")
    sbom.add_argument("--offline", action="store_true", help=argparse.SUPPRESS)
    sbom.set_defaults(run=run_sbom)
    again = actions.add_parser(
        "rescan",
        help="re-match every cached SBOM and report newly disclosed vulnerabilities",
        description="Re-match the SBOM of every image scanned before (the SBOM cache) "
        "against the current vulnerability database, without pulling any image, and list "
        "advisories an unchanged image matches that its previous match did not. Exit codes: "
        "0 nothing newly disclosed, 1 new disclosures, 2 usage or input errors.",
    )
    again.add_argument(
        "--since-update",
        action="store_true",
        help="only images not matched since the database was last updated",
    )
    again.add_argument("-o", "--format", choices=("table", "json"), default="table")
    add_vex_argument(again)
    add_vulndb_argument(again)
    again.set_defaults(run=run_rescan)


def _scan(arguments: argparse.Namespace) -> ScannedImage:
    try:
        platform = Platform.parse(arguments.platform) if arguments.platform else None
    except ValueError as error:
        raise UsageError(f"--platform: {error}") from None
    try:
        return scan_image(
            arguments.reference,
            platform,
            arguments.registry_config,
            arguments.timeout,
            use_cache=not arguments.no_cache,
            offline=arguments.offline,
        )
    except ImageError as error:
        raise UsageError(str(error)) from None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def run_sbom(arguments: argparse.Namespace) -> int:
    scanned = _scan(arguments)
    if arguments.output:
        _write(arguments.output, scanned.sbom)
    else:
        sys.stdout.write(scanned.sbom)
    return EXIT_CLEAN


def run_scan(arguments: argparse.Namespace) -> int:
    vex = vex_index(arguments)
    try:
        # The database first: no point downloading an image that cannot be matched.
        with VulnDb(vulndb_path(arguments)) as db:
            sources = db.sources()
            scanned = _scan(arguments)
            report = match_packages(db, scanned.contents.os, scanned.contents.packages)
            try:
                first_seen = record_scan(db, scanned.contents, report)
            except VulnDbError as error:  # the findings stand; only the dates are missing
                print(f"warning: {error}", file=sys.stderr)
                first_seen = {}
    except VulnDbError as error:
        raise UsageError(str(error)) from None
    judged = judge_findings(report.findings, scanned.contents, vex)
    if arguments.sbom:
        _write(arguments.sbom, sbom_with_vulnerabilities(scanned.sbom, scanned.contents, judged))
    if arguments.format == "json":
        document = scan_as_dict(scanned, report, sources, judged)
        for vulnerability in document["vulnerabilities"]:
            seen = first_seen.get(vulnerability["id"])
            vulnerability["first_seen"] = seen.isoformat() if seen else None
        print(json.dumps(document, indent=2))
    else:
        print_table(scanned, report, sources, judged)
    failing = any(j.status is Status.FAIL for j in judged)
    return EXIT_FAILURES if failing or report.unchecked else EXIT_CLEAN


def finding_as_dict(finding: Finding) -> dict[str, Any]:
    """A finding's advisory and severity, as every JSON output gives them."""
    rating = finding.rating
    return {
        "id": finding.advisory_id,
        "aliases": list(finding.aliases),
        "severity": finding.severity,
        "cvss_score": rating.score,
        "cvss_vector": rating.vector,
        "severity_source": rating.source,
        "severity_label": rating.label,
    }


def judged_as_dict(judged: Judged) -> dict[str, Any]:
    return {"status": str(judged.status), "reason": judged.reason, "vex": judged.vex}


def scan_as_dict(
    scanned: ScannedImage,
    report: MatchReport,
    sources: list[SourceStatus],
    judged: list[Judged] | None = None,
) -> dict[str, Any]:
    contents = scanned.contents
    verdicts = judged if judged is not None else [Judged(f, Status.FAIL) for f in report.findings]
    return {
        "image": {
            "reference": contents.reference,
            "digest": contents.digest,
            "platform": str(contents.platform) if contents.platform else None,
            "os": {"id": contents.os.id, "version_id": contents.os.version_id}
            if contents.os
            else None,
            "from_cache": scanned.from_cache,
        },
        "database": [status_as_dict(s) for s in sources],
        "packages": len(contents.packages),
        "checked": report.checked,
        "vulnerabilities": [
            {
                **finding_as_dict(f),
                **judged_as_dict(j),
                "package": f.package.name,
                "type": f.package.type,
                "installed_version": f.package.version,
                "source_package": f.package.advisory_name,
                "source_version": f.package.advisory_version,
                "fixed_version": f.fixed_version,
                "ecosystem": f.ecosystem,
                "location": f.package.location,
                "summary": f.summary,
                "published": f.published,
            }
            for j in verdicts
            for f in (j.finding,)
        ],
        "unchecked": [
            {"package": p.name, "type": p.type, "version": p.version, "reason": why}
            for p, why in report.unchecked
        ],
        "warnings": list(contents.warnings),
    }


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _severity_text(finding: Finding) -> str:
    score = finding.rating.score
    return f"{finding.severity} {score:.1f}" if score is not None else finding.severity


def print_table(
    scanned: ScannedImage,
    report: MatchReport,
    sources: list[SourceStatus],
    judged: list[Judged] | None = None,
) -> None:
    contents = scanned.contents
    verdicts = judged if judged is not None else [Judged(f, Status.FAIL) for f in report.findings]
    os_text = (
        f"{contents.os.id} {contents.os.version_id or ''}".strip() if contents.os else "unknown OS"
    )
    print(
        f"image {contents.reference} ({contents.digest}), {os_text}, "
        f"{len(contents.packages)} packages"
    )
    if verdicts:
        rows = [["PACKAGE", "INSTALLED", "FIXED", "ID", "SEVERITY", "STATUS"]]
        rows += [
            [
                j.finding.package.name,
                j.finding.package.version,
                j.finding.fixed_version or "(not fixed)",
                j.finding.advisory_id,
                _severity_text(j.finding),
                str(j.status),
            ]
            for j in verdicts
        ]
        print("\n".join(_columns(rows)))
        for j in verdicts:
            if j.reason:
                print(f"{j.finding.advisory_id} in {j.finding.package.name}: {j.reason}")
    else:
        print("no known vulnerabilities in the checked packages")
    if report.unchecked:
        print(
            f"NOT CHECKED: {len(report.unchecked)} packages, e.g. "
            + "; ".join(f"{p.name} ({why})" for p, why in report.unchecked[:3])
        )
    for warning in contents.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if sources:
        oldest = min(s.updated_at for s in sources)
        print(
            f"vulnerability database: {', '.join(s.source for s in sources)}, updated "
            f"{age_text(oldest)} ago"
        )
        if (datetime.now(UTC) - oldest).days >= STALE_AFTER_DAYS:
            print(
                "warning: the vulnerability database is over a week old: run "
                "`kubeproof vulndb update`",
                file=sys.stderr,
            )
    else:
        print("vulnerability database: empty: run `kubeproof vulndb update`")


def run_rescan(arguments: argparse.Namespace) -> int:
    vex = vex_index(arguments)
    try:
        with VulnDb(vulndb_path(arguments)) as db:
            result = rescan(db, since_update=arguments.since_update, vex=vex)
    except VulnDbError as error:
        raise UsageError(str(error)) from None
    if arguments.format == "json":
        print(json.dumps(rescan_as_dict(result), indent=2))
    else:
        print_rescan(result)
    failing = any(d.status is Status.FAIL for d in result.disclosures)
    return EXIT_FAILURES if failing else EXIT_CLEAN


def rescan_as_dict(result: RescanReport) -> dict[str, Any]:
    return {
        "images": result.images,
        "skipped_current": result.skipped_current,
        "baselines": result.baselines,
        "unreadable": result.unreadable,
        "newly_disclosed": [
            {
                "image": d.reference,
                "digest": d.image_digest,
                **finding_as_dict(d.finding),
                "status": str(d.status),
                "reason": d.reason,
                "vex": d.vex,
                "package": d.finding.package.name,
                "type": d.finding.package.type,
                "installed_version": d.finding.package.version,
                "fixed_version": d.finding.fixed_version,
                "ecosystem": d.finding.ecosystem,
                "location": d.finding.package.location,
                "published": d.finding.published,
                "first_seen": d.first_seen.isoformat(),
            }
            for d in result.disclosures
        ],
    }


def print_rescan(result: RescanReport) -> None:
    print(
        f"re-matched {result.images} cached SBOMs"
        + (f" ({result.skipped_current} already current)" if result.skipped_current else "")
        + (f", {result.baselines} matched for the first time" if result.baselines else "")
    )
    if result.disclosures:
        headers = "IMAGE PACKAGE INSTALLED ID SEVERITY PUBLISHED FIRST_SEEN FIXED STATUS"
        rows = [[header.replace("_", " ") for header in headers.split()]]
        rows += [
            [
                d.reference or d.image_digest,
                d.finding.package.name,
                d.finding.package.version,
                d.finding.advisory_id,
                _severity_text(d.finding),
                (d.finding.published or "unknown")[:10],
                d.first_seen.strftime("%Y-%m-%d %H:%M"),
                d.finding.fixed_version or "(not fixed)",
                str(d.status),
            ]
            for d in result.disclosures
        ]
        print("\n".join(_columns(rows)))
    else:
        print("no newly disclosed vulnerabilities")
    if result.unreadable:
        print(
            f"warning: {len(result.unreadable)} cached SBOMs could not be read (damaged or "
            "from an older kubeproof): scan those images again with `kubeproof image scan`",
            file=sys.stderr,
        )
