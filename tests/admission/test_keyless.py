"""Keyless Sigstore bundles at admission: certificates from the test's own Fulcio-like CA,
entries in the test's own Rekor-like log (tests/admission/keyless_signing.py), a trusted
root file naming both, and the bundles attached as referrers to images in a real registry
on 127.0.0.1. Each case pushes a fresh image and judges it with a fresh verifier."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from admission.bundling import attach, image_manifest
from admission.cosign import push_image
from admission.keyless_signing import (
    GITHUB,
    WORKFLOW,
    Fulcio,
    Rekor,
    Signing,
    keyless_dsse_bundle,
    keyless_message_bundle,
    signing,
    trusted_root,
)
from admission.reviews import pod_spec, review, workload
from images.registry_server import Registry
from kubeproof.admission.decide import Decider, Decision
from kubeproof.admission.policy import Policy, PolicyError, SignatureRule, parse_policy
from kubeproof.admission.review import parse_review
from kubeproof.admission.signatures import Outcome, SignatureVerifier, Verdict
from kubeproof.cli.main import main
from kubeproof.images.reference import parse_registry

pytestmark = pytest.mark.integration


@dataclass
class World:
    """The test's Sigstore: a CA, a log, the trusted root file, and a policy trusting the
    release workflow (by URI) and anyone at example.com (by regular expression)."""

    fulcio: Fulcio
    rekor: Rekor
    directory: Path
    registry: Registry

    def policy(self, **keyless: Any) -> Policy:
        trust = {
            "trustedRoot": "trusted_root.json",
            "identities": [
                {"issuer": GITHUB, "subject": WORKFLOW},
                {"issuer": "https://accounts.example.com", "subjectRegExp": r"[a-z]+@example\.com"},
            ],
            **keyless,
        }
        document = {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {
                "signatures": [{"repositories": [f"{self.registry.host}/kl/*"], "keyless": trust}]
            },
        }
        return parse_policy(document, "policy.yaml", self.directory)

    def rule(self) -> SignatureRule:
        return self.policy().images.signatures[0]

    def image(self, name: str) -> tuple[str, str]:
        repository = f"kl/{name}"
        return repository, push_image(self.registry, repository, "1", f"keyless {name}")

    def verdict(self, repository: str, digest: str) -> Verdict:
        rule = self.rule()
        reference = parse_registry(f"{self.registry.host}/{repository}@{digest}")
        return SignatureVerifier(retries=1).verify(reference, rule.keys, rule.keyless)

    def decide(self, repository: str, digest: str) -> Decision:
        decider = Decider(self.policy(), signatures=SignatureVerifier(retries=1))
        image = f"{self.registry.host}/{repository}@{digest}"
        return decider.decide(parse_review(review(workload("Pod", "w", pod_spec(image=image)))))


@pytest.fixture(scope="module")
def world(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> World:
    directory = tmp_path_factory.mktemp("sigstore")
    fulcio, rekor = Fulcio(), Rekor()
    (directory / "trusted_root.json").write_text(json.dumps(trusted_root(fulcio, rekor)))
    return World(fulcio, rekor, directory, registry)


def attached(world: World, name: str, make: Callable[[str], dict[str, Any]]) -> Verdict:
    repository, digest = world.image(name)
    attach(world.registry, repository, digest, make(digest))
    return world.verdict(repository, digest)


def refused(found: Verdict, outcome: Outcome, reason: str) -> None:
    assert found.outcome is outcome, found
    assert found.bundles and reason in found.detail, found.detail


# -- accepted -----------------------------------------------------------------------------


def test_a_keyless_dsse_bundle_by_a_trusted_identity_admits_the_image(world: World) -> None:
    repository, digest = world.image("accepted")
    assert not world.decide(repository, digest).allowed  # nothing attached yet
    attach(
        world.registry,
        repository,
        digest,
        keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest),
    )
    decision = world.decide(repository, digest)
    assert decision.allowed and not decision.unjudged, decision
    found = world.verdict(repository, digest)
    assert found.outcome is Outcome.VERIFIED
    assert found.detail == f"keyless {WORKFLOW} from {GITHUB} (Sigstore bundle)"


def test_a_keyless_message_signature_with_a_hashedrekord_entry_admits_the_image(
    world: World,
) -> None:
    """A v0.2 bundle: certificate chain, the older raw issuer extension, an e-mail SAN
    matched by the identity's regular expression."""
    repository, digest = world.image("message")
    manifest = image_manifest(world.registry, repository, digest)
    signer = signing(
        world.fulcio,
        subject="alice@example.com",
        issuer="https://accounts.example.com",
        legacy_issuer=True,
    )
    attach(
        world.registry, repository, digest, keyless_message_bundle(world.rekor, signer, manifest)
    )
    found = world.verdict(repository, digest)
    assert found.outcome is Outcome.VERIFIED, found
    assert "alice@example.com from https://accounts.example.com" in found.detail


def test_a_bundle_without_an_inclusion_proof_is_verified_by_its_promise(world: World) -> None:
    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        return bundle

    assert attached(world, "promise-only", make).outcome is Outcome.VERIFIED


# -- the signer ---------------------------------------------------------------------------


def test_another_identity_is_refused(world: World) -> None:
    other = "https://github.com/example/app/.github/workflows/fork.yml@refs/heads/main"
    found = attached(
        world,
        "identity",
        lambda d: keyless_dsse_bundle(world.rekor, signing(world.fulcio, subject=other), d),
    )
    refused(found, Outcome.UNKNOWN_KEY, f"identity ({other} from {GITHUB}) is none the rule trusts")


def test_the_right_subject_from_another_issuer_is_refused(world: World) -> None:
    signer = signing(world.fulcio, issuer="https://token.actions.example.org")
    found = attached(world, "issuer", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "from https://token.actions.example.org) is none")


def test_a_regular_expression_must_match_the_whole_name(world: World) -> None:
    signer = signing(
        world.fulcio, subject="alice@example.com.evil.test", issuer="https://accounts.example.com"
    )
    found = attached(world, "regexp", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "is none the rule trusts")


def test_a_certificate_expired_at_the_integrated_time_is_refused(world: World) -> None:
    signer = signing(world.fulcio)
    late = Signing(signer.key, signer.certificate, signer.integrated + 20 * 60)
    found = attached(world, "expired", lambda d: keyless_dsse_bundle(world.rekor, late, d))
    refused(found, Outcome.UNSIGNED, "the certificate was not valid when the log integrated it")


def test_a_certificate_from_an_unknown_ca_is_refused(world: World) -> None:
    stranger = signing(Fulcio("stranger"))
    found = attached(world, "unknown-ca", lambda d: keyless_dsse_bundle(world.rekor, stranger, d))
    refused(found, Outcome.UNKNOWN_KEY, "does not chain to a certificate authority")


def test_a_certificate_not_for_code_signing_is_refused(world: World) -> None:
    signer = signing(world.fulcio, code_signing=False)
    found = attached(world, "eku", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "not for code signing")


def test_a_certificate_without_a_signed_certificate_timestamp_is_refused(world: World) -> None:
    signer = signing(world.fulcio, ct_key=False)
    found = attached(world, "no-sct", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "the certificate carries no signed certificate timestamp")


def test_a_timestamp_by_an_unknown_ct_log_is_refused(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    signer = signing(world.fulcio, ct_key=ec.generate_private_key(ec.SECP256R1()))
    found = attached(world, "other-ct", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "no signed certificate timestamp verifies with a CT log")


def test_a_forged_timestamp_naming_the_trusted_ct_log_is_refused(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    forger = ec.generate_private_key(ec.SECP256R1())
    signer = signing(world.fulcio, ct_key=forger, forged_sct=True)
    found = attached(world, "forged-sct", lambda d: keyless_dsse_bundle(world.rekor, signer, d))
    refused(found, Outcome.UNKNOWN_KEY, "no signed certificate timestamp verifies with a CT log")


def test_a_root_naming_no_ct_log_asks_for_no_timestamp(world: World) -> None:
    name = _root_file(world, "no-ctlogs.json", lambda d: d.update(ctlogs=[]))
    rule = world.policy(trustedRoot=name).images.signatures[0]
    repository, digest = world.image("ct-free")
    signer = signing(world.fulcio, ct_key=False)
    attach(world.registry, repository, digest, keyless_dsse_bundle(world.rekor, signer, digest))
    reference = parse_registry(f"{world.registry.host}/{repository}@{digest}")
    found = SignatureVerifier(retries=1).verify(reference, (), rule.keyless)
    assert found.outcome is Outcome.VERIFIED, found


def test_a_statement_about_another_image_is_refused(world: World) -> None:
    repository, digest = world.image("other-image")
    other = push_image(world.registry, repository, "2", "the image really signed")
    bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), other)
    attach(world.registry, repository, digest, bundle)
    found = world.verdict(repository, digest)
    assert (found.outcome, found.detail) == (Outcome.WRONG_DIGEST, other)


# -- the transparency log -----------------------------------------------------------------


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def _flipped(text: str, at: int = 10) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_a_tampered_signed_entry_timestamp_is_refused(world: World) -> None:
    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        promise = _entry(bundle)["inclusionPromise"]
        promise["signedEntryTimestamp"] = _flipped(promise["signedEntryTimestamp"])
        return bundle

    refused(
        attached(world, "set", make), Outcome.UNSIGNED, "signed entry timestamp does not verify"
    )


def test_a_changed_integrated_time_breaks_the_promise(world: World) -> None:
    """The time the certificate is judged at is only trusted because the log signed it."""

    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        _entry(bundle)["integratedTime"] = str(int(_entry(bundle)["integratedTime"]) + 1)
        return bundle

    refused(
        attached(world, "time", make), Outcome.UNSIGNED, "signed entry timestamp does not verify"
    )


def test_an_entry_without_a_promise_is_refused(world: World) -> None:
    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        del _entry(bundle)["inclusionPromise"]
        return bundle

    refused(attached(world, "no-promise", make), Outcome.UNSIGNED, "no inclusionPromise")


def test_a_wrong_inclusion_proof_is_refused(world: World) -> None:
    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        hashes = _entry(bundle)["inclusionProof"]["hashes"]
        hashes[1] = _flipped(hashes[1], 0)
        return bundle

    refused(attached(world, "proof", make), Outcome.UNSIGNED, "inclusion proof does not lead")


def test_a_proof_for_another_index_is_refused(world: World) -> None:
    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        proof = _entry(bundle)["inclusionProof"]
        proof["logIndex"] = str(int(proof["logIndex"]) - 1)
        return bundle

    refused(attached(world, "index", make), Outcome.UNSIGNED, "inclusion proof does not lead")


def test_a_checkpoint_signed_by_another_key_is_refused(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    def make(digest: str) -> dict[str, Any]:
        bundle = keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest)
        proof = _entry(bundle)["inclusionProof"]
        root = base64.b64decode(proof["rootHash"])
        forger = ec.generate_private_key(ec.SECP256R1())
        proof["checkpoint"]["envelope"] = world.rekor.checkpoint(
            int(proof["treeSize"]), root, forger
        )
        return bundle

    refused(
        attached(world, "checkpoint", make), Outcome.UNSIGNED, "checkpoint is not signed by the log"
    )


def test_an_entry_in_an_unknown_log_is_refused(world: World) -> None:
    found = attached(world, "log", lambda d: keyless_dsse_bundle(Rekor(), signing(world.fulcio), d))
    refused(found, Outcome.UNSIGNED, "from a log the trusted root does not name")


def test_a_dsse_entry_for_another_statement_is_refused(world: World) -> None:
    other = "sha256:" + "ab" * 32
    found = attached(
        world,
        "body-dsse",
        lambda d: keyless_dsse_bundle(world.rekor, signing(world.fulcio), d, body_digest=other),
    )
    refused(found, Outcome.UNSIGNED, "the log entry is for another DSSE payload")


def test_a_hashedrekord_entry_for_another_digest_is_refused(world: World) -> None:
    repository, digest = world.image("body-hashedrekord")
    manifest = image_manifest(world.registry, repository, digest)
    bundle = keyless_message_bundle(world.rekor, signing(world.fulcio), manifest, "cd" * 32)
    attach(world.registry, repository, digest, bundle)
    refused(world.verdict(repository, digest), Outcome.UNSIGNED, "for another artifact digest")


@pytest.mark.parametrize("kind", ["dsse", "hashedrekord"])
def test_an_entry_logged_by_another_signer_is_refused(world: World, kind: str) -> None:
    """The log vouches for someone else's signature of the same artifact."""
    repository, digest = world.image(f"body-signer-{kind}")
    signer, other = signing(world.fulcio), signing(world.fulcio)
    if kind == "dsse":
        bundle = keyless_dsse_bundle(world.rekor, signer, digest, body_signer=other)
        reason = "the log entry names another signature or certificate"
    else:
        manifest = image_manifest(world.registry, repository, digest)
        bundle = keyless_message_bundle(world.rekor, signer, manifest, body_signer=other)
        reason = "the log entry is for another signature"
    attach(world.registry, repository, digest, bundle)
    refused(world.verdict(repository, digest), Outcome.UNSIGNED, reason)


def test_the_denial_names_the_identity_that_signed(world: World) -> None:
    other = "mallory@example.org"
    repository, digest = world.image("denial")
    signer = signing(world.fulcio, subject=other, issuer="https://accounts.example.com")
    attach(world.registry, repository, digest, keyless_dsse_bundle(world.rekor, signer, digest))
    decision = world.decide(repository, digest)
    assert not decision.allowed
    assert "keyless " + WORKFLOW + " from " + GITHUB in decision.message
    assert f"identity ({other} from https://accounts.example.com) is none" in decision.message


def test_a_verdict_is_cached_per_trust(world: World) -> None:
    repository, digest = world.image("cached")
    attach(
        world.registry,
        repository,
        digest,
        keyless_dsse_bundle(world.rekor, signing(world.fulcio), digest),
    )
    rule = world.rule()
    verifier = SignatureVerifier(retries=1)
    reference = parse_registry(f"{world.registry.host}/{repository}@{digest}")
    assert verifier.verify(reference, (), rule.keyless).outcome is Outcome.VERIFIED
    calls = verifier.registry_calls
    assert verifier.verify(reference, (), rule.keyless).outcome is Outcome.VERIFIED
    assert verifier.registry_calls == calls
    # without the keyless trust it is another question, and the answer is no
    assert verifier.verify(reference, (), None).outcome is Outcome.UNSIGNED


# -- the policy ---------------------------------------------------------------------------


def _root_file(world: World, name: str, change: Callable[[dict[str, Any]], None]) -> str:
    document = trusted_root(world.fulcio, world.rekor)
    change(document)
    (world.directory / name).write_text(json.dumps(document))
    return name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(tlogs=[]), "keyless.trustedRoot: tlogs: name at least one"),
        (
            lambda d: d["tlogs"][0]["publicKey"].update(rawBytes="bm90IGEga2V5"),
            "tlogs[0].publicKey.rawBytes is not a DER public key",
        ),
        (
            lambda d: d["certificateAuthorities"][0]["certChain"]["certificates"][0].update(
                rawBytes="%%%"
            ),
            "certificateAuthorities[0].certChain.certificates[0].rawBytes is not base64",
        ),
        (
            lambda d: d["certificateAuthorities"][0].update(validFor={"start": "yesterday"}),
            "certificateAuthorities[0].validFor.start is not an RFC 3339 UTC time",
        ),
        (lambda d: d.update(extra=1), "the document: unknown field 'extra'"),
        (lambda d: d["tlogs"][0].pop("logId"), "tlogs[0].logId is not an object"),
    ],
)
def test_a_malformed_trusted_root_is_a_policy_error_naming_the_field(
    world: World, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    name = _root_file(world, f"bad-{abs(hash(message))}.json", change)
    with pytest.raises(PolicyError) as raised:
        world.policy(trustedRoot=name)
    assert "images.signatures[0].keyless.trustedRoot" in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("keyless", "message"),
    [
        ({"trustedRoot": "missing.json"}, "keyless.trustedRoot: cannot read missing.json"),
        ({"identities": []}, "keyless.identities: name at least one issuer and subject"),
        ({"identities": [{"subject": "a"}]}, "identities[0].issuer is missing"),
        ({"identities": [{"issuer": "i"}]}, "identities[0] needs exactly one of subject and"),
        (
            {"identities": [{"issuer": "i", "subject": "a", "subjectRegExp": "a"}]},
            "identities[0] needs exactly one of subject and subjectRegExp",
        ),
        ({"identities": [{"issuer": "i", "subjectRegExp": "("}]}, "subjectRegExp is not a regular"),
        ({"identities": [{"issuer": "i", "email": "a"}]}, "identities[0].email: unknown field"),
        ({"rekor": "x"}, "keyless.rekor: unknown field (trustedRoot, identities)"),
    ],
)
def test_a_bad_keyless_rule_is_a_policy_error_naming_the_field(
    world: World, keyless: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        world.policy(**keyless)
    assert message in str(raised.value)


def test_the_policy_digest_covers_the_trusted_root(world: World) -> None:
    first = world.policy().digest
    other = _root_file(world, "other.json", lambda d: d["tlogs"].append(Rekor().transparency_log()))
    assert world.policy(trustedRoot=other).digest != first
    assert world.policy().digest == first


def test_a_rule_needs_keys_or_keyless(world: World) -> None:
    document = {
        "apiVersion": "kubeproof.dev/v1alpha1",
        "kind": "AdmissionPolicy",
        "images": {"signatures": [{"repositories": ["r.example.com/*"]}]},
    }
    with pytest.raises(PolicyError, match=r"keys: name at least one public key .*or set keyless"):
        parse_policy(document)


def test_check_policy_names_the_keyless_signers(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = {
        "apiVersion": "kubeproof.dev/v1alpha1",
        "kind": "AdmissionPolicy",
        "images": {
            "signatures": [
                {
                    "repositories": ["r.example.com/*"],
                    "keyless": {
                        "trustedRoot": "trusted_root.json",
                        "identities": [{"issuer": GITHUB, "subject": WORKFLOW}],
                    },
                }
            ]
        },
    }
    path = world.directory / "keyless-policy.yaml"
    path.write_text(json.dumps(policy))
    assert main(["webhook", "check-policy", str(path)]) == 0
    assert f"signed by keyless {WORKFLOW} from {GITHUB}" in capsys.readouterr().out


def test_integrated_time_window_is_the_certificates(world: World) -> None:
    """Sanity of the test's CA: ten minutes, as Fulcio issues."""
    certificate = signing(world.fulcio).certificate
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == timedelta(minutes=10)
