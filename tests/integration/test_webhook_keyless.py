"""Keyless Sigstore signatures at admission behind a real kube-apiserver.

The test runs its own Fulcio-like CA and Rekor-like log (tests/admission/keyless_signing.py)
and writes the trusted root the policy names. An image signed keylessly by the trusted
release workflow, with the bundle attached as a referrer in a real registry on 127.0.0.1,
is admitted; an unsigned image and one signed by another workflow are denied.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from controlplane import ControlPlane
from webhook_helpers import LABEL, call, pod, registered_webhooks, serving, wait_for_webhook

from admission.bundling import attach
from admission.cosign import push_image
from admission.keyless_signing import (
    GITHUB,
    WORKFLOW,
    Fulcio,
    Rekor,
    keyless_dsse_bundle,
    signing,
    trusted_root,
)
from admission.reviews import pod_spec
from admission.webhook_tls import Tls, make_tls
from images.registry_server import Registry
from kubeproof.admission.decide import Decider
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer
from kubeproof.admission.signatures import SignatureVerifier

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhook-keyless")]

RUN = uuid.uuid4().hex[:8]
NAMESPACE = f"kp-wh-keyless-{RUN}"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"


@pytest.fixture(scope="module")
def sigstore() -> tuple[Fulcio, Rekor]:
    return Fulcio(), Rekor()


@pytest.fixture(scope="module")
def registered(
    control_plane: ControlPlane,
    registry: Registry,
    sigstore: tuple[Fulcio, Rekor],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AdmissionServer]:
    directory = tmp_path_factory.mktemp("keyless-policy")
    (directory / "trusted_root.json").write_text(json.dumps(trusted_root(*sigstore)))
    policy = parse_policy(
        {
            "apiVersion": "kubeproof.dev/v1alpha1",
            "kind": "AdmissionPolicy",
            "images": {
                "signatures": [
                    {
                        "repositories": [f"{registry.host}/kl/*"],
                        "keyless": {
                            "trustedRoot": "trusted_root.json",
                            "identities": [{"issuer": GITHUB, "subject": WORKFLOW}],
                        },
                    }
                ],
            },
        },
        "policy.yaml",
        directory,
    )
    tls: Tls = make_tls(tmp_path_factory.mktemp("webhook-tls"))
    with serving(Decider(policy, signatures=SignatureVerifier(negative_ttl_s=0.0)), tls) as server:
        url = f"https://127.0.0.1:{server.port}/validate"
        configurations = {f"kp-wh-keyless-{RUN}": (url, f"{RUN}-keyless", "Fail")}
        with registered_webhooks(
            control_plane, tls, configurations, {NAMESPACE: {LABEL: f"{RUN}-keyless"}}
        ):
            yield server


def test_a_keyless_signed_image_is_admitted_and_others_are_denied(
    control_plane: ControlPlane,
    registry: Registry,
    sigstore: tuple[Fulcio, Rekor],
    registered: AdmissionServer,
) -> None:
    fulcio, rekor = sigstore
    unsigned = f"{registry.host}/kl/app@{push_image(registry, 'kl/app', '1', 'unsigned')}"
    wait_for_webhook(control_plane, PODS, pod("probe", pod_spec(image=unsigned)))
    denied = call(control_plane, "POST", PODS, pod("unsigned", pod_spec(image=unsigned)))
    assert denied.status == 403, denied.body
    assert "[images.signed]" in denied.json()["message"]
    assert "has no signature" in denied.json()["message"]

    digest = push_image(registry, "kl/app", "2", "signed by the release workflow")
    attach(registry, "kl/app", digest, keyless_dsse_bundle(rekor, signing(fulcio), digest))
    allowed = call(
        control_plane,
        "POST",
        PODS,
        pod("signed", pod_spec(image=f"{registry.host}/kl/app@{digest}")),
    )
    assert allowed.status == 201, allowed.body

    fork = "https://github.com/example/app/.github/workflows/fork.yml@refs/heads/main"
    other = push_image(registry, "kl/app", "3", "signed by another workflow")
    attach(
        registry, "kl/app", other, keyless_dsse_bundle(rekor, signing(fulcio, subject=fork), other)
    )
    refused = call(
        control_plane, "POST", PODS, pod("fork", pod_spec(image=f"{registry.host}/kl/app@{other}"))
    )
    assert refused.status == 403, refused.body
    assert f"identity ({fork} from {GITHUB}) is none the rule trusts" in refused.json()["message"]
