"""The policy's image-source rule, as a check the one engine runs like any other.

Catalogue checks take no settings, so an allow-list of registries cannot live there yet;
building it as a `Check` keeps one evaluation path (and one result shape) for both.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from kubeproof.admission.policy import ImageRules
from kubeproof.checks import Check
from kubeproof.checks.registry import NotEvaluated, Violation
from kubeproof.engine import Context
from kubeproof.images.errors import ImageError
from kubeproof.images.reference import RegistryReference, parse_registry
from kubeproof.inventory import Container, Workload
from kubeproof.model import CheckSpec, Severity

IMAGE_SOURCE_CHECK = "images.allowed-source"


def image_source_spec(rules: ImageRules) -> CheckSpec:
    allowed = ", ".join((*rules.allowed_registries, *rules.allowed_repositories))
    return CheckSpec(
        id=IMAGE_SOURCE_CHECK,
        title="Images come from an allowed registry or repository",
        description="Every container image must come from a registry or repository that the "
        "admission policy allows.",
        severity=Severity.HIGH,
        remediation=f"Use an image from an allowed source ({allowed}), or add its registry "
        "or repository to images.allowedRegistries / images.allowedRepositories in the policy.",
        criteria={
            "CC6.8": "Admitting only images from approved sources prevents unauthorized or "
            "malicious software from being introduced into the environment.",
            "CC8.1": "Restricting image sources ensures only software that went through the "
            "organisation's build and change process is deployed.",
        },
        scope="container",
        group="images",
    )


def image_source_check(rules: ImageRules) -> Check:
    def allowed_source(
        container: Container, workload: Workload, ctx: Context
    ) -> Iterator[Violation]:
        text = container.image.strip()
        if not text:
            raise NotEvaluated(f'container "{container.name}" names no image')
        try:
            reference = parse_registry(text)
        except ImageError:
            yield Violation(f'container "{container.name}" image is not a valid reference', "image")
            return
        if not source_allowed(reference, rules):
            yield Violation(
                f'container "{container.name}" image comes from {reference.registry}/'
                f"{reference.repository}, which the policy does not allow",
                "image",
            )

    return Check(image_source_spec(rules), allowed_source)


def source_allowed(reference: RegistryReference, rules: ImageRules) -> bool:
    name = f"{reference.registry}/{reference.repository}"
    return any(fnmatch.fnmatchcase(reference.registry, g) for g in rules.allowed_registries) or any(
        fnmatch.fnmatchcase(name, g) for g in rules.allowed_repositories
    )
