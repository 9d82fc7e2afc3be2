"""Sigstore bundles at admission, attached as referrers to images in a real registry on
127.0.0.1 (Debian's docker-registry has no referrers API, so they are found by the
referrers tag schema), plus a fuzz of the bundle parser.

Each image is pushed fresh and judged by a fresh verifier, so no verdict is cached across
tests."""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from admission.bundling import (
    BUNDLE_V02,
    attach,
    dsse_bundle,
    image_manifest,
    keyless_bundle,
    message_bundle,
    statement,
)
from admission.cosign import PrivateKey, cosign_sign, new_key, public_pem, push_image
from admission.reviews import pod_spec, review, workload
from images.builders import OCI_INDEX
from images.registry_server import Registry
from kubeproof.admission.decide import Decider, Decision
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.review import parse_review
from kubeproof.admission.signatures import Outcome, SignatureVerifier, Verdict, load_policy_key
from kubeproof.images.reference import parse_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trusted() -> PrivateKey:
    return new_key()


def verdict(registry: Registry, repository: str, digest: str, key: PrivateKey) -> Verdict:
    reference = parse_registry(f"{registry.host}/{repository}@{digest}")
    keys = (load_policy_key(public_pem(key)),)
    return SignatureVerifier(retries=1).verify(reference, keys)


def decide(registry: Registry, image: str, key: PrivateKey) -> Decision:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {
                "signatures": [
                    {"repositories": [f"{registry.host}/kb/*"], "keys": [public_pem(key)]}
                ]
            },
        }
    )
    decider = Decider(policy, signatures=SignatureVerifier(retries=1))
    return decider.decide(parse_review(review(workload("Pod", "web", pod_spec(image=image)))))


def fresh_image(registry: Registry, name: str) -> tuple[str, str]:
    repository = f"kb/{name}"
    return repository, push_image(registry, repository, "1", f"image {name}")


# -- accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_a_dsse_bundle_by_a_policy_key_admits_the_image(registry: Registry, kind: str) -> None:
    key = new_key(kind)
    repository, digest = fresh_image(registry, f"dsse-{kind}")
    image = f"{registry.host}/{repository}@{digest}"
    assert not decide(registry, image, key).allowed  # nothing attached yet
    attach(registry, repository, digest, dsse_bundle(key, statement(digest)))
    decision = decide(registry, image, key)
    assert decision.allowed and not decision.unjudged, decision
    found = verdict(registry, repository, digest, key)
    assert found.outcome is Outcome.VERIFIED
    assert found.detail == f"{load_policy_key(public_pem(key)).fingerprint} (Sigstore bundle)"


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_a_message_signature_over_the_image_manifest_admits_it(
    registry: Registry, kind: str
) -> None:
    key = new_key(kind)
    repository, digest = fresh_image(registry, f"message-{kind}")
    manifest = image_manifest(registry, repository, digest)
    attach(registry, repository, digest, message_bundle(key, manifest, BUNDLE_V02), BUNDLE_V02)
    assert verdict(registry, repository, digest, key).outcome is Outcome.VERIFIED


def test_a_bundle_and_a_cosign_tag_signature_each_suffice(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "either")
    cosign_sign(registry, repository, digest, new_key())  # an untrusted classic signature
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest)))
    found = verdict(registry, repository, digest, trusted)
    assert (found.outcome, found.detail.endswith("(Sigstore bundle)")) == (Outcome.VERIFIED, True)


def test_a_verified_bundle_is_cached_by_digest(registry: Registry, trusted: PrivateKey) -> None:
    repository, digest = fresh_image(registry, "cached")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest)))
    verifier = SignatureVerifier(retries=1)
    reference = parse_registry(f"{registry.host}/{repository}@{digest}")
    keys = (load_policy_key(public_pem(trusted)),)
    assert verifier.verify(reference, keys).outcome is Outcome.VERIFIED
    # .sig tag, referrers API, referrers tag, referrer manifest, bundle blob
    assert verifier.registry_calls == 5
    assert verifier.verify(reference, keys).outcome is Outcome.VERIFIED
    assert verifier.registry_calls == 5


# -- refused ------------------------------------------------------------------------------


def test_a_bundle_by_another_key_is_refused(registry: Registry, trusted: PrivateKey) -> None:
    repository, digest = fresh_image(registry, "stranger")
    attach(registry, repository, digest, dsse_bundle(new_key(), statement(digest)))
    assert verdict(registry, repository, digest, trusted).outcome is Outcome.UNKNOWN_KEY
    text = decide(registry, f"{registry.host}/{repository}@{digest}", trusted).message
    assert "is signed, but by none of the keys images.signatures[0] trusts" in text


def test_a_statement_about_another_image_is_refused(
    registry: Registry, trusted: PrivateKey
) -> None:
    """A trusted key's bundle copied from another image must not count."""
    repository, digest = fresh_image(registry, "copied")
    other = push_image(registry, repository, "2", "the image really signed")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(other)))
    found = verdict(registry, repository, digest, trusted)
    assert (found.outcome, found.detail) == (Outcome.WRONG_DIGEST, other)
    text = decide(registry, f"{registry.host}/{repository}@{digest}", trusted).message
    assert f"for another image ({other})" in text


def test_a_message_signature_over_another_manifest_is_refused(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "other-manifest")
    other = push_image(registry, repository, "2", "another build")
    bundle = message_bundle(trusted, image_manifest(registry, repository, other))
    attach(registry, repository, digest, bundle)
    found = verdict(registry, repository, digest, trusted)
    assert (found.outcome, found.detail) == (Outcome.WRONG_DIGEST, other)


def test_a_referrer_whose_subject_is_another_image_is_ignored(
    registry: Registry, trusted: PrivateKey
) -> None:
    """The referrers tag is a plain tag anyone with push rights can write: the referrer
    manifest's own subject must name the image."""
    repository, digest = fresh_image(registry, "listed")
    other = push_image(registry, repository, "2", "another build")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest)), subject=other)
    assert verdict(registry, repository, digest, trusted).outcome is Outcome.UNSIGNED


def test_a_tampered_dsse_payload_is_refused(registry: Registry, trusted: PrivateKey) -> None:
    repository, digest = fresh_image(registry, "tampered")
    other = push_image(registry, repository, "2", "signed build")
    bundle = dsse_bundle(trusted, statement(other))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement(digest)).decode()
    attach(registry, repository, digest, bundle)
    found = verdict(registry, repository, digest, trusted)
    assert found.outcome is Outcome.UNKNOWN_KEY
    assert "payload changed after signing" in found.detail


def test_a_dsse_payload_that_is_not_in_toto_is_not_verifiable(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "payload-type")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest), "text/plain"))
    found = verdict(registry, repository, digest, trusted)
    assert found.outcome is Outcome.UNSIGNED and found.bundles
    assert "dsseEnvelope.payloadType 'text/plain' is not application/vnd.in-toto+json" in (
        found.detail
    )


def test_an_unknown_bundle_media_type_is_not_verifiable(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "media-type")
    bundle = dsse_bundle(
        trusted, statement(digest), media_type="application/vnd.dev.sigstore.bundle.v9+json"
    )
    attach(registry, repository, digest, bundle)
    found = verdict(registry, repository, digest, trusted)
    assert found.outcome is Outcome.UNSIGNED
    assert "unknown bundle media type 'application/vnd.dev.sigstore.bundle.v9+json'" in (
        found.detail
    )


def test_a_referrer_of_another_artifact_type_is_not_read(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "artifact-type")
    bundle = dsse_bundle(trusted, statement(digest))
    attach(registry, repository, digest, bundle, artifact_type="application/spdx+json")
    found = verdict(registry, repository, digest, trusted)
    assert (found.outcome, found.detail) == (Outcome.UNSIGNED, "")


def test_a_keyless_bundle_counts_as_unsigned_and_the_denial_says_why(
    registry: Registry, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "keyless")
    signer = ec.generate_private_key(ec.SECP256R1())
    attach(registry, repository, digest, keyless_bundle(signer, digest))
    image = f"{registry.host}/{repository}@{digest}"
    decision = decide(registry, image, trusted)
    assert not decision.allowed
    assert "has no signature" in decision.message
    assert (
        "a Sigstore bundle is attached but not verifiable: keyless bundle without trusted root"
        in decision.message
    )


def test_a_malformed_bundle_is_not_verifiable(registry: Registry, trusted: PrivateKey) -> None:
    repository, digest = fresh_image(registry, "malformed")
    attach(registry, repository, digest, b'{"mediaType": "application/vnd.dev.sigstore')
    found = verdict(registry, repository, digest, trusted)
    assert (found.outcome, found.detail) == (Outcome.UNSIGNED, "not JSON")


# -- the referrers API ----------------------------------------------------------------------


class _ReferrersApi(http.server.BaseHTTPRequestHandler):
    """The registry with the OCI 1.1 referrers API in front: docker-registry 2.8 has none.
    The list is the one the registry stores under the referrers tag, which this front
    hides, so only the API can have found a bundle; `fault` is a status for the API to
    answer instead, and a 4xx for it shows the referrers tag again (a registry that does
    not know the API's path)."""

    server: _Front

    def do_GET(self) -> None:
        match = re.fullmatch(r"/v2/(.+)/referrers/sha256:([0-9a-f]{64})", self.path)
        hidden = re.fullmatch(r"/v2/.+/manifests/sha256-[0-9a-f]{64}", self.path)
        if match and self.server.fault:
            self._answer(self.server.fault, {}, b"")
        elif match:
            status, _, body = self.server.registry.request(
                "GET",
                f"/v2/{match[1]}/manifests/sha256-{match[2]}",
                headers={"Accept": OCI_INDEX},
            )
            empty = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
            self._answer(
                200, {"Content-Type": OCI_INDEX}, body if status == 200 else empty.encode()
            )
        elif hidden and not 400 <= self.server.fault < 500:
            self._answer(404, {}, b"")
        else:
            headers = {k: v for k, v in self.headers.items() if k == "Accept"}
            status, answer, body = self.server.registry.request("GET", self.path, headers=headers)
            kept = ("Content-Type", "Docker-Content-Digest")
            self._answer(status, {k: answer[k] for k in kept if k in answer}, body)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Front(http.server.ThreadingHTTPServer):
    def __init__(self, registry: Registry) -> None:
        super().__init__(("127.0.0.1", 0), _ReferrersApi)
        self.registry, self.fault = registry, 0  # the API's status, when not 0


@pytest.fixture
def referrers_api(registry: Registry) -> Iterator[_Front]:
    front = _Front(registry)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    yield front
    front.shutdown()
    front.server_close()


def test_bundles_are_found_through_the_referrers_api(
    registry: Registry, referrers_api: _Front, trusted: PrivateKey
) -> None:
    repository, digest = fresh_image(registry, "api")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest)))
    front = f"127.0.0.1:{referrers_api.server_address[1]}"
    reference = parse_registry(f"{front}/{repository}@{digest}")
    keys = (load_policy_key(public_pem(trusted)),)
    assert SignatureVerifier(retries=1).verify(reference, keys).outcome is Outcome.VERIFIED


@pytest.mark.parametrize("status", [404, 405])
def test_a_registry_without_the_referrers_api_is_read_by_the_referrers_tag(
    registry: Registry, referrers_api: _Front, trusted: PrivateKey, status: int
) -> None:
    repository, digest = fresh_image(registry, f"no-api-{status}")
    attach(registry, repository, digest, dsse_bundle(trusted, statement(digest)))
    referrers_api.fault = status
    front = f"127.0.0.1:{referrers_api.server_address[1]}"
    reference = parse_registry(f"{front}/{repository}@{digest}")
    keys = (load_policy_key(public_pem(trusted)),)
    assert SignatureVerifier(retries=1).verify(reference, keys).outcome is Outcome.VERIFIED


@pytest.mark.parametrize("setting", ["fail-closed", "fail-open"])
def test_a_failing_referrers_api_follows_registry_errors(
    registry: Registry, referrers_api: _Front, trusted: PrivateKey, setting: str
) -> None:
    repository, digest = fresh_image(registry, f"api-fault-{setting}")
    referrers_api.fault = 500
    front = f"127.0.0.1:{referrers_api.server_address[1]}"
    reference = parse_registry(f"{front}/{repository}@{digest}")
    keys = (load_policy_key(public_pem(trusted)),)
    found = SignatureVerifier(retries=1).verify(reference, keys)
    assert found.outcome is Outcome.REGISTRY_ERROR and "HTTP 500" in found.detail
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {
                "signatures": [{"repositories": [f"{front}/kb/*"], "keys": [public_pem(trusted)]}],
                "registryErrors": setting,
            },
        }
    )
    decider = Decider(policy, signatures=SignatureVerifier(retries=1))
    image = f"{front}/{repository}@{digest}"
    decision = decider.decide(parse_review(review(workload("Pod", "w", pod_spec(image=image)))))
    assert decision.allowed is (setting == "fail-open")
