"""cosign signature verification at admission, against a real registry on 127.0.0.1.

Keys are generated here; images and their `.sig` manifests are pushed as cosign lays them
out (tests/admission/cosign.py). Faults a real registry cannot produce on demand (a 503)
come from a tiny local server."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from admission.cosign import (
    PrivateKey,
    cosign_sign,
    new_key,
    payload_for,
    public_pem,
    push_image,
    push_signatures,
    sign,
)
from admission.reviews import pod_spec, review, workload
from images.registry_server import Registry, free_port
from kubeproof.admission.decide import Decider, Decision
from kubeproof.admission.evidence import decision_values
from kubeproof.admission.policy import PolicyError, load_policy, parse_policy
from kubeproof.admission.review import parse_review
from kubeproof.admission.signatures import (
    MAX_PAYLOAD_BYTES,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Outcome,
    SignatureVerifier,
    _signature_layers,
    load_policy_key,
)
from kubeproof.images.reference import parse_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trusted() -> PrivateKey:
    return new_key()


def policy_document(repositories: list[str], keys: list[str], **images: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproof.dev/v1alpha1",
        "kind": "AdmissionPolicy",
        "images": {"signatures": [{"repositories": repositories, "keys": keys}], **images},
    }


def decide(
    image: str,
    key: PrivateKey,
    host: str,
    verifier: SignatureVerifier | None = None,
    **images: Any,
) -> Decision:
    policy = parse_policy(policy_document([f"{host}/kp/*"], [public_pem(key)], **images))
    decider = Decider(policy, signatures=verifier or SignatureVerifier(retries=1))
    body = review(workload("Pod", "web", pod_spec(image=image)))
    return decider.decide(parse_review(body))


def message(decision: Decision) -> str:
    assert not decision.allowed, decision
    assert decision.rules == ("images.signed",)
    return decision.message


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_an_image_signed_by_a_policy_key_is_allowed(registry: Registry, kind: str) -> None:
    key = new_key(kind)
    digest = push_image(registry, f"kp/signed-{kind}", "1", f"signed {kind}")
    cosign_sign(registry, f"kp/signed-{kind}", digest, key)
    decision = decide(f"{registry.host}/kp/signed-{kind}@{digest}", key, registry.host)
    assert decision.allowed and decision.outcome == "allowed", decision
    assert not decision.unjudged


def test_a_tag_is_resolved_to_its_digest_and_the_digest_verified(
    registry: Registry, trusted: PrivateKey
) -> None:
    digest = push_image(registry, "kp/tagged", "2.0", "tagged")
    image = f"{registry.host}/kp/tagged:2.0"
    unsigned = decide(image, trusted, registry.host)  # not signed yet
    assert f"image {image} (resolved to {digest}) has no signature" in message(unsigned)
    cosign_sign(registry, "kp/tagged", digest, trusted)
    assert decide(image, trusted, registry.host).allowed


def test_an_unsigned_image_is_denied_naming_image_rule_and_fix(
    registry: Registry, trusted: PrivateKey
) -> None:
    digest = push_image(registry, "kp/unsigned", "1", "unsigned")
    image = f"{registry.host}/kp/unsigned@{digest}"
    text = message(decide(image, trusted, registry.host))
    assert f"image {image}" in text
    assert "has no signature" in text and f"sha256-{digest[7:]}.sig does not exist" in text
    assert "images.signatures[0] requires one" in text
    assert f"cosign sign --key KEY {registry.host}/kp/unsigned@{digest}" in text
    assert "Fix: Sign the image by digest" in text
    assert "(field spec.containers[0].image)" in text


def test_an_image_signed_by_another_key_is_denied(registry: Registry, trusted: PrivateKey) -> None:
    digest = push_image(registry, "kp/stranger", "1", "stranger")
    cosign_sign(registry, "kp/stranger", digest, new_key())
    text = message(decide(f"{registry.host}/kp/stranger@{digest}", trusted, registry.host))
    assert "is signed, but by none of the keys images.signatures[0] trusts" in text
    fingerprint = load_policy_key(public_pem(trusted)).fingerprint
    assert fingerprint in text


def test_a_signature_for_another_digest_is_denied(registry: Registry, trusted: PrivateKey) -> None:
    """A valid signature by a trusted key, copied from another image, must not count."""
    digest = push_image(registry, "kp/copied", "1", "copied")
    other = push_image(registry, "kp/copied", "2", "the image really signed")
    payload = payload_for(f"{registry.host}/kp/copied", other)
    push_signatures(
        registry, "kp/copied", digest, [{"payload": payload, "signature": sign(trusted, payload)}]
    )
    text = message(decide(f"{registry.host}/kp/copied@{digest}", trusted, registry.host))
    assert f"a signature by a trusted key for another image ({other})" in text


def test_one_good_signature_among_others_is_enough(registry: Registry, trusted: PrivateKey) -> None:
    digest = push_image(registry, "kp/many", "1", "many")
    payload = payload_for(f"{registry.host}/kp/many", digest)
    push_signatures(
        registry,
        "kp/many",
        digest,
        [
            {"payload": payload, "signature": sign(new_key(), payload)},  # another team's
            {"payload": payload, "signature": "not base64!"},
            {"payload": b"{}", "signature": sign(trusted, b"{}")},  # not a cosign payload
            {"payload": payload, "signature": sign(trusted, payload), "mediaType": "text/plain"},
            {"payload": payload, "signature": None},
            {"payload": payload, "signature": sign(trusted, payload)},
        ],
    )
    assert decide(f"{registry.host}/kp/many@{digest}", trusted, registry.host).allowed


def test_malformed_signature_layers_deny_without_crashing(
    registry: Registry, trusted: PrivateKey
) -> None:
    digest = push_image(registry, "kp/junk", "1", "junk")
    payload = payload_for(f"{registry.host}/kp/junk", digest)
    push_signatures(
        registry,
        "kp/junk",
        digest,
        [
            {"payload": payload, "signature": "!!!"},
            {"payload": b"\xff\xfe not json", "signature": sign(trusted, b"\xff\xfe not json")},
        ],
    )
    text = message(decide(f"{registry.host}/kp/junk@{digest}", trusted, registry.host))
    assert "for another image (a payload that is not a cosign signature)" in text


def test_require_digest_denies_a_tag_before_asking_the_registry(
    registry: Registry, trusted: PrivateKey
) -> None:
    push_image(registry, "kp/bytag", "1", "by tag")
    verifier = SignatureVerifier()
    decision = decide(
        f"{registry.host}/kp/bytag:1", trusted, registry.host, verifier, requireDigest=True
    )
    assert not decision.allowed
    assert "images.signed" in decision.rules and "workload.image-digest" in decision.rules
    assert "is referenced by tag" in decision.message
    assert verifier.registry_calls == 0


def test_images_outside_every_rule_are_not_judged(trusted: PrivateKey) -> None:
    verifier = SignatureVerifier()
    decision = decide("registry.example.com/other/app:1", trusted, "127.0.0.1:1", verifier)
    assert decision.allowed and verifier.registry_calls == 0


@pytest.mark.parametrize("setting", ["fail-closed", "fail-open"])
def test_an_unreachable_registry_follows_registry_errors(trusted: PrivateKey, setting: str) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    image = f"{host}/kp/app@sha256:{'a' * 64}"
    decision = decide(image, trusted, host, registryErrors=setting)
    if setting == "fail-closed":
        text = message(decision)
        assert "could not be checked for a signature" in text and "cannot reach it" in text
        assert "images.registryErrors is fail-closed" in text
    else:
        assert decision.allowed
        assert any(
            entry.startswith("images.signed:") and "fail-open" in entry
            for entry in decision.unjudged
        ), decision.unjudged
        answer = decision.review_answer("uid")["response"]
        assert "images.signed" in answer["auditAnnotations"]["not-evaluated"]


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def unavailable_registry() -> Iterator[str]:
    """A registry answering 503 to everything: a real one cannot be made to do so."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("setting", ["fail-closed", "fail-open"])
def test_a_registry_answering_5xx_follows_registry_errors(
    unavailable_registry: str, trusted: PrivateKey, setting: str
) -> None:
    image = f"{unavailable_registry}/kp/app:1"
    decision = decide(image, trusted, unavailable_registry, registryErrors=setting)
    assert decision.allowed is (setting == "fail-open")
    if setting == "fail-closed":
        assert "HTTP 503" in message(decision)


def test_an_image_missing_from_its_registry_is_denied(
    registry: Registry, trusted: PrivateKey
) -> None:
    text = message(decide(f"{registry.host}/kp/absent:9", trusted, registry.host))
    assert "is not in its registry" in text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_verdicts_are_cached_by_digest_positive_and_negative_apart(
    registry: Registry, trusted: PrivateKey
) -> None:
    clock = Clock()
    verifier = SignatureVerifier(positive_ttl_s=300, negative_ttl_s=30, clock=clock)
    keys = (load_policy_key(public_pem(trusted)),)
    digest = push_image(registry, "kp/cached", "1", "cached")
    reference = parse_registry(f"{registry.host}/kp/cached@{digest}")

    assert verifier.verify(reference, keys).outcome is Outcome.UNSIGNED
    cosign_sign(registry, "kp/cached", digest, trusted)
    calls = verifier.registry_calls
    clock.now += 29  # the negative verdict still holds: no registry call
    assert verifier.verify(reference, keys).outcome is Outcome.UNSIGNED
    assert verifier.registry_calls == calls
    clock.now += 2  # expired: asked again, now signed
    assert verifier.verify(reference, keys).outcome is Outcome.VERIFIED
    calls = verifier.registry_calls
    clock.now += 299
    assert verifier.verify(reference, keys).outcome is Outcome.VERIFIED
    assert verifier.registry_calls == calls
    clock.now += 2
    assert verifier.verify(reference, keys).outcome is Outcome.VERIFIED
    assert verifier.registry_calls > calls


def test_a_registry_error_is_not_cached(trusted: PrivateKey) -> None:
    verifier = SignatureVerifier(retries=1)
    keys = (load_policy_key(public_pem(trusted)),)
    reference = parse_registry(f"127.0.0.1:{free_port()}/kp/app@sha256:{'b' * 64}")
    assert verifier.verify(reference, keys).outcome is Outcome.REGISTRY_ERROR
    calls = verifier.registry_calls
    assert verifier.verify(reference, keys).outcome is Outcome.REGISTRY_ERROR
    assert verifier.registry_calls == calls + 1  # asked again, not remembered as unsigned


# -- the policy ------------------------------------------------------------------------


def test_keys_may_be_files_relative_to_the_policy(tmp_path: Path, trusted: PrivateKey) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pub").write_text(public_pem(trusted))
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: kubeproof.dev/v1alpha1\nkind: AdmissionPolicy\nimages:\n"
        "  registryErrors: fail-open\n  signatures:\n"
        "    - repositories: ['registry.example.com/team/*']\n"
        "      keys: [keys/release.pub]\n"
    )
    images = load_policy(tmp_path / "policy.yaml").images
    assert images.registry_errors == "fail-open"
    rule = images.signature_rule_for("registry.example.com/team/app")
    assert rule is not None and rule.required and rule.name == "images.signatures[0]"
    assert rule.keys[0].fingerprint == load_policy_key(public_pem(trusted)).fingerprint
    assert images.signature_rule_for("registry.example.com/other/app") is None


@pytest.mark.parametrize(
    ("signatures", "error"),
    [
        ([{"repositories": ["r.example/x/*"], "keys": ["missing.pub"]}], "keys[0]: cannot read"),
        (
            [{"repositories": ["r.example/x/*"], "keys": ["-----BEGIN PUBLIC KEY-----\nxx"]}],
            "keys[0]: not a PEM public key",
        ),
        ([{"repositories": ["r.example/x/*"], "keys": []}], "keys: name at least one"),
        ([{"repositories": ["team/*"], "keys": ["k"]}], "repositories[0]: 'team/*' names no"),
        ([{"repositories": ["r.example/x/*"], "keys": ["k"], "require": True}], "unknown field"),
        ([{"keys": ["k"]}], "repositories: name at least one"),
        (
            [{"repositories": ["r.example/x/*"], "keys": ["k"], "required": "yes"}],
            "required: 'yes' is not true or false",
        ),
        ("all", "images.signatures is not a list"),
    ],
)
def test_bad_signature_rules_name_their_field(tmp_path: Path, signatures: Any, error: str) -> None:
    with pytest.raises(PolicyError, match=r"images\.signatures") as raised:
        parse_policy(
            policy_document([], []) | {"images": {"signatures": signatures}}, "p", tmp_path
        )
    assert error in str(raised.value)


def test_bad_registry_errors_setting_is_refused(trusted: PrivateKey) -> None:
    document = policy_document(["r.example/x/*"], [public_pem(trusted)], registryErrors="open")
    with pytest.raises(PolicyError, match=r"images\.registryErrors: 'open' is not one of"):
        parse_policy(document)


def test_a_rule_that_is_not_required_is_not_enforced(
    registry: Registry, trusted: PrivateKey
) -> None:
    digest = push_image(registry, "kp/optional", "1", "optional")
    document = policy_document([f"{registry.host}/kp/*"], [public_pem(trusted)])
    document["images"]["signatures"][0]["required"] = False
    document["enforce"] = {"checks": ["workload.image-latest-tag"]}
    decider = Decider(parse_policy(document))
    image = f"{registry.host}/kp/optional@{digest}"
    body = review(workload("Pod", "web", pod_spec(image=image)))
    assert decider.decide(parse_review(body)).allowed
    assert all(check.id != "images.signed" for check in decider.checks)


def test_unsupported_keys_are_refused_with_the_reason(tmp_path: Path) -> None:
    weak = ec.generate_private_key(ec.SECP224R1()).public_key()
    exchange = x25519.X25519PrivateKey.generate().public_key()
    for key, reason in ((weak, "curve secp224r1 is not supported"), (exchange, "unsupported")):
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        document = policy_document(["r.example/x/*"], [pem])
        with pytest.raises(PolicyError, match=r"images\.signatures\[0\]\.keys\[0\]") as raised:
            parse_policy(document)
        assert reason in str(raised.value)
        assert "BEGIN" not in str(raised.value)  # the key's text is never echoed


def test_oversized_or_malformed_signature_layers_are_skipped_not_fetched() -> None:
    """A payload announced as huge is not a registry error (which fail-open would admit):
    it is never fetched and cannot count as a signature."""
    signature = base64.b64encode(b"sig").decode()
    good = {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:" + "c" * 64, "size": 10}
    layers = [
        {**good, "size": MAX_PAYLOAD_BYTES + 1},
        {**good, "size": True},
        {**good, "digest": "sha256:short"},
        {**good, "annotations": {SIGNATURE_ANNOTATION: ["not", "a", "string"]}},
        "not a layer",
        {**good, "annotations": {SIGNATURE_ANNOTATION: signature}},
    ]
    document = json.dumps({"layers": layers}).encode()
    assert [(d.size, s) for d, s in _signature_layers(document)] == [(10, b"sig")]
    assert _signature_layers(b"\x00 not json") == []
    assert _signature_layers(b'{"layers": 5}') == []


def test_a_decision_records_the_digest_a_tag_resolved_to(
    registry: Registry, trusted: PrivateKey
) -> None:
    digest = push_image(registry, "kp/recorded", "3.1", "recorded")
    cosign_sign(registry, "kp/recorded", digest, trusted)
    image = f"{registry.host}/kp/recorded:3.1"
    policy = parse_policy(policy_document([f"{registry.host}/kp/*"], [public_pem(trusted)]))
    decider = Decider(policy, signatures=SignatureVerifier(retries=1))
    request = parse_review(review(workload("Pod", "web", pod_spec(image=image))))
    assert decider.image_digest(image) is None  # not resolved yet: no registry call for it
    decision = decider.decide(request)
    assert decision.allowed
    values = decision_values(
        request, decision, policy.digest, datetime.now(UTC), decider.image_digest
    )
    assert values["images"] == [{"container": "app", "image": image, "digest": digest}]
    assert decider.image_digest("not a reference!") is None
