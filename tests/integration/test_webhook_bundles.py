"""Sigstore bundles at admission behind a real kube-apiserver, with a real registry.

An image is pushed to a registry on 127.0.0.1; a pod running it is refused while nothing
vouches for it, and admitted once the test has attached a Sigstore bundle (a DSSE in-toto
statement signed with a key generated here) as a referrer of its digest. The webhook
keeps no negative verdicts here (negative TTL 0) so the same image can be tried twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from controlplane import ControlPlane
from cryptography.hazmat.primitives.asymmetric import ec
from webhook_helpers import LABEL, call, pod, registered_webhooks, serving, wait_for_webhook

from admission.bundling import attach, dsse_bundle, keyless_bundle, statement
from admission.cosign import PrivateKey, new_key, public_pem, push_image
from admission.reviews import pod_spec
from admission.webhook_tls import Tls, make_tls
from images.registry_server import Registry
from kubeproof.admission.decide import Decider
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer
from kubeproof.admission.signatures import SignatureVerifier

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhook-bundles")]

RUN = uuid.uuid4().hex[:8]
NAMESPACE = f"kp-wh-bundle-{RUN}"


@pytest.fixture(scope="module")
def release_key() -> PrivateKey:
    return new_key("ed25519")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def registered(
    control_plane: ControlPlane, registry: Registry, release_key: PrivateKey, tls: Tls
) -> Iterator[AdmissionServer]:
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {
                "signatures": [
                    {"repositories": [f"{registry.host}/kp/*"], "keys": [public_pem(release_key)]}
                ],
            },
        }
    )
    verifier = SignatureVerifier(negative_ttl_s=0.0)
    with serving(Decider(policy, signatures=verifier), tls) as server:
        url = f"https://127.0.0.1:{server.port}/validate"
        configurations = {f"kp-wh-bundle-{RUN}": (url, f"{RUN}-bundle", "Fail")}
        namespaces = {NAMESPACE: {LABEL: f"{RUN}-bundle"}}
        with registered_webhooks(control_plane, tls, configurations, namespaces):
            yield server


def test_an_unsigned_image_is_denied_and_allowed_once_a_bundle_is_attached(
    control_plane: ControlPlane,
    registry: Registry,
    release_key: PrivateKey,
    registered: AdmissionServer,
) -> None:
    digest = push_image(registry, "kp/app", "1.0", "release 1.0")
    image = f"{registry.host}/kp/app@{digest}"
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"

    wait_for_webhook(control_plane, pods, pod("probe", pod_spec(image=image)))
    denied = call(control_plane, "POST", pods, pod("app", pod_spec(image=image)))
    assert denied.status == 403, denied.body
    message = denied.json()["message"]
    assert "[images.signed]" in message and f"image {image}" in message
    assert "has no signature" in message
    assert control_plane.get(f"{pods}/app").status == 404

    attach(registry, "kp/app", digest, dsse_bundle(release_key, statement(digest)))
    allowed = call(control_plane, "POST", pods, pod("app", pod_spec(image=image)))
    assert allowed.status == 201, allowed.body


def test_a_keyless_bundle_does_not_admit_an_image(
    control_plane: ControlPlane, registry: Registry, registered: AdmissionServer
) -> None:
    digest = push_image(registry, "kp/keyless", "1.0", "keyless build")
    signer = ec.generate_private_key(ec.SECP256R1())
    attach(registry, "kp/keyless", digest, keyless_bundle(signer, digest))
    image = f"{registry.host}/kp/keyless@{digest}"
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    reply = call(control_plane, "POST", pods, pod("k", pod_spec(image=image)))
    assert reply.status == 403, reply.body
    assert "keyless bundle without trusted root" in reply.json()["message"]
