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
    Rule,
    SelectorPeer,
    isolating,
    policies_by_namespace,
    read_policy,
    running_workloads_in,
    runs_pods,
)
from kubeproof.analysis.reachability import (
    blocks_cover_internet,
    describe_ports,
    endpoint_of,
    ip_blocks,
    peer_admits_any_namespace,
    rule_ports_for,
    rule_ports_without_pod,
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


def _selecting(workload: Workload, context: Context) -> list[NetworkPolicy]:
    """The policies of its namespace that select a workload's pods, in their order. Both
    directions and `network.policy-selects-no-workload` start from this, so each pod
    selector is matched against each workload once per scan rather than three times."""
    answers: dict[int, list[NetworkPolicy]] = context.derived("netpol-selecting", lambda _: {})
    key = id(workload)
    if key not in answers:
        namespace = workload.namespace
        indexed = context.derived("netpol", policies_by_namespace)
        by_label, unindexed = context.derived("netpol-by-label", lambda _: _by_label(indexed))
        labels = workload.pod_labels
        candidates = unindexed.union(*(by_label.get(item, ()) for item in labels.items()))
        answers[key] = [
            p
            for p in indexed.get(namespace, [])
            if id(p) in candidates and p.selects(namespace, labels)
        ]
    return answers[key]


def _by_label(
    indexed: dict[str, list[NetworkPolicy]],
) -> tuple[dict[tuple[str, str], set[int]], set[int]]:
    """Which policies a pod's labels could match at all, so that the others are skipped: a
    podSelector's matchLabels select only pods that carry each of its labels, so such a
    policy is filed under its first label; any other is tried on every pod. `selects`
    still decides for every policy that is tried."""
    by_label: dict[tuple[str, str], set[int]] = {}
    unindexed: set[int] = set()
    for policy in (p for policies in indexed.values() for p in policies):
        match_labels = policy.pod_selector.get("matchLabels")
        first = next(iter(match_labels.items()), None) if isinstance(match_labels, dict) else None
        if first is not None and isinstance(first[0], str) and isinstance(first[1], str):
            by_label.setdefault(first, set()).add(id(policy))
        else:
            unindexed.add(id(policy))
    return by_label, unindexed


def _isolating(workload: Workload, context: Context, direction: str) -> list[NetworkPolicy]:
    """The policies that isolate a workload's pods for a direction; five checks ask, so
    the answer is kept for the scan. Only a policy that selects the pods can isolate them."""
    answers: dict[tuple[int, str], list[NetworkPolicy]] = context.derived(
        "netpol-isolating", lambda _: {}
    )
    key = (id(workload), direction)
    if key not in answers:
        answers[key] = isolating(
            _selecting(workload, context), workload.namespace, workload.pod_labels, direction
        )
    return answers[key]


def _open_rules(policy: NetworkPolicy, direction: str, context: Context) -> list[int]:
    """`policy.open_rules(direction)`, kept for the scan: each workload a policy isolates
    asks again, in five checks."""
    answers: dict[tuple[int, str], list[int]] = context.derived("netpol-open", lambda _: {})
    key = (id(policy), direction)
    if key not in answers:
        answers[key] = policy.open_rules(direction)
    return answers[key]


def _selected_policies(namespace: str, context: Context) -> set[int]:
    """The ids of the NetworkPolicy objects that select some running workload's pods."""
    answers: dict[str, set[int]] = context.derived("netpol-selected", lambda _: {})
    if namespace not in answers:
        answers[namespace] = {
            id(policy.obj)
            for workload in running_workloads_in(context.inventory, namespace)
            for policy in _selecting(workload, context)
        }
    return answers[namespace]


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
    policies = _isolating(workload, context, direction)
    if not policies:
        yield Violation(
            f"no NetworkPolicy in namespace {namespace} selects its pods for "
            f"{direction}, so {_UNISOLATED[direction]}"
        )
        return
    rules_field, peers_field = _RULE_FIELDS[direction]
    for policy in policies:
        for index in _open_rules(policy, direction, context):
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
    if id(obj) in _selected_policies(namespace, context):
        return
    yield Violation(
        f"spec.podSelector matches no workload in namespace {namespace}: the "
        "policy governs no traffic, and a workload it was written for may have "
        "been relabelled out of its protection",
        "spec.podSelector",
    )


# --- what the isolating policies let through -------------------------------------------
# These checks judge workloads that network.workload-ingress-not-isolated (or, for egress,
# network.workload-egress-unrestricted) passes: one that is not isolated at all is open to
# everything, and that check already reports it, once.


def _isolating_rules(
    workload: Workload, context: Context, direction: str
) -> list[tuple[NetworkPolicy, Rule]]:
    """The rules of the policies that isolate a workload; kept for the scan, as three
    checks ask for each workload. NotApplicable when the workload is not isolated."""
    answers: dict[tuple[int, str], list[tuple[NetworkPolicy, Rule]] | None] = context.derived(
        "netpol-isolating-rules", lambda _: {}
    )
    key = (id(workload), direction)
    if key not in answers:
        answers[key] = _rules_if_isolated(workload, context, direction)
    rules = answers[key]
    if rules is None:
        raise NotApplicable
    return rules


def _rules_if_isolated(
    workload: Workload, context: Context, direction: str
) -> list[tuple[NetworkPolicy, Rule]] | None:
    if not runs_pods(workload) or workload.pod_spec.get("hostNetwork") is True:
        return None
    policies = _isolating(workload, context, direction)
    if not policies or any(_open_rules(p, direction, context) for p in policies):
        return None
    return [(p, rule) for p in policies for rule in p.typed_rules(direction)]


def _any_namespace_peers(rule: Rule) -> str | None:
    """How a rule admits pods of any namespace, or None when it does not."""
    if rule.peers is None:
        return "it has no from, so it admits every source"
    described = []
    for position, peer in enumerate(rule.peers):
        if isinstance(peer, SelectorPeer) and peer_admits_any_namespace(peer):
            pods = "every pod" if not peer.pod_selector else "pods matching its podSelector"
            described.append(
                f"from[{position}] admits {pods} of any namespace (its namespaceSelector "
                "matches even a new, unlabelled namespace)"
            )
    return "; ".join(described) or None


@check("network.workload-reachable-from-any-namespace")
def workload_reachable_from_any_namespace(
    workload: Workload, context: Context
) -> Iterator[Violation]:
    endpoint = endpoint_of(0, workload)
    for policy, rule in _isolating_rules(workload, context, INGRESS):
        how = _any_namespace_peers(rule)
        ports = rule_ports_for(rule, endpoint)
        if how is not None and ports:
            yield Violation(
                f"NetworkPolicy {policy.name} spec.ingress[{rule.index}]: {how}, "
                f"on {describe_ports(ports)}"
            )


@check("network.workload-reachable-from-internet")
def workload_reachable_from_internet(workload: Workload, context: Context) -> Iterator[Violation]:
    endpoint = endpoint_of(0, workload)
    admitting = [
        (policy, rule)
        for policy, rule in _isolating_rules(workload, context, INGRESS)
        if rule_ports_for(rule, endpoint)
    ]
    for policy, rule in admitting:
        if rule.peers is None:
            yield Violation(
                f"NetworkPolicy {policy.name} spec.ingress[{rule.index}] has no from, so it "
                f"admits every address, the internet included, on "
                f"{describe_ports(rule_ports_for(rule, endpoint))}"
            )
    # Address ranges add up across rules and policies: 0.0.0.0/1 here and 128.0.0.0/1
    # there admit the whole internet as surely as one 0.0.0.0/0.
    blocks = [(policy, rule, block) for policy, rule in admitting for block in ip_blocks(rule)]
    if blocks and blocks_cover_internet(b for _, _, b in blocks):
        where = "; ".join(
            f"NetworkPolicy {policy.name} spec.ingress[{rule.index}] ipBlock {block} on "
            f"{describe_ports(rule_ports_for(rule, endpoint))}"
            for policy, rule, block in blocks
        )
        yield Violation(f"ipBlock peers admit every public internet address: {where}")


@check("network.workload-egress-to-internet")
def workload_egress_to_internet(workload: Workload, context: Context) -> Iterator[Violation]:
    every_port = [
        (policy, rule)
        for policy, rule in _isolating_rules(workload, context, EGRESS)
        if rule_ports_without_pod(rule).is_all()
    ]
    blocks = [(policy, rule, block) for policy, rule in every_port for block in ip_blocks(rule)]
    if blocks and blocks_cover_internet(b for _, _, b in blocks):
        where = "; ".join(
            f"NetworkPolicy {policy.name} spec.egress[{rule.index}] ipBlock {block}"
            for policy, rule, block in blocks
        )
        yield Violation(f"egress rules allow every port to every public internet address: {where}")
