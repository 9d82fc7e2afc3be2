"""admission.namespace-pod-security-enforced."""

from __future__ import annotations

import pytest

from checks.helpers import inventory_of, run, statuses
from kubeproof.checks import find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage

CHECK = "admission.namespace-pod-security-enforced"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec: {containers: []}\n"


def namespace(labels: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: team, labels: {{{labels}}}}}\n"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("pod-security.kubernetes.io/enforce: restricted", "pass"),
        ("pod-security.kubernetes.io/enforce: baseline", "pass"),
        ("pod-security.kubernetes.io/enforce: privileged", "fail"),
        ("pod-security.kubernetes.io/warn: restricted", "fail"),
        ("", "fail"),
    ],
)
def test_enforce_label(labels: str, expected: str) -> None:
    assert statuses(run(CHECK, namespace(labels), POD)) == [expected]


def test_namespace_object_missing_is_not_evaluated() -> None:
    (result,) = run(CHECK, POD)
    assert result.status.value == "not_evaluated"
    assert "not in the input" in (result.reason or "")


def test_namespace_without_workloads_is_not_judged() -> None:
    assert run(CHECK, namespace("")) == []


MECHANISM = "admission.policy-mechanism-present"
ADMISSION_KINDS = (
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
)


def cluster_results(*objects: str) -> list[str]:
    check = find(MECHANISM)
    assert check is not None
    inventory = inventory_of(*objects)
    inventory.coverage = Coverage(complete_by_default=False)
    for kind in ADMISSION_KINDS:
        inventory.coverage.record(kind, "listed")
    return statuses(evaluate(inventory, [check], Context(inventory)))


POLICY = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"
BINDING = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
WEBHOOK = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n"


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ((), "fail"),
        ((namespace("pod-security.kubernetes.io/enforce: baseline"),), "pass"),
        ((namespace("pod-security.kubernetes.io/enforce: privileged"),), "fail"),
        (
            (
                POLICY + "metadata: {name: p}\n",
                BINDING + "metadata: {name: b}\nspec: {policyName: p, validationActions: [Deny]}\n",
            ),
            "pass",
        ),
        (
            (
                POLICY + "metadata: {name: p}\n",
                BINDING + "metadata: {name: b}\nspec: {policyName: p, validationActions: [Warn]}\n",
            ),
            "fail",
        ),
        (
            (
                WEBHOOK + "metadata: {name: w}\nwebhooks:\n- name: w.example.com\n"
                "  rules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], "
                "resources: [pods]}]\n",
            ),
            "pass",
        ),
    ],
)
def test_policy_mechanism_on_a_cluster(objects: tuple[str, ...], expected: str) -> None:
    assert cluster_results(*objects) == [expected]


def test_policy_mechanism_is_not_judged_from_manifests() -> None:
    assert run(MECHANISM, namespace("")) == []


def test_policy_mechanism_unread_kinds_are_not_evaluated() -> None:
    check = find(MECHANISM)
    assert check is not None
    inventory = inventory_of()
    inventory.coverage = Coverage(complete_by_default=False)
    inventory.coverage.record("ValidatingWebhookConfiguration", "forbidden", "403")
    (result,) = evaluate(inventory, [check], Context(inventory))
    assert result.status.value == "not_evaluated"
