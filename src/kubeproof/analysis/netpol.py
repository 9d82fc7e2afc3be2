"""NetworkPolicy semantics, as the API server and a conforming network plugin apply them.

The primitives here answer one question each: which pods a policy selects, which
directions it governs, whether it denies a direction by default, and whether a rule
admits everything. A policy the API server would reject (fields of the wrong type)
isolates nothing: it could never exist in a cluster, so it must not make a pod look
protected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubeproof.inventory import Inventory, K8sObject, Workload
from kubeproof.inventory.objects import as_dict
from kubeproof.inventory.selectors import label_selector_problem, selector_matches

INGRESS = "Ingress"
EGRESS = "Egress"
DIRECTIONS = (INGRESS, EGRESS)
_RULES_FIELD = {INGRESS: "ingress", EGRESS: "egress"}
_PEERS_FIELD = {INGRESS: "from", EGRESS: "to"}

# Workload kinds whose pods never run: a PodTemplate is only a template.
_TEMPLATE_ONLY_KINDS = frozenset({"PodTemplate"})


def selector_selects_everything(selector: dict[str, Any]) -> bool:
    """An empty LabelSelector (no labels, no expressions) selects every object."""
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """One NetworkPolicy, read with the API server's defaults applied."""

    obj: K8sObject
    pod_selector: dict[str, Any]
    policy_types: frozenset[str]
    ingress: tuple[dict[str, Any], ...]
    egress: tuple[dict[str, Any], ...]
    problem: str | None  # why the API server would reject it; it then governs nothing

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def namespace(self) -> str:
        return self.obj.namespace or "default"

    @property
    def well_formed(self) -> bool:
        return self.problem is None

    def rules(self, direction: str) -> tuple[dict[str, Any], ...]:
        return self.ingress if direction == INGRESS else self.egress

    def selects_all_pods(self) -> bool:
        """An empty podSelector selects every pod in the policy's namespace."""
        return self.well_formed and selector_selects_everything(self.pod_selector)

    def selects(self, namespace: str, pod_labels: dict[str, str]) -> bool:
        """Whether the policy applies to a pod with these labels in this namespace."""
        return (
            self.well_formed
            and namespace == self.namespace
            and selector_matches(self.pod_selector, pod_labels)
        )

    def isolates(self, namespace: str, pod_labels: dict[str, str], direction: str) -> bool:
        """A selected pod is isolated for each direction the policy's types name: only
        traffic some rule (of some policy) allows gets through in that direction."""
        return direction in self.policy_types and self.selects(namespace, pod_labels)

    def denies_by_default(self, direction: str) -> bool:
        """Default deny: every pod in the namespace, that direction, and no rule for it."""
        return (
            self.selects_all_pods() and direction in self.policy_types and not self.rules(direction)
        )

    def open_rules(self, direction: str) -> list[int]:
        """Indexes of the rules of a direction that admit all traffic."""
        return [
            i
            for i, rule in enumerate(self.rules(direction))
            if rule_admits_everything(rule, direction)
        ]


def rule_admits_everything(rule: dict[str, Any], direction: str) -> bool:
    """A rule with no peers and no ports allows every source (or destination) on every
    port; peers or ports of any kind narrow it, and the reachability analysis judges those."""
    return not rule.get(_PEERS_FIELD[direction]) and not rule.get("ports")


def read_policy(obj: K8sObject) -> NetworkPolicy:
    """A NetworkPolicy object, with the API server's defaults: a missing podSelector is the
    empty one, and missing policyTypes are Ingress, plus Egress when egress rules exist."""
    raw_spec = obj.raw.get("spec")
    spec = as_dict(raw_spec)
    wrong_spec = raw_spec is not None and not isinstance(raw_spec, dict)
    problem = "spec is not a mapping" if wrong_spec else None
    pod_selector = spec.get("podSelector")
    problem = problem or label_selector_problem(pod_selector, "spec.podSelector")
    ingress, ingress_problem = _read_rules(spec, INGRESS)
    egress, egress_problem = _read_rules(spec, EGRESS)
    types, types_problem = _read_policy_types(spec.get("policyTypes"), egress)
    problem = problem or ingress_problem or egress_problem or types_problem
    return NetworkPolicy(
        obj=obj,
        pod_selector=as_dict(pod_selector),
        policy_types=frozenset() if problem else types,
        ingress=ingress,
        egress=egress,
        problem=problem,
    )


def _read_policy_types(
    value: Any, egress: tuple[dict[str, Any], ...]
) -> tuple[frozenset[str], str | None]:
    if value is None or value == []:
        return frozenset({INGRESS, EGRESS} if egress else {INGRESS}), None
    if not isinstance(value, list):
        return frozenset(), "spec.policyTypes is not a list"
    if not all(v in DIRECTIONS for v in value):
        return frozenset(), "spec.policyTypes may only hold Ingress and Egress"
    return frozenset(value), None


def _read_rules(
    spec: dict[str, Any], direction: str
) -> tuple[tuple[dict[str, Any], ...], str | None]:
    field = f"spec.{_RULES_FIELD[direction]}"
    value = spec.get(_RULES_FIELD[direction])
    if value is None:
        return (), None
    if not isinstance(value, list):
        return (), f"{field} is not a list"
    for index, rule in enumerate(value):
        problem = _rule_problem(rule, direction, f"{field}[{index}]")
        if problem is not None:
            return (), problem
    return tuple(value), None


def _rule_problem(rule: Any, direction: str, field: str) -> str | None:
    if not isinstance(rule, dict):
        return f"{field} is not a mapping"
    peers_field = _PEERS_FIELD[direction]
    for list_field in (peers_field, "ports"):
        items = rule.get(list_field)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(i, dict) for i in items)
        ):
            return f"{field}.{list_field} is not a list of mappings"
    for index, peer in enumerate(rule.get(peers_field) or ()):
        ip_block = peer.get("ipBlock")
        if ip_block is not None and not isinstance(as_dict(ip_block).get("cidr"), str):
            return f"{field}.{peers_field}[{index}].ipBlock has no cidr"
        for selector_field in ("podSelector", "namespaceSelector"):
            problem = label_selector_problem(
                peer.get(selector_field), f"{field}.{peers_field}[{index}].{selector_field}"
            )
            if problem is not None:
                return problem
    return None


def policies_in(inventory: Inventory, namespace: str) -> list[NetworkPolicy]:
    """Every NetworkPolicy of a namespace, read from the objects (checks use the per-scan
    index, `policies_by_namespace`, through `Context.derived`)."""
    return [read_policy(obj) for obj in inventory.in_namespace("NetworkPolicy", namespace)]


def policies_by_namespace(inventory: Inventory) -> dict[str, list[NetworkPolicy]]:
    index: dict[str, list[NetworkPolicy]] = defaultdict(list)
    for obj in inventory.of_kind("NetworkPolicy"):
        index[obj.namespace or "default"].append(read_policy(obj))
    return index


def isolating(
    policies: Iterable[NetworkPolicy], namespace: str, pod_labels: dict[str, str], direction: str
) -> list[NetworkPolicy]:
    """The policies that isolate a pod for a direction."""
    return [p for p in policies if p.isolates(namespace, pod_labels, direction)]


def runs_pods(workload: Workload) -> bool:
    """Whether a workload's pod template ever becomes running pods."""
    return workload.obj.kind not in _TEMPLATE_ONLY_KINDS


def running_workloads_in(inventory: Inventory, namespace: str) -> list[Workload]:
    """The workloads of a namespace whose pods run (templates excluded)."""
    return [w for w in inventory.workloads_in(namespace) if runs_pods(w)]
