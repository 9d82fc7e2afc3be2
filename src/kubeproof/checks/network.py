"""network checks: whether NetworkPolicies isolate namespaces and workloads.

Selection semantics (defaults, default deny, malformed policies) live in
kubeproof.analysis.netpol, shared with the reachability analysis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeproof.analysis.netpol import (
    DIRECTIONS,
    EGRESS,
    INGRESS,
    IPBlock,
    NetworkPolicy,
    Rule,
    SelectorPeer,
    policies_by_namespace,
    read_policy,
    running_workloads_in,
    runs_pods,
)
from kubeproof.analysis.reachability import (
    Endpoint,
    PortSet,
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
    directions and `network.policy-selects-no-workload` start from this."""
    namespace = workload.namespace
    by_namespace: dict[str, dict[int, list[NetworkPolicy]]] = context.derived(
        "netpol-selecting", lambda _: {}
    )
    selecting = by_namespace.get(namespace)
    if selecting is None:
        selecting = by_namespace[namespace] = _match_namespace(namespace, context)
    found = selecting.get(id(workload))
    if found is None:  # not one of the inventory's workloads: matched on its own
        policies = context.derived("netpol", policies_by_namespace).get(namespace, [])
        labels = workload.pod_labels
        found = selecting[id(workload)] = [p for p in policies if p.selects(namespace, labels)]
    return found


def _match_namespace(namespace: str, context: Context) -> dict[int, list[NetworkPolicy]]:
    """Which policies select each workload of a namespace, by id, matched policy by policy
    so that each pod selector is read once per scan: an empty one selects every workload
    without a test, and one with matchLabels is tried only on the workloads that carry its
    first label. `selects` decides for every workload that is tried."""
    workloads = context.inventory.workloads_in(namespace)
    selecting: dict[int, list[NetworkPolicy]] = {id(w): [] for w in workloads}
    with_label: dict[tuple[str, str], list[Workload]] = defaultdict(list)
    for workload in workloads:
        for item in workload.pod_labels.items():
            with_label[item].append(workload)
    for policy in context.derived("netpol", policies_by_namespace).get(namespace, []):
        if not policy.well_formed:
            continue  # it selects nothing
        if policy.selects_all_pods():
            for workload in workloads:
                selecting[id(workload)].append(policy)
            continue
        match_labels = policy.pod_selector.get("matchLabels")
        first = next(iter(match_labels.items()), None) if isinstance(match_labels, dict) else None
        tried = with_label.get(first, []) if first is not None else workloads
        for workload in tried:
            if policy.selects(namespace, workload.pod_labels):
                selecting[id(workload)].append(policy)
    return selecting


@dataclass(frozen=True, slots=True)
class WorkloadIsolation:
    """How the policies that select a workload's pods isolate them for one direction."""

    policies: list[NetworkPolicy]  # those naming the direction, in their order
    open_rules: list[tuple[NetworkPolicy, int]]  # their rules that admit all traffic


def _isolation_of(workload: Workload, context: Context, direction: str) -> WorkloadIsolation:
    """The workload's isolation for a direction; five checks ask, so the answer is kept for
    the scan. Only a policy that selects the pods can isolate them."""
    answers: dict[tuple[int, str], WorkloadIsolation] = context.derived(
        "netpol-isolation", lambda _: {}
    )
    key = (id(workload), direction)
    found = answers.get(key)
    if found is None:
        opens = context.derived("netpol-open", lambda _: _open_rules_by_policy(context))[direction]
        # `_selecting` has matched each policy's selector: `isolating` would match it again.
        policies = [p for p in _selecting(workload, context) if direction in p.policy_types]
        open_rules = [(p, index) for p in policies for index in opens[id(p)]]
        found = answers[key] = WorkloadIsolation(policies, open_rules)
    return found


def _open_rules_by_policy(context: Context) -> dict[str, dict[int, list[int]]]:
    """Per direction, `policy.open_rules(direction)` of every policy by id: each workload
    a policy isolates asks again."""
    policies = _every_policy(context)
    return {
        direction: {id(p): p.open_rules(direction) for p in policies} for direction in DIRECTIONS
    }


def _every_policy(context: Context) -> list[NetworkPolicy]:
    return [p for ps in context.derived("netpol", policies_by_namespace).values() for p in ps]


def _policy_of(obj: K8sObject, context: Context) -> NetworkPolicy:
    """A NetworkPolicy object as the per-scan index read it (read here when not indexed)."""
    read: dict[int, NetworkPolicy] = context.derived(
        "netpol-by-object", lambda _: {id(p.obj): p for p in _every_policy(context)}
    )
    return read.get(id(obj)) or read_policy(obj)


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
    isolation = _isolation_of(workload, context, direction)
    if not isolation.policies:
        yield Violation(
            f"no NetworkPolicy in namespace {workload.namespace} selects its pods for "
            f"{direction}, so {_UNISOLATED[direction]}"
        )
        return
    rules_field, peers_field = _RULE_FIELDS[direction]
    for policy, index in isolation.open_rules:
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
    policy = _policy_of(obj, context)
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
    isolation = _isolation_of(workload, context, direction)
    if not isolation.policies or isolation.open_rules:
        return None
    return [(p, rule) for p in isolation.policies for rule in p.typed_rules(direction)]


def _ports_outside(rule: Rule, context: Context) -> PortSet:
    """`rule_ports_without_pod`, kept for the scan: every workload a policy isolates asks."""
    answers: dict[int, PortSet] = context.derived("netpol-ports-outside", lambda _: {})
    found = answers.get(id(rule))
    if found is None:
        found = answers[id(rule)] = rule_ports_without_pod(rule)
    return found


def _ports_towards(rule: Rule, workload: Workload, context: Context) -> PortSet:
    """`rule_ports_for` the workload's pods. Only named ports depend on the pods (the
    ports they resolve to); without them a rule admits what it admits outside."""
    if rule.ports is not None and any(port.name is not None for port in rule.ports):
        return rule_ports_for(rule, _endpoint(workload, context))
    return _ports_outside(rule, context)


def _cover_internet(blocks: list[IPBlock], context: Context) -> bool:
    """`blocks_cover_internet`, kept for the scan by the blocks themselves: the policies of
    many workloads repeat the same few ranges."""
    answers: dict[tuple[IPBlock, ...], bool] = context.derived("netpol-internet", lambda _: {})
    key = tuple(blocks)
    found = answers.get(key)
    if found is None:
        found = answers[key] = blocks_cover_internet(key)
    return found


def _endpoint(workload: Workload, context: Context) -> Endpoint:
    """The workload's pods as the reachability analysis sees them (their named ports), kept
    for the scan: two checks ask."""
    endpoints: dict[int, Endpoint] = context.derived("netpol-endpoints", lambda _: {})
    key = id(workload)
    found = endpoints.get(key)
    if found is None:
        found = endpoints[key] = endpoint_of(0, workload)
    return found


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
    for policy, rule in _isolating_rules(workload, context, INGRESS):
        how = _any_namespace_peers(rule)
        if how is None:
            continue
        ports = _ports_towards(rule, workload, context)
        if ports:
            yield Violation(
                f"NetworkPolicy {policy.name} spec.ingress[{rule.index}]: {how}, "
                f"on {describe_ports(ports)}"
            )


@check("network.workload-reachable-from-internet")
def workload_reachable_from_internet(workload: Workload, context: Context) -> Iterator[Violation]:
    admitting = [
        (policy, rule, ports)
        for policy, rule in _isolating_rules(workload, context, INGRESS)
        if (ports := _ports_towards(rule, workload, context))
    ]
    for policy, rule, ports in admitting:
        if rule.peers is None:
            yield Violation(
                f"NetworkPolicy {policy.name} spec.ingress[{rule.index}] has no from, so it "
                f"admits every address, the internet included, on {describe_ports(ports)}"
            )
    # Address ranges add up across rules and policies: 0.0.0.0/1 here and 128.0.0.0/1
    # there admit the whole internet as surely as one 0.0.0.0/0.
    blocks = [
        (policy, rule, ports, block)
        for policy, rule, ports in admitting
        for block in ip_blocks(rule)
    ]
    if blocks and _cover_internet([b for _, _, _, b in blocks], context):
        where = "; ".join(
            f"NetworkPolicy {policy.name} spec.ingress[{rule.index}] ipBlock {block} on "
            f"{describe_ports(ports)}"
            for policy, rule, ports, block in blocks
        )
        yield Violation(f"ipBlock peers admit every public internet address: {where}")


@check("network.workload-egress-to-internet")
def workload_egress_to_internet(workload: Workload, context: Context) -> Iterator[Violation]:
    every_port = [
        (policy, rule)
        for policy, rule in _isolating_rules(workload, context, EGRESS)
        if _ports_outside(rule, context).is_all()
    ]
    blocks = [(policy, rule, block) for policy, rule in every_port for block in ip_blocks(rule)]
    if blocks and _cover_internet([b for _, _, b in blocks], context):
        where = "; ".join(
            f"NetworkPolicy {policy.name} spec.egress[{rule.index}] ipBlock {block}"
            for policy, rule, block in blocks
        )
        yield Violation(f"egress rules allow every port to every public internet address: {where}")
