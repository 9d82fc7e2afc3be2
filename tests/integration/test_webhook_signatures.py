"""Signature verification at admission behind a real kube-apiserver, with a real registry.

An image is pushed to a registry on 127.0.0.1; a pod running it is refused while it is
unsigned, and admitted once the test has signed it as cosign does. The webhook keeps no
negative verdicts here (negative TTL 0) so the same image can be tried twice in seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from controlplane import ControlPlane
from webhook_helpers import LABEL, call, pod, registered_webhooks, serving, wait_for_webhook

from admission.cosign import PrivateKey, cosign_sign, new_key, public_pem, push_image
from admission.reviews import pod_spec
from admission.webhook_tls import Tls, make_tls
from images.registry_server import Registry
from kubeproof.admission.decide import Decider
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer
from kubeproof.admission.signatures import SignatureVerifier

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
NAMESPACE = f"kp-wh-signed-{RUN}"


@pytest.fixture(scope="module")
def release_key() -> PrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def webhook(registry: Registry, release_key: PrivateKey, tls: Tls) -> Iterator[AdmissionServer]:
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
        yield server


@pytest.fixture(scope="module")
def registered(control_plane: ControlPlane, webhook: AdmissionServer, tls: Tls) -> Iterator[None]:
    url = f"https://127.0.0.1:{webhook.port}/validate"
    configurations = {f"kp-wh-signed-{RUN}": (url, f"{RUN}-signed", "Fail")}
    namespaces = {NAMESPACE: {LABEL: f"{RUN}-signed"}}
    with registered_webhooks(control_plane, tls, configurations, namespaces):
        yield


def test_an_unsigned_image_is_denied_and_the_same_image_once_signed_is_allowed(
    control_plane: ControlPlane, registry: Registry, release_key: PrivateKey, registered: None
) -> None:
    digest = push_image(registry, "kp/app", "1.0", "release 1.0")
    image = f"{registry.host}/kp/app@{digest}"
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"

    wait_for_webhook(control_plane, pods, pod("probe", pod_spec(image=image)))
    denied = call(control_plane, "POST", pods, pod("app", pod_spec(image=image)))
    assert denied.status == 403, denied.body
    message = denied.json()["message"]
    assert 'admission webhook "workloads.kubeproof.dev" denied the request' in message
    assert "[images.signed]" in message and f"image {image}" in message
    assert "has no signature" in message and "images.signatures[0]" in message
    assert "spec.containers[0].image" in message
    assert control_plane.get(f"{pods}/app").status == 404

    cosign_sign(registry, "kp/app", digest, release_key)
    allowed = call(control_plane, "POST", pods, pod("app", pod_spec(image=image)))
    assert allowed.status == 201, allowed.body

    # By tag too: the webhook resolves the tag to the digest it verified.
    tagged = call(
        control_plane, "POST", pods, pod("tagged", pod_spec(image=f"{registry.host}/kp/app:1.0"))
    )
    assert tagged.status == 201, tagged.body


def test_an_image_signed_by_an_unknown_key_is_denied(
    control_plane: ControlPlane, registry: Registry, registered: None
) -> None:
    digest = push_image(registry, "kp/other", "1.0", "someone else's build")
    cosign_sign(registry, "kp/other", digest, new_key())
    image = f"{registry.host}/kp/other@{digest}"
    reply = call(
        control_plane,
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        pod("o", pod_spec(image=image)),
    )
    assert reply.status == 403, reply.body
    assert "by none of the keys images.signatures[0] trusts" in reply.json()["message"]
