"""The admission webhook behind a real kube-apiserver.

The webhook runs in this process on a loopback port with a certificate made here; a
ValidatingWebhookConfiguration sends it only the namespaces this module creates (by a
label unique to the run), and is deleted afterwards so other tests never see it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from controlplane import ControlPlane, wait_for
from webhook_helpers import (
    LABEL,
    Reply,
    call,
    free_port,
    pod,
    registered_webhooks,
    serving,
    wait_for_webhook,
)

from admission.reviews import pod_spec, privileged_pod_spec
from admission.webhook_tls import Tls, make_tls
from kubeproof.admission.decide import Decider
from kubeproof.admission.namespaces import cluster_namespace_labels
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer
from kubeproof.sources.kubeconfig import load_connection

# One worker runs the whole module: its tests share one webhook and count its decisions.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("webhook")]

RUN = uuid.uuid4().hex[:8]
ENFORCE, WARN, EXEMPT = f"kp-wh-enforce-{RUN}", f"kp-wh-warn-{RUN}", f"kp-wh-exempt-{RUN}"
AUDIT, BASELINE = f"kp-wh-audit-{RUN}", f"kp-wh-baseline-{RUN}"
DOWN_FAIL, DOWN_IGNORE = f"kp-wh-down-fail-{RUN}", f"kp-wh-down-ignore-{RUN}"
POLICY = {
    "apiVersion": "kubeproof.dev/v1alpha1",
    "kind": "AdmissionPolicy",
    "enforce": {"frameworks": ["pss-restricted"]},
    "defaultMode": "enforce",
    "namespaces": [
        {"names": ["kp-wh-warn-*"], "mode": "warn"},
        {"selector": {"matchLabels": {"kubeproof.dev/admission": "audit"}}, "mode": "audit"},
    ],
    "exemptions": {"namespaces": ["kp-wh-exempt-*"]},
    "images": {"allowedRegistries": ["registry.example.com"]},
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def webhook(control_plane: ControlPlane, tls: Tls) -> Iterator[AdmissionServer]:
    # Namespace labels read as the read-only scanner identity, as `serve --namespace-labels`.
    labels = cluster_namespace_labels(load_connection(str(control_plane.scanner_kubeconfig)))
    with serving(Decider(parse_policy(POLICY), labels), tls) as server:
        yield server


@pytest.fixture(scope="module")
def registered(control_plane: ControlPlane, webhook: AdmissionServer, tls: Tls) -> Iterator[None]:
    dead = f"https://127.0.0.1:{free_port()}/validate"  # nothing listens there
    configurations = {
        f"kp-wh-{RUN}": (f"https://127.0.0.1:{webhook.port}/validate", RUN, "Fail"),
        f"kp-wh-down-fail-{RUN}": (dead, f"{RUN}-down-fail", "Fail"),
        f"kp-wh-down-ignore-{RUN}": (dead, f"{RUN}-down-ignore", "Ignore"),
    }
    namespaces = {
        ENFORCE: {LABEL: RUN},
        WARN: {LABEL: RUN},
        EXEMPT: {LABEL: RUN},
        AUDIT: {LABEL: RUN, "kubeproof.dev/admission": "audit"},
        BASELINE: {LABEL: RUN, "pod-security.kubernetes.io/enforce": "baseline"},
        DOWN_FAIL: {LABEL: f"{RUN}-down-fail"},
        DOWN_IGNORE: {LABEL: f"{RUN}-down-ignore"},
    }
    with registered_webhooks(control_plane, tls, configurations, namespaces):
        probe = pod("probe", privileged_pod_spec())
        wait_for_webhook(control_plane, f"/api/v1/namespaces/{ENFORCE}/pods", probe)
        yield


def test_a_privileged_pod_is_denied_with_the_rule_field_and_fix(
    control_plane: ControlPlane, registered: None
) -> None:
    reply = call(
        control_plane,
        "POST",
        f"/api/v1/namespaces/{ENFORCE}/pods",
        pod("bad", privileged_pod_spec()),
    )
    assert reply.status == 403, reply.body
    status = reply.json()
    assert status["reason"] == "Forbidden"
    message = status["message"]
    assert 'admission webhook "workloads.kubeproof.dev" denied the request' in message
    assert "[pss.privileged]" in message
    assert "spec.containers[0].securityContext.privileged" in message
    assert "Fix: " in message
    missing = control_plane.get(f"/api/v1/namespaces/{ENFORCE}/pods/bad")
    assert missing.status == 404


def test_a_compliant_pod_is_allowed(control_plane: ControlPlane, registered: None) -> None:
    reply = call(
        control_plane, "POST", f"/api/v1/namespaces/{ENFORCE}/pods", pod("good", pod_spec())
    )
    assert reply.status == 201, reply.body
    assert not reply.warnings


def test_a_deployment_from_an_unlisted_registry_is_denied(
    control_plane: ControlPlane, registered: None
) -> None:
    spec = pod_spec(image="docker.io/library/nginx:1.27")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }
    reply = call(
        control_plane, "POST", f"/apis/apps/v1/namespaces/{ENFORCE}/deployments", deployment
    )
    assert reply.status == 403, reply.body
    message = reply.json()["message"]
    assert "[images.allowed-source]" in message and "docker.io/library/nginx" in message
    assert "spec.template.spec.containers[0].image" in message


def test_warn_mode_returns_the_warning_to_the_client(
    control_plane: ControlPlane, registered: None
) -> None:
    reply = call(
        control_plane, "POST", f"/api/v1/namespaces/{WARN}/pods", pod("loud", privileged_pod_spec())
    )
    assert reply.status == 201, reply.body
    assert any("[pss.privileged]" in warning for warning in reply.warnings), reply.warnings


def test_an_exempt_namespace_passes(control_plane: ControlPlane, registered: None) -> None:
    reply = call(
        control_plane,
        "POST",
        f"/api/v1/namespaces/{EXEMPT}/pods",
        pod("infra", privileged_pod_spec()),
    )
    assert reply.status == 201, reply.body


def test_a_namespace_label_selects_audit_mode(
    control_plane: ControlPlane, registered: None
) -> None:
    reply = call(
        control_plane, "POST", f"/api/v1/namespaces/{AUDIT}/pods", pod("rec", privileged_pod_spec())
    )
    assert reply.status == 201, reply.body
    assert not reply.warnings  # audit records, it does not tell the client

    def recorded() -> dict[str, str] | None:
        for line in control_plane.audit_log.read_text().splitlines():
            event = json.loads(line)
            target = event.get("objectRef", {})
            if target.get("namespace") == AUDIT and target.get("name") == "rec":
                annotations: dict[str, str] = event.get("annotations", {})
                if "workloads.kubeproof.dev/decision" in annotations:
                    return annotations
        return None

    # The API server's audit log keeps the decision, under the webhook's name.
    annotations = wait_for(recorded, "the audit event of the audited pod", timeout_s=20)
    assert annotations["workloads.kubeproof.dev/decision"] == "audited"
    assert "pss.privileged" in annotations["workloads.kubeproof.dev/rules"]


def test_namespace_pod_security_label_sets_the_level_as_in_scan(
    control_plane: ControlPlane, registered: None
) -> None:
    # Not privileged (baseline holds) but may run as root (restricted does not).
    as_root = pod_spec()
    del as_root["containers"][0]["securityContext"]["runAsNonRoot"]
    relaxed = call(control_plane, "POST", f"/api/v1/namespaces/{BASELINE}/pods", pod("r", as_root))
    assert relaxed.status == 201, relaxed.body
    strict = call(control_plane, "POST", f"/api/v1/namespaces/{ENFORCE}/pods", pod("r", as_root))
    assert strict.status == 403, strict.body
    assert "[pss.run-as-non-root]" in strict.json()["message"]


def test_ephemeral_debug_containers_are_judged(
    control_plane: ControlPlane, registered: None
) -> None:
    created = call(
        control_plane, "POST", f"/api/v1/namespaces/{ENFORCE}/pods", pod("debugme", pod_spec())
    )
    assert created.status == 201, created.body
    current = created.json()
    current["spec"]["ephemeralContainers"] = [
        {
            "name": "debug",
            "image": "registry.example.com/tools/debug:1",
            "securityContext": {"privileged": True},
        }
    ]
    path = f"/api/v1/namespaces/{ENFORCE}/pods/debugme/ephemeralcontainers"
    reply = call(control_plane, "PUT", path, current)
    assert reply.status == 403, reply.body
    assert "spec.ephemeralContainers[0].securityContext.privileged" in reply.json()["message"]


def test_failure_policy_fail_denies_and_ignore_allows_when_the_webhook_is_down(
    control_plane: ControlPlane, registered: None
) -> None:
    def attempt(namespace: str) -> Reply:
        return call(
            control_plane, "POST", f"/api/v1/namespaces/{namespace}/pods", pod("p", pod_spec())
        )

    failed = wait_for(
        lambda: (r := attempt(DOWN_FAIL)).status >= 500 and r, "the Fail configuration to apply"
    )
    assert "failed calling webhook" in failed.json()["message"]
    assert attempt(DOWN_IGNORE).status == 201


def test_decisions_were_counted(
    control_plane: ControlPlane, webhook: AdmissionServer, registered: None
) -> None:
    # Its own requests (dry runs still call the webhook): under xdist the module's fixtures
    # may be made again for this test alone, with the other tests' decisions gone.
    for namespace in (ENFORCE, WARN, AUDIT):
        path = f"/api/v1/namespaces/{namespace}/pods?dryRun=All"
        call(control_plane, "POST", path, pod("counted", privileged_pod_spec()))
    metrics = webhook.metrics.render()
    assert 'decision="denied",rule="pss.privileged"' in metrics
    assert 'decision="warned"' in metrics
    assert 'mode="audit",decision="audited",rule="pss.privileged"' in metrics
