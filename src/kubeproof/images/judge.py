"""Results for the images workloads run: each vulnerable package in an image becomes a
failing result on every container that runs the image; a clean image passes; an image
that could not be read, or whose packages could not all be checked, is not evaluated.

Findings are keyed by (check, kind, namespace, name, container). One check id for every
vulnerability would merge them all into one finding per container, so the identity of a
vulnerability is split in two: the check id carries the advisory's severity (reports,
`--fail-on` and remediation deadlines read the severity from the check), and the subject's
container carries the package and the advisory after the container name,
`web#deb/libssl3#DSA-5514-1`. (No valid container name, package name or advisory id
holds a `#`, so the parts cannot run together.) Each vulnerability keeps its own finding,
first-seen date and deadline, and resolves when the running image no longer has it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from kubeproof.checks.registry import Check, NotApplicable, load_yaml, spec_from_data
from kubeproof.frameworks import Framework, Group
from kubeproof.images.assess import ImageAssessment
from kubeproof.images.running import ContainerUse, ImagesInUse
from kubeproof.model import CheckSpec, Result, Severity, Status, Subject
from kubeproof.vulndb.match import Finding
from kubeproof.vulndb.vex import Judged, VexIndex, judge_findings

SCANNED = "image.vulnerabilities"
NEWLY_DISCLOSED = "image.newly-disclosed"
VULNERABILITY = "image.vulnerability-{}"
UNRATED = "unrated"
DISCRIMINATOR = "#"


@cache
def image_checks() -> dict[str, CheckSpec]:
    """The image checks' descriptions (images/checks.yaml), validated like the catalogue's."""
    text = resources.files("kubeproof.images").joinpath("checks.yaml").read_text("utf-8")
    specs = (
        spec_from_data(entry, "image", source="images/checks.yaml")
        for entry in load_yaml(text)["checks"]
    )
    return {spec.id: spec for spec in specs}


def _not_run_by_the_engine(*_: Any) -> None:
    # Image checks are judged from the images, after the engine has judged the objects.
    raise NotApplicable


@dataclass(frozen=True)
class FrameworkWithImages(Framework):
    """A framework plus the image checks, each in the groups its criteria name: the
    summary, the evidence store's "checks run" (which resolves fixed findings) and the
    catalogue digest all see them."""

    image_checks: tuple[Check, ...] = ()

    @property
    def checks(self) -> tuple[Check, ...]:
        return (*super().checks, *self.image_checks)


def with_image_checks(framework: Framework) -> Framework:
    if isinstance(framework, FrameworkWithImages):
        return framework
    checks = tuple(Check(spec, _not_run_by_the_engine) for spec in image_checks().values())
    groups = tuple(
        dataclasses.replace(
            group,
            checks=(*group.checks, *(c for c in checks if _in_group(c.spec, group, framework))),
        )
        for group in framework.groups
    )
    fields = {f.name: getattr(framework, f.name) for f in dataclasses.fields(Framework)}
    return FrameworkWithImages(**{**fields, "groups": groups}, image_checks=checks)


def _in_group(spec: CheckSpec, group: Group, framework: Framework) -> bool:
    return framework.group_by == "criteria" and group.id in spec.criteria


# --- severity ---------------------------------------------------------------------------

_RATINGS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.LOW,
    "unimportant": Severity.LOW,  # Debian urgency
    "none": Severity.LOW,  # a CVSS score of 0.0
}


def advisory_severity(text: str) -> Severity | None:
    """The severity an advisory gives: a CVSS v2, v3 or v4 vector (its base rating), else a
    database rating (GitHub's MODERATE ...) or a distribution urgency; None when unrated."""
    text = text.strip()
    if text.upper().startswith("CVSS:") or text.startswith("AV:"):
        return _cvss_rating(text)
    return _RATINGS.get(text.lower().removesuffix("**").strip())


def _cvss_rating(vector: str) -> Severity | None:
    import cvss  # only when an advisory has a vector

    try:
        if vector.upper().startswith("CVSS:4"):
            rating = str(cvss.CVSS4(vector).severity)
        elif vector.upper().startswith("CVSS:3"):
            rating = str(cvss.CVSS3(vector).severities()[0])
        else:
            rating = str(cvss.CVSS2(vector).severities()[0])
    except (cvss.CVSSError, ValueError, KeyError, IndexError):
        return None
    if rating.lower() == "none":
        return Severity.LOW
    return _RATINGS.get(rating.lower())


# --- results ----------------------------------------------------------------------------


def vulnerable_subject(subject: Subject, finding: Finding) -> Subject:
    """The container, discriminated by package and advisory (see the module docstring)."""
    package = f"{finding.package.type}/{finding.package.name}"
    parts = (subject.container or "", package, finding.advisory_id)
    return subject.with_container(DISCRIMINATOR.join(parts))


def image_results(
    images: ImagesInUse,
    assessed: dict[str, ImageAssessment],
    cluster: str = "manifests",
    vex: VexIndex | None = None,
) -> list[Result]:
    """Results for every container that runs an assessed image, in a stable order; a
    vulnerability an OpenVEX statement says does not affect the image is `excepted`."""
    specs = image_checks()
    results: dict[tuple[str, Subject], Result] = {}
    if images.unseen is not None:
        # Pods that could not be listed run images nobody judged: say so, as the engine
        # does for any kind it could not read.
        subject = Subject("", "Cluster", None, cluster)
        message = f"not evaluated for pods that could not be read: {images.unseen}"
        unseen = Result(
            specs[SCANNED], Status.NOT_EVALUATED, subject, message, reason=images.unseen
        )
        results[(SCANNED, subject)] = unseen
    scanned: dict[Subject, list[Result]] = {}
    vulnerable: set[Subject] = set()
    for use, reason in images.unreadable:
        scanned.setdefault(use.subject, []).append(_not_evaluated(specs[SCANNED], use, reason))
    for image in images.images.values():
        assessment = assessed.get(image.reference)
        if assessment is None:
            continue
        for use in image.containers:
            verdict = _scanned_verdict(specs[SCANNED], use, assessment)
            if verdict is None:
                vulnerable.add(use.subject)
            else:
                scanned.setdefault(use.subject, []).append(verdict)
            for result in _vulnerabilities(specs, use, assessment, vex):
                key = (result.check.id, result.subject)
                if key in results:  # the same package and advisory in another image it runs
                    results[key].extra["images"].extend(result.extra["images"])
                else:
                    results[key] = result
    ordered = [
        verdict
        for subject, verdicts in scanned.items()
        if not ((verdict := _one_verdict(verdicts)).status is Status.PASS and subject in vulnerable)
    ]
    ordered.extend(results.values())
    ordered.sort(key=lambda r: (str(r.subject), r.check.id))
    return ordered


def _one_verdict(verdicts: list[Result]) -> Result:
    """A container that runs several digests (a rollout) passes only if all of them do
    (and none of them is vulnerable: then it has no such result at all)."""
    for result in verdicts:
        if result.status is Status.NOT_EVALUATED:
            return result
    return verdicts[0]


def _not_evaluated(spec: CheckSpec, use: ContainerUse, reason: str) -> Result:
    return Result(
        spec,
        Status.NOT_EVALUATED,
        use.subject,
        f"not evaluated: {reason}",
        use.location,
        use.path,
        reason=reason,
    )


def _scanned_verdict(
    spec: CheckSpec, use: ContainerUse, assessment: ImageAssessment
) -> Result | None:
    if assessment.error is not None or assessment.report is None or assessment.scanned is None:
        reason = f"image {assessment.reference} could not be read: {assessment.error}"
        return _not_evaluated(spec, use, reason)
    report = assessment.report
    if report.unchecked:
        examples = "; ".join(f"{p.name} ({why})" for p, why in report.unchecked[:3])
        reason = (
            f"image {assessment.reference}: {len(report.unchecked)} of "
            f"{len(assessment.scanned.contents.packages)} packages could not be checked, "
            f"e.g. {examples}"
        )
        return _not_evaluated(spec, use, reason)
    if report.findings:
        return None  # the image.vulnerability-* results say it
    contents = assessment.scanned.contents
    return Result(
        spec,
        Status.PASS,
        use.subject,
        f"image {assessment.reference} ({contents.digest}): no known vulnerability in its "
        f"{report.checked} packages",
        use.location,
        use.path,
        extra={"images": [_image_facts(assessment)]},
    )


def _image_facts(assessment: ImageAssessment) -> dict[str, Any]:
    contents = assessment.scanned.contents if assessment.scanned else None
    return {
        "reference": assessment.reference,
        "digest": contents.digest if contents else None,
    }


def _vulnerabilities(
    specs: dict[str, CheckSpec],
    use: ContainerUse,
    assessment: ImageAssessment,
    vex: VexIndex | None,
) -> Iterable[Result]:
    if assessment.report is None:
        return
    by_package: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in assessment.report.findings:
        key = (finding.package.type, finding.package.name, finding.advisory_id)
        by_package.setdefault(key, []).append(finding)
    contents = assessment.scanned.contents if assessment.scanned else None
    firsts = [findings[0] for findings in by_package.values()]
    judged = (
        judge_findings(firsts, contents, vex)
        if vex is not None and vex.statements and contents is not None
        else [Judged(finding, Status.FAIL) for finding in firsts]
    )
    for findings, verdict in zip(by_package.values(), judged, strict=True):
        finding = findings[0]
        severity = advisory_severity(finding.severity)
        spec = specs[VULNERABILITY.format(severity.value if severity else UNRATED)]
        subject = vulnerable_subject(use.subject, finding)
        first_seen = assessment.first_seen.get(finding.advisory_id)
        details: dict[str, Any] = {
            "container": use.subject.container,
            "package": finding.package.name,
            "type": finding.package.type,
            "installed_version": finding.package.version,
            "fixed_version": finding.fixed_version,
            "advisory": finding.advisory_id,
            "aliases": list(finding.aliases),
            "advisory_severity": finding.severity,
            "ecosystem": finding.ecosystem,
            "published": finding.published,
            "first_seen": first_seen.isoformat() if first_seen else None,
            "newly_disclosed": finding.advisory_id in assessment.newly_disclosed,
            "locations": sorted({f.package.location for f in findings}),
            "images": [_image_facts(assessment)],
        }
        fixed = f"fixed in {finding.fixed_version}" if finding.fixed_version else "no fix yet"
        aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
        message = (
            f"{finding.package.name} {finding.package.version} in image "
            f"{assessment.reference}: {finding.advisory_id}{aliases}, "
            f"{finding.severity or 'unrated'}; {fixed}"
        )
        if verdict.vex is not None:
            details["vex"] = verdict.vex
        reason = verdict.reason
        yield Result(
            spec, verdict.status, subject, message, use.location, use.path, reason, details
        )
        if details["newly_disclosed"]:
            published = (finding.published or "unknown")[:10]
            seen = first_seen.strftime("%Y-%m-%d") if first_seen else "unknown"
            yield Result(
                specs[NEWLY_DISCLOSED],
                verdict.status,
                subject,
                f"{finding.advisory_id} on {finding.package.name} {finding.package.version}, "
                f"published {published}, first seen by kubeproof on this unchanged image "
                f"{seen}",
                use.location,
                use.path,
                reason,
                {**details, "images": list(details["images"])},
            )
