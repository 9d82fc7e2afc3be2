"""Admission controls visible through the API: Pod Security admission on namespaces, and
whether a cluster has any policy mechanism at all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory.objects import as_dict, as_list, as_str

if TYPE_CHECKING:
    from kubeproof.engine import Context

PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCING_LEVELS = ("baseline", "restricted")


@check("admission.namespace-pod-security-enforced")
def namespace_pod_security_enforced(namespace: str, ctx: Context) -> Iterator[Violation]:
    if not ctx.inventory.workloads_in(namespace):
        raise NotApplicable  # nothing is admitted into a namespace that runs nothing
    obj = ctx.inventory.namespace_object(namespace)
    if obj is None:
        # Its labels are what decides, and they are not in the input: never guess a pass.
        raise NotEvaluated(f"the Namespace object {namespace} is not in the input")
    level = obj.labels.get(PSS_ENFORCE)
    if level is None:
        yield Violation(
            f"namespace {namespace} has no {PSS_ENFORCE} label: pods are admitted "
            "without a Pod Security check (warn and audit only report)",
            f"metadata.labels[{PSS_ENFORCE}]",
        )
    elif level not in ENFORCING_LEVELS:
        yield Violation(
            f"namespace {namespace} enforces Pod Security level {level!r}, "
            "which admits privileged pods",
            f"metadata.labels[{PSS_ENFORCE}]",
        )


@check("admission.policy-mechanism-present")
def policy_mechanism_present(ctx: Context) -> Iterator[Violation]:
    inventory = ctx.inventory
    if inventory.coverage.complete_by_default:
        raise NotApplicable  # manifests do not show a cluster's admission configuration
    if _enforcing_namespaces(ctx) or _bound_admission_policies(ctx) or _pod_webhooks(ctx):
        return
    yield Violation(
        "no active policy control mechanism: no namespace enforces a Pod Security level, no "
        "ValidatingAdmissionPolicy is bound to deny, and no validating webhook judges pods"
    )


def _enforcing_namespaces(ctx: Context) -> list[str]:
    return [
        ns.name
        for ns in ctx.inventory.of_kind("Namespace")
        if ns.labels.get(PSS_ENFORCE) in ENFORCING_LEVELS
    ]


def _bound_admission_policies(ctx: Context) -> list[str]:
    policies = {p.name for p in ctx.inventory.of_kind("ValidatingAdmissionPolicy")}
    bound = []
    for binding in ctx.inventory.of_kind("ValidatingAdmissionPolicyBinding"):
        policy = as_str(binding.spec.get("policyName"))
        actions = as_list(binding.spec.get("validationActions"))
        if policy in policies and "Deny" in actions:
            bound.append(binding.name)
    return bound


def _pod_webhooks(ctx: Context) -> list[str]:
    """Validating webhooks whose rules cover pods or every resource."""
    found = []
    for configuration in ctx.inventory.of_kind("ValidatingWebhookConfiguration"):
        for webhook in as_list(configuration.raw.get("webhooks")):
            for rule in as_list(as_dict(webhook).get("rules")):
                resources = as_list(as_dict(rule).get("resources"))
                if any(r in ("pods", "*", "*/*") for r in resources):
                    found.append(configuration.name)
    return found
