"""Admission controls visible in configuration: Pod Security admission on namespaces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check

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
