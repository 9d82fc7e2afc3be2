"""network checks: whether NetworkPolicies isolate namespaces and workloads.

Selection semantics (defaults, default deny, malformed policies) live in
kubeproof.analysis.netpol, shared with the reachability analysis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubeproof.analysis.netpol import (
    EGRESS,
    INGRESS,
    NetworkPolicy,
    isolating,
    policies_by_namespace,
    read_policy,
    running_workloads_in,
    runs_pods,
)
from kubeproof.checks.registry import NotApplicable, Violation, check
from kubeproof.inventory import K8sObject, Workload

if TYPE_CHECKING:
    from kubeproof.engine import Context

_UNISOLATED = {
    INGRESS: "its pods accept traffic from any source",
    EGRESS: "its pods may send traffic to any destination",
}
_RULE_FIELDS = {INGRESS: ("ingress", "from"), EGRESS: ("egress", "to")}


def _skip_idle_namespace(namespace: str, context: Context) -> None:
    """A namespace that runs no pods has no traffic to govern. Skipped only when pods were
    fully read: otherwise an unreadable namespace would look idle and escape judgement."""
    if running_workloads_in(context.inventory, namespace):
        return
    if context.inventory.coverage.gap(("Pod",)) is None:
        raise NotApplicable


def _rejected(policies: list[NetworkPolicy]) -> str:
    return ", ".join(f"{p.name} ({p.problem})" for p in policies if p.problem)


@check("network.namespace-without-network-policy")
def namespace_without_network_policy(namespace: str, context: Context) -> Iterator[Violation]:
    _skip_idle_namespace(namespace, context)
    policies = context.derived("netpol", policies_by_namespace).get(namespace, [])
    if any(p.well_formed for p in policies):
        return
    if policies:
        yield Violation(
            f"namespace {namespace} has only NetworkPolicies the API server would "
            f"reject: {_rejected(policies)}"
        )
        return
    yield Violation(
        f"namespace {namespace} has no NetworkPolicy: {_UNISOLATED[INGRESS]} "
        f"and {_UNISOLATED[EGRESS].removeprefix('its pods ')}"
    )


def _default_deny(namespace: str, context: Context, direction: str) -> Iterator[Violation]:
    _skip_idle_namespace(namespace, context)
    policies = context.derived("netpol", policies_by_namespace).get(namespace, [])
    if any(p.denies_by_default(direction) for p in policies):
        return
    rules_field = _RULE_FIELDS[direction][0]
    message = (
        f"namespace {namespace} has no default-deny {direction} NetworkPolicy (empty "
        f"podSelector, policyTypes including {direction}, no {rules_field} rules)"
    )
    allow_lists = [p.name for p in policies if p.selects_all_pods() and direction in p.policy_types]
    if allow_lists:
        message += (
            f"; {', '.join(allow_lists)} select every pod but carry {rules_field} "
            "rules, so they allow traffic rather than deny it by default"
        )
    yield Violation(message)


@check("network.namespace-default-deny-ingress")
def namespace_default_deny_ingress(namespace: str, context: Context) -> Iterator[Violation]:
    yield from _default_deny(namespace, context, INGRESS)


@check("network.namespace-default-deny-egress")
def namespace_default_deny_egress(namespace: str, context: Context) -> Iterator[Violation]:
    yield from _default_deny(namespace, context, EGRESS)


def _isolation(workload: Workload, context: Context, direction: str) -> Iterator[Violation]:
    if not runs_pods(workload):
        raise NotApplicable
    if workload.pod_spec.get("hostNetwork") is True:
        # Network plugins do not apply NetworkPolicy to pods on the node's own network.
        yield Violation(
            "hostNetwork is true: pods on the node's network are not isolated by NetworkPolicy",
            "hostNetwork",
        )
        return
    namespace = workload.namespace
    policies = isolating(
        context.derived("netpol", policies_by_namespace).get(namespace, []),
        namespace,
        workload.pod_labels,
        direction,
    )
    if not policies:
        yield Violation(
            f"no NetworkPolicy in namespace {namespace} selects its pods for "
            f"{direction}, so {_UNISOLATED[direction]}"
        )
        return
    rules_field, peers_field = _RULE_FIELDS[direction]
    for policy in policies:
        for index in policy.open_rules(direction):
            yield Violation(
                f"NetworkPolicy {policy.name} spec.{rules_field}[{index}] has no "
                f"{peers_field} and no ports, so it allows all {direction} traffic"
            )


@check("network.workload-ingress-not-isolated")
def workload_ingress_not_isolated(workload: Workload, context: Context) -> Iterator[Violation]:
    yield from _isolation(workload, context, INGRESS)


@check("network.workload-egress-unrestricted")
def workload_egress_unrestricted(workload: Workload, context: Context) -> Iterator[Violation]:
    yield from _isolation(workload, context, EGRESS)


@check("network.policy-selects-no-workload")
def policy_selects_no_workload(obj: K8sObject, context: Context) -> Iterator[Violation]:
    policy = read_policy(obj)
    if policy.problem:
        yield Violation(
            f"the API server would reject this NetworkPolicy ({policy.problem}), "
            "so it selects no pods",
            "spec",
        )
        return
    if policy.selects_all_pods():
        # Namespace-wide by design (a default deny, say): it cannot go stale.
        raise NotApplicable
    namespace = policy.namespace
    workloads = running_workloads_in(context.inventory, namespace)
    if any(policy.selects(namespace, w.pod_labels) for w in workloads):
        return
    yield Violation(
        f"spec.podSelector matches no workload in namespace {namespace}: the "
        "policy governs no traffic, and a workload it was written for may have "
        "been relabelled out of its protection",
        "spec.podSelector",
    )
