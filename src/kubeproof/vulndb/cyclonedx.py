"""An image's CycloneDX 1.6 SBOM with its vulnerabilities: each finding as a
`vulnerabilities[]` entry that affects the package's component, rated (score, severity,
CVSS method and vector, the rating's source) and, when a VEX statement judged it, with
its analysis (state, justification, detail). The cached SBOM stays packages only: what
is known about vulnerabilities changes without the image changing."""

from __future__ import annotations

import json
from typing import Any

from kubeproof.images.reader import ImageContents
from kubeproof.images.sbom import package_url
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.severity import UNKNOWN
from kubeproof.vulndb.vex import AFFECTED, FIXED, NOT_AFFECTED, UNDER_INVESTIGATION, Judged

_METHODS = {"CVSS 4.0": "CVSSv4", "CVSS 3.1": "CVSSv31", "CVSS 3.0": "CVSSv3", "CVSS 2.0": "CVSSv2"}
_STATES = {
    NOT_AFFECTED: "not_affected",
    FIXED: "resolved",
    AFFECTED: "exploitable",
    UNDER_INVESTIGATION: "in_triage",
}
# OpenVEX justifications in CycloneDX's words.
_JUSTIFICATIONS = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "protected_by_mitigating_control",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}


def _component_refs(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    refs = {}
    for component in map(as_dict, as_list(document.get("components"))):
        location = next(
            (
                as_str(p.get("value")) or ""
                for p in map(as_dict, as_list(component.get("properties")))
                if p.get("name") == "kubeproof:location"
            ),
            "",
        )
        purl, ref = as_str(component.get("purl")), as_str(component.get("bom-ref"))
        if purl and ref:
            refs[purl, location] = ref
    return refs


def _vulnerability(judged: Judged, ref: str) -> dict[str, Any]:
    finding, rating = judged.finding, judged.finding.rating
    rated: dict[str, Any] = {"severity": rating.level if rating.level != UNKNOWN else "unknown"}
    if rating.source:
        rated["source"] = {"name": rating.source}
    if rating.score is not None:
        rated["score"] = rating.score
    if rating.vector:
        rated["method"] = _METHODS.get(rating.source or "", "other")
        rated["vector"] = rating.vector
    entry: dict[str, Any] = {
        "bom-ref": f"{finding.advisory_id}#{ref}",
        "id": finding.advisory_id,
        "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{finding.advisory_id}"},
        "ratings": [rated],
        "affects": [{"ref": ref}],
    }
    if finding.summary:
        entry["description"] = finding.summary
    if finding.fixed_version:
        entry["recommendation"] = f"upgrade {finding.package.name} to {finding.fixed_version}"
    if judged.vex is not None:
        analysis: dict[str, Any] = {"state": _STATES[str(judged.vex["status"])]}
        justification = _JUSTIFICATIONS.get(str(judged.vex.get("justification")))
        if justification:
            analysis["justification"] = justification
        if judged.reason:
            analysis["detail"] = judged.reason
        entry["analysis"] = analysis
    return entry


def sbom_with_vulnerabilities(sbom: str, contents: ImageContents, judged: list[Judged]) -> str:
    document = json.loads(sbom)
    refs = _component_refs(document)
    vulnerabilities = []
    seen: set[str] = set()
    for item in judged:
        package = item.finding.package
        ref = refs.get((package_url(package, contents.os), package.location))
        if ref is None:
            continue  # not a component of this SBOM (cannot happen for the image's own)
        entry = _vulnerability(item, ref)
        if entry["bom-ref"] not in seen:
            seen.add(entry["bom-ref"])
            vulnerabilities.append(entry)
    if vulnerabilities:
        document["vulnerabilities"] = vulnerabilities
    return json.dumps(document, indent=2) + "\n"
