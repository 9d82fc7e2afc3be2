"""`kubeproof scan --images`: judge the images the scanned workloads run (from a cluster, the
digests their pods run; from manifests, the images they name) for known vulnerabilities,
and add the results to the scan, where they are reported, excepted and recorded like any
other."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeproof.cli.errors import UsageError
from kubeproof.cli.inputs import Source
from kubeproof.cli.vex_options import add_vex_argument, vex_index
from kubeproof.scan import ScanReport

# Registry, SBOM and database code loads only when --images is given: a plain scan must
# start as fast as before.
if TYPE_CHECKING:
    from kubeproof.images.assess import PullOptions
    from kubeproof.images.pull_secrets import PullSecrets
    from kubeproof.vulndb.store import SourceStatus

STALE_AFTER_DAYS = 7


def add_image_arguments(parser: Any) -> None:
    group = parser.add_argument_group("images (--images)")
    group.add_argument(
        "--images",
        "--vulnerabilities",
        dest="images",
        action="store_true",
        help="also match the images the workloads run against the vulnerability database "
        "(from a cluster: the digests in pod status; from files: the images named)",
    )
    group.add_argument(
        "--offline",
        action="store_true",
        help="with --images: no registry access; images only from the SBOM cache by digest",
    )
    group.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="with --images: platform to read from multi-arch images (default linux/amd64)",
    )
    group.add_argument(
        "--registry-config",
        metavar="FILE",
        type=Path,
        help="with --images: docker config.json with registry credentials, used after the "
        "pods' imagePullSecrets (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)",
    )
    group.add_argument(
        "--registry-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --images: registry timeout per request (default 30)",
    )
    add_vex_argument(group)
    group.add_argument(
        "--vulndb",
        metavar="PATH",
        type=Path,
        help="with --images: vulnerability database file (default $KUBEPROOF_VULNDB, else "
        "$XDG_CACHE_HOME/kubeproof/osv.sqlite3; `kubeproof vulndb update` fills it)",
    )


def _pull_options(arguments: argparse.Namespace) -> PullOptions:
    from kubeproof.images.assess import PullOptions
    from kubeproof.images.manifest import Platform

    try:
        platform = Platform.parse(arguments.platform) if arguments.platform else None
    except ValueError as error:
        raise UsageError(f"--platform: {error}") from None
    if not 0 < arguments.registry_timeout <= 3600:
        raise UsageError("--registry-timeout must be more than 0 and at most 3600 seconds")
    return PullOptions(
        platform=platform,
        registry_config=arguments.registry_config,
        timeout=arguments.registry_timeout,
        offline=arguments.offline,
    )


def check_image_arguments(arguments: argparse.Namespace) -> None:
    """Before anything is read: image options without --images are a usage error."""
    if arguments.images:
        _pull_options(arguments)
        vex_index(arguments)  # a bad VEX document fails before anything is read
        return
    given = [
        flag
        for flag, value in (
            ("--offline", arguments.offline),
            ("--platform", arguments.platform),
            ("--registry-config", arguments.registry_config),
            ("--vulndb", arguments.vulndb),
            ("--vex", arguments.vex),
        )
        if value
    ]
    if given:
        raise UsageError(f"{', '.join(given)} only apply with --images")


def judge_images(arguments: argparse.Namespace, report: ScanReport, source: Source) -> None:
    """Add the image results to `report` (and the image checks to its framework)."""
    if not arguments.images:
        return
    from kubeproof.cli.vulndb import vulndb_path
    from kubeproof.images.assess import assess_images
    from kubeproof.images.judge import image_results, with_image_checks
    from kubeproof.images.running import images_in_cluster, images_in_manifests
    from kubeproof.vulndb.store import VulnDb, VulnDbError

    options = _pull_options(arguments)
    from_cluster = bool(arguments.cluster)
    images = (
        images_in_cluster(source.inventory)
        if from_cluster
        else images_in_manifests(source.inventory)
    )
    secrets = _pull_secrets(arguments) if from_cluster and not options.offline else None
    try:
        with VulnDb(vulndb_path(arguments)) as db:
            databases = db.sources()
            assessed = assess_images(images.images.values(), db, options, secrets)
    except VulnDbError as error:
        raise UsageError(str(error)) from None
    report.framework = with_image_checks(report.framework)
    vex = vex_index(arguments)
    report.results.extend(image_results(images, assessed, report.cluster, vex))
    readable = sum(1 for a in assessed.values() if a.error is None)
    report.scan_facts["images"] = {"read": readable, "unreadable": len(assessed) - readable}
    report.scan_facts["vulnerabilityDatabase"] = database_facts(databases, options.offline)
    for warning in secrets.warnings if secrets else ():
        print(f"kubeproof: warning: {warning}", file=sys.stderr)
    for assessment in assessed.values():
        for warning in assessment.warnings:
            print(f"kubeproof: warning: {warning}", file=sys.stderr)
        if assessment.error:
            print(
                f"kubeproof: image not read: {assessment.reference}: {assessment.error}",
                file=sys.stderr,
            )
    _say_database_age(databases)


def _pull_secrets(arguments: argparse.Namespace) -> PullSecrets:
    """Secrets are read over the same connection (and identity) the scan used."""
    from kubeproof.images.pull_secrets import PullSecrets
    from kubeproof.sources import REQUEST_TIMEOUT_S
    from kubeproof.sources.cluster import ApiClient
    from kubeproof.sources.kubeconfig import KubeconfigError, load_connection

    try:
        connection = load_connection(arguments.kubeconfig, arguments.context)
    except KubeconfigError as error:
        raise UsageError(str(error)) from None
    connection = connection.with_impersonation(arguments.as_user)
    timeout = getattr(arguments, "request_timeout", None) or REQUEST_TIMEOUT_S
    return PullSecrets(ApiClient(connection, timeout_s=timeout))


def database_facts(sources: list[SourceStatus], offline: bool) -> dict[str, Any]:
    """`scan.vulnerabilityDatabase`: how old the data the images were matched against is."""
    now = datetime.now(UTC)
    oldest = min((s.updated_at for s in sources), default=None)
    return {
        "updatedAt": oldest.isoformat() if oldest else None,
        "ageSeconds": int((now - oldest).total_seconds()) if oldest else None,
        "offline": offline,
        "ecosystems": [
            {
                "ecosystem": s.source,
                "updatedAt": s.updated_at.isoformat(),
                "advisories": s.advisories,
            }
            for s in sources
        ],
    }


def _say_database_age(sources: list[SourceStatus]) -> None:
    from kubeproof.cli.vulndb import age_text

    if not sources:
        print(
            "kubeproof: warning: the vulnerability database is empty: no package could be "
            "checked (run `kubeproof vulndb update`)",
            file=sys.stderr,
        )
        return
    oldest = min(s.updated_at for s in sources)
    print(f"kubeproof: vulnerability database updated {age_text(oldest)} ago", file=sys.stderr)
    if (datetime.now(UTC) - oldest).days >= STALE_AFTER_DAYS:
        print(
            "kubeproof: warning: the vulnerability database is over a week old: run "
            "`kubeproof vulndb update`",
            file=sys.stderr,
        )
