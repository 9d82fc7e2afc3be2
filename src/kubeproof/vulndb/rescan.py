"""Newly disclosed vulnerabilities: re-match every cached SBOM against the current
database, without pulling any image, and report the advisories an unchanged image
matches now that it did not match before. The first match of an image is its baseline
(its findings are recorded, not reported as new): an advisory is "newly disclosed" only
when an earlier match of the same digest did not have it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.images.errors import ImageError
from kubeproof.images.reader import ImageContents
from kubeproof.images.sbom import cache_directory, contents_from_sbom
from kubeproof.model import Status
from kubeproof.vulndb.match import Finding, Matcher, MatchReport
from kubeproof.vulndb.store import VulnDb
from kubeproof.vulndb.vex import VexIndex, judge_findings


@dataclass(frozen=True)
class Disclosure:
    image_digest: str
    reference: str
    finding: Finding
    first_seen: datetime
    status: Status = Status.FAIL  # excepted when a VEX statement says not_affected or fixed
    reason: str | None = None
    vex: dict[str, Any] | None = None


@dataclass
class RescanReport:
    images: int = 0  # SBOMs re-matched
    skipped_current: int = 0  # matched after the last update (--since-update)
    baselines: int = 0  # images matched for the first time
    unreadable: list[str] = field(default_factory=list)  # cache entries that are not SBOMs
    disclosures: list[Disclosure] = field(default_factory=list)


def cached_sboms(directory: Path | None = None) -> Iterator[tuple[Path, ImageContents | None]]:
    """Every SBOM in the cache; None for an entry that cannot be read back (damaged, or
    written by another extractor version: `kubeproof image scan` rebuilds it)."""
    root = directory or cache_directory()
    if not root.is_dir():
        return
    for path in sorted(root.glob("sha256:*.json")):
        try:
            yield path, contents_from_sbom(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError, ImageError):
            yield path, None


def record_scan(
    db: VulnDb, contents: ImageContents, report: MatchReport, now: datetime | None = None
) -> dict[str, datetime]:
    """Remember what a scan found for this digest; returns first-seen dates by advisory."""
    moment = now or datetime.now(UTC)
    known = db.first_seen(contents.digest)
    found = {f.advisory_id for f in report.findings}
    db.record_match(contents.digest, contents.reference, found, moment)
    return {advisory: known.get(advisory, moment) for advisory in found}


def rescan(
    db: VulnDb,
    since_update: bool = False,
    directory: Path | None = None,
    now: datetime | None = None,
    vex: VexIndex | None = None,
) -> RescanReport:
    """Re-match every cached SBOM; with `since_update`, only images not matched since the
    database was last updated (the others cannot have changed). An image matched before is
    re-matched only for its packages whose advisories changed since that match: no other
    package can have a new finding. With `vex`, each disclosure is judged by the VEX
    statements (excepted, never left out)."""
    moment = now or datetime.now(UTC)
    matcher = Matcher(db)
    last_update = db.last_update()
    changes = db.package_changes()
    result = RescanReport()
    for path, contents in cached_sboms(directory):
        if contents is None:
            result.unreadable.append(path.name)
            continue
        previous = db.last_match(contents.digest)
        if since_update and previous is not None and last_update and previous >= last_update:
            result.skipped_current += 1
            continue
        result.images += 1
        known = db.seen_advisories(contents.digest)
        packages = contents.packages
        if previous is not None:
            packages = tuple(
                package
                for package in packages
                if any(
                    changes.get(key, previous) > previous
                    for key in matcher.lookup_keys(contents.os, package)
                )
            )
        report = matcher.match(contents.os, packages)
        db.record_match(
            contents.digest, contents.reference, {f.advisory_id for f in report.findings}, moment
        )
        if previous is None:
            result.baselines += 1
            continue
        reported: set[str] = set()
        for finding in report.findings:
            if finding.advisory_id in known or finding.advisory_id in reported:
                continue
            reported.add(finding.advisory_id)
            judged = judge_findings([finding], contents, vex or VexIndex(()))[0]
            result.disclosures.append(
                Disclosure(
                    contents.digest,
                    contents.reference,
                    finding,
                    moment,  # new in this match: first seen now
                    judged.status,
                    judged.reason,
                    judged.vex,
                )
            )
    return result
