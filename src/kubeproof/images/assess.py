"""Each image in use, pulled once and matched against the local vulnerability database: its
packages, the advisories they match, when kubeproof first saw each advisory on that image,
and which of them were disclosed after the image was first matched (an unchanged image
that became vulnerable). An image that cannot be read says why."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path

from kubeproof.images.auth import Credentials
from kubeproof.images.cached import ScannedImage, scan_image, scan_opened_image
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import DEFAULT_PLATFORM, Platform
from kubeproof.images.pull_secrets import PullSecrets
from kubeproof.images.reference import RegistryReference, parse_reference
from kubeproof.images.registry import RegistryClient
from kubeproof.images.running import RunningImage
from kubeproof.redaction import redact
from kubeproof.vulndb.match import Matcher, MatchReport
from kubeproof.vulndb.store import VulnDb, VulnDbError

# Recorded once per image digest, with the time kubeproof first matched that digest: an
# advisory first seen later was disclosed while the image stayed unchanged. (The database
# keeps first-seen dates per digest and advisory; this marker is the digest's own.)
FIRST_MATCH_MARKER = "kubeproof:first-match"
PULL_WORKERS = 4


@dataclass(frozen=True)
class PullOptions:
    platform: Platform | None = None
    registry_config: Path | None = None  # docker config.json; default as `image scan`
    timeout: float = 30.0
    offline: bool = False  # registry images only from the SBOM cache, by digest
    use_cache: bool = True


@dataclass
class ImageAssessment:
    reference: str
    scanned: ScannedImage | None = None
    error: str | None = None  # why the image could not be read
    report: MatchReport | None = None
    first_seen: dict[str, datetime] = field(default_factory=dict)  # advisory id -> when
    newly_disclosed: frozenset[str] = frozenset()  # advisories found after the first match
    warnings: list[str] = field(default_factory=list)
    credentials_from: str | None = None  # which imagePullSecret opened it, when one did


class _ClientWithCredentials(RegistryClient):
    """A registry client that uses the credentials it is given (from a pull Secret) before
    the docker config."""

    def __init__(self, registry: str, given: Credentials, timeout: float) -> None:
        super().__init__(registry, timeout=timeout)
        self._given = given

    def credentials(self) -> Credentials | None:
        return self._given


Candidates = list[tuple[str, Credentials]]  # (which pull Secret, its credentials)


def pull_candidates(image: RunningImage, secrets: PullSecrets | None) -> Candidates:
    """The credentials of the image's pull Secrets for its registry (read from the cluster
    once per Secret)."""
    try:
        reference = parse_reference(image.reference)
    except ImageError:
        return []  # pull() says what is wrong with it
    if secrets is None or not isinstance(reference, RegistryReference):
        return []
    return secrets.credentials_for(reference.registry, image.pull_secrets)


def pull(
    image: RunningImage, options: PullOptions, candidates: Sequence[tuple[str, Credentials]] = ()
) -> tuple[ScannedImage, str | None]:
    """The image's contents, and the pull Secret that opened it (None: the docker config or
    anonymous access). Each candidate is tried in turn, then the docker config; raises
    ImageError with every attempt's reason."""
    text = image.reference
    reference = parse_reference(text)
    if not isinstance(reference, RegistryReference):
        # Workloads name registry images; `oci:` and `docker-archive:` in a manifest would
        # make kubeproof read files of the machine it runs on.
        raise ImageError(f"{text!r} is not a registry image reference")
    failures: list[str] = []
    for where, credentials in candidates if not options.offline else ():
        client = _ClientWithCredentials(reference.registry, credentials, options.timeout)
        try:
            opened = client.open_image(reference, options.platform or DEFAULT_PLATFORM)
            return scan_opened_image(opened, text, options.use_cache), where
        except ImageError as error:
            failures.append(f"with {where}: {error}")
    try:
        scanned = scan_image(
            text,
            options.platform,
            options.registry_config,
            options.timeout,
            use_cache=options.use_cache,
            offline=options.offline,
        )
    except ImageError as error:
        prefix = "without a pull Secret: " if failures else ""
        raise ImageError("; ".join([*failures, f"{prefix}{error}"])) from None
    return scanned, None


def _pulled(
    image: RunningImage, options: PullOptions, candidates: Candidates
) -> tuple[ScannedImage | None, str | None, str | None]:
    """(contents, the pull Secret used, None) or (None, None, why it could not be read)."""
    try:
        scanned, where = pull(image, options, candidates)
    except ImageError as error:
        # Registry and helper messages never quote credentials; redacted all the same.
        return None, None, redact(str(error))
    return scanned, where, None


def assess_images(
    images: Iterable[RunningImage],
    db: VulnDb,
    options: PullOptions,
    secrets: PullSecrets | None = None,
    now: datetime | None = None,
) -> dict[str, ImageAssessment]:
    """Every image pulled once and matched, by its reference. Pulls run a few at a time
    (mostly waiting on registries); matching and recording stay on this thread, which owns
    the database connection."""
    moment = now or datetime.now(UTC)
    images = list(images)
    candidates = [pull_candidates(image, secrets) for image in images]
    with ThreadPoolExecutor(PULL_WORKERS, thread_name_prefix="kubeproof-pull") as pool:
        pulled = list(pool.map(_pulled, images, repeat(options), candidates))
    matcher = Matcher(db)
    assessed: dict[str, ImageAssessment] = {}
    for image, (scanned, where, error) in zip(images, pulled, strict=True):
        assessment = ImageAssessment(image.reference, scanned, error, credentials_from=where)
        assessed[image.reference] = assessment
        if scanned is None:
            continue
        contents = scanned.contents
        report = matcher.match(contents.os, contents.packages)
        assessment.report = report
        found = {finding.advisory_id for finding in report.findings}
        try:
            assessment.first_seen, assessment.newly_disclosed = record_first_seen(
                db, contents.digest, contents.reference, found, moment
            )
        except VulnDbError as error:  # the findings stand; only their dates are missing
            assessment.warnings.append(str(error))
    return assessed


def record_first_seen(
    db: VulnDb, digest: str, reference: str, found: set[str], now: datetime
) -> tuple[dict[str, datetime], frozenset[str]]:
    """Record this match; returns first-seen dates and the advisories first seen after the
    digest was first matched. A digest matched before only by `image scan` or `image rescan`
    (no marker yet) takes its earliest recorded advisory, else its last match, as its first
    match."""
    known = db.first_seen(digest)
    first_match = known.get(FIRST_MATCH_MARKER)
    if first_match is None:
        first_match = min(known.values()) if known else (db.last_match(digest) or now)
        db.record_match(digest, reference, {FIRST_MATCH_MARKER}, first_match)
    db.record_match(digest, reference, found, now)
    first_seen = {advisory: known.get(advisory, now) for advisory in found}
    newly = frozenset(a for a, seen in first_seen.items() if seen > first_match)
    return first_seen, newly
