"""The policy's image rules (source allow-list, cosign signatures), as checks the one
engine runs like any other.

Catalogue checks take no settings, so an allow-list of registries cannot live there yet;
building it as a `Check` keeps one evaluation path (and one result shape) for both.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from kubeproof.admission.policy import ImageRules, SignatureRule
from kubeproof.admission.signatures import Outcome, SignatureVerifier, Verdict, signature_tag
from kubeproof.checks import Check
from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation
from kubeproof.engine import Context
from kubeproof.images.errors import ImageError
from kubeproof.images.reference import RegistryReference, parse_registry
from kubeproof.inventory import Container, Workload
from kubeproof.model import CheckSpec, Severity

IMAGE_SOURCE_CHECK = "images.allowed-source"
IMAGE_SIGNATURE_CHECK = "images.signed"


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


def image_signature_spec() -> CheckSpec:
    return CheckSpec(
        id=IMAGE_SIGNATURE_CHECK,
        title="Images carry a cosign signature by a trusted key",
        description="Every container image from a repository an images.signatures rule names "
        "must carry a cosign signature, made by one of the rule's keys, for its own digest.",
        severity=Severity.CRITICAL,
        remediation="Sign the image by digest with a key the rule trusts (cosign sign --key "
        "KEY IMAGE@DIGEST), or add the signer's public key to the rule's keys in the policy.",
        criteria={
            "CC6.8": "Admitting only images signed by the organisation's keys blocks unsigned "
            "or tampered software before it runs.",
            "CC8.1": "A signature made by the release process shows the image went through the "
            "organisation's authorised build and change process.",
        },
        scope="container",
        group="images",
    )


def image_signature_check(rules: ImageRules, verifier: SignatureVerifier) -> Check:
    def signed(container: Container, workload: Workload, ctx: Context) -> Iterator[Violation]:
        text = container.image.strip()
        if not text:
            raise NotEvaluated(f'container "{container.name}" names no image')
        try:
            reference = parse_registry(text)
        except ImageError:
            yield Violation(f'container "{container.name}" image is not a valid reference', "image")
            return
        rule = rules.signature_rule_for(f"{reference.registry}/{reference.repository}")
        if rule is None or not rule.required:
            raise NotApplicable
        subject = f'container "{container.name}" image {text}'
        if reference.digest is None and rules.require_digest:
            yield Violation(
                f"{subject} is referenced by tag, so {rule.name} cannot tie a signature to it "
                "(images.requireDigest); use IMAGE@sha256:DIGEST",
                "image",
            )
            return
        verdict = verifier.verify(reference, rule.keys, rule.keyless)
        if verdict.outcome is Outcome.REGISTRY_ERROR and rules.registry_errors == "fail-open":
            raise NotEvaluated(
                f"{subject}: signature not checked, registry error ({verdict.detail}); "
                "images.registryErrors is fail-open"
            )
        problem = signature_problem(verdict, rule, reference)
        if problem is not None:
            yield Violation(f"{subject} {problem}", "image")

    return Check(image_signature_spec(), signed)


def signature_problem(
    verdict: Verdict, rule: SignatureRule, reference: RegistryReference
) -> str | None:
    """Why the image fails `rule` and what would fix it, or None when it is signed."""
    repository = f"{reference.registry}/{reference.repository}"
    signers = [key.fingerprint for key in rule.keys]
    if rule.keyless is not None:
        signers += [f"keyless {identity}" for identity in rule.keyless.identities]
    fingerprints = ", ".join(signers)
    keys = f"key {fingerprints}" if len(signers) == 1 else f"one of the keys {fingerprints}"
    # A tag is judged by the digest it named when asked: say which one that was.
    subject = f"(resolved to {verdict.digest}) " if reference.digest is None else ""
    pinned = f"{repository}@{verdict.digest}"
    outcome = verdict.outcome
    if outcome is Outcome.VERIFIED:
        return None
    if outcome is Outcome.UNSIGNED and verdict.digest is not None:
        state = "is unusable" if verdict.detail and not verdict.bundles else "does not exist"
        if verdict.bundles:
            state += f"; a Sigstore bundle is attached but not verifiable: {verdict.detail}"
        return (
            f"{subject}has no signature ({repository}:{signature_tag(verdict.digest)} {state}); "
            f"{rule.name} requires one by {keys}. Sign it: cosign sign --key KEY {pinned}"
        )
    if outcome is Outcome.UNKNOWN_KEY:
        why = f" (Sigstore bundle: {verdict.detail})" if verdict.bundles and verdict.detail else ""
        return (
            f"{subject}is signed, but by none of the keys {rule.name} trusts ({fingerprints}). "
            f"Sign it with a trusted key, or add the signer's public key to {rule.name}.keys{why}"
        )
    if outcome is Outcome.WRONG_DIGEST:
        return (
            f"{subject}carries a signature by a trusted key for another image "
            f"({verdict.detail}), not for this digest; {rule.name} needs a signature of this "
            f"digest. Sign it: cosign sign --key KEY {pinned}"
        )
    if outcome is Outcome.NOT_FOUND:
        return (
            f"is not in its registry ({verdict.detail}), so {rule.name} cannot verify a "
            "signature; check the reference"
        )
    return (
        f"could not be checked for a signature: {verdict.detail}; {rule.name} applies and "
        "images.registryErrors is fail-closed. Retry when the registry answers"
    )
