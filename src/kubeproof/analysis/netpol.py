"""NetworkPolicy semantics, as the API server and a conforming network plugin apply them.

The primitives here answer one question each: which pods a policy selects, which
directions it governs, whether it denies a direction by default, and whether a rule
admits everything. Rules are also read into typed peers and ports (`Rule`), validated as
the API server validates them, for the reachability analysis. A policy the API server
would reject (fields of the wrong type, a port out of range, an ipBlock whose exception
is not inside its cidr ...) isolates nothing: it could never exist in a cluster, so it
must not make a pod look protected.
"""

from __future__ import annotations

import functools
import ipaddress
import re
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

TCP, UDP, SCTP = "TCP", "UDP", "SCTP"
PROTOCOLS = (TCP, UDP, SCTP)
MIN_PORT, MAX_PORT = 1, 65535

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Workload kinds whose pods never run: a PodTemplate is only a template.
_TEMPLATE_ONLY_KINDS = frozenset({"PodTemplate"})


def selector_selects_everything(selector: dict[str, Any]) -> bool:
    """An empty LabelSelector (no labels, no expressions) selects every object."""
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


@dataclass(frozen=True, slots=True)
class PortRule:
    """One entry of a rule's ports. With neither a number nor a name it admits every port of
    its protocol; a name is resolved against the destination pod's containerPorts."""

    protocol: str
    start: int | None = None
    end: int | None = None  # endPort, or start when no range was given
    name: str | None = None


@dataclass(frozen=True, slots=True)
class IPBlock:
    """An ipBlock peer: the addresses of `cidr` except those of `excepts`."""

    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def __str__(self) -> str:
        if not self.excepts:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(str(e) for e in self.excepts)}"


@dataclass(frozen=True, slots=True)
class SelectorPeer:
    """A podSelector and/or namespaceSelector peer. A missing namespaceSelector means the
    policy's own namespace; a missing podSelector (with a namespaceSelector) every pod."""

    pod_selector: dict[str, Any] | None
    namespace_selector: dict[str, Any] | None


Peer = SelectorPeer | IPBlock


@dataclass(frozen=True, slots=True)
class Rule:
    """One ingress or egress rule. None stands for an empty or missing list, which the API
    defines as "every peer" or "every port", never as "none"."""

    index: int
    peers: tuple[Peer, ...] | None
    ports: tuple[PortRule, ...] | None


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """One NetworkPolicy, read with the API server's defaults applied."""

    obj: K8sObject
    pod_selector: dict[str, Any]
    policy_types: frozenset[str]
    ingress: tuple[dict[str, Any], ...]
    egress: tuple[dict[str, Any], ...]
    problem: str | None  # why the API server would reject it; it then governs nothing
    ingress_rules: tuple[Rule, ...] = ()  # typed rules, empty when the policy is malformed
    egress_rules: tuple[Rule, ...] = ()

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

    def typed_rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress_rules if direction == INGRESS else self.egress_rules

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
    ingress, ingress_rules, ingress_problem = _read_rules(spec, INGRESS)
    egress, egress_rules, egress_problem = _read_rules(spec, EGRESS)
    types, types_problem = _read_policy_types(spec.get("policyTypes"), egress)
    problem = problem or ingress_problem or egress_problem or types_problem
    return NetworkPolicy(
        obj=obj,
        pod_selector=as_dict(pod_selector),
        policy_types=frozenset() if problem else types,
        ingress=ingress,
        egress=egress,
        problem=problem,
        ingress_rules=() if problem else ingress_rules,
        egress_rules=() if problem else egress_rules,
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
) -> tuple[tuple[dict[str, Any], ...], tuple[Rule, ...], str | None]:
    field = f"spec.{_RULES_FIELD[direction]}"
    value = spec.get(_RULES_FIELD[direction])
    if value is None:
        return (), (), None
    if not isinstance(value, list):
        return (), (), f"{field} is not a list"
    rules = []
    for index, raw_rule in enumerate(value):
        rule, problem = read_rule(raw_rule, direction, index, f"{field}[{index}]")
        if rule is None:
            return (), (), problem
        rules.append(rule)
    return tuple(value), tuple(rules), None


def read_rule(raw: Any, direction: str, index: int, field: str) -> tuple[Rule | None, str | None]:
    """One rule as the API server validates it, or why it would reject it."""
    if not isinstance(raw, dict):
        return None, f"{field} is not a mapping"
    peers_field = _PEERS_FIELD[direction]
    raw_peers, raw_ports = raw.get(peers_field), raw.get("ports")
    for list_field, items in ((peers_field, raw_peers), ("ports", raw_ports)):
        if items is not None and not _is_list_of_mappings(items):
            return None, f"{field}.{list_field} is not a list of mappings"
    peers: list[Peer] = []
    for position, raw_peer in enumerate(raw_peers or ()):
        peer, problem = read_peer(raw_peer, f"{field}.{peers_field}[{position}]")
        if peer is None:
            return None, problem
        peers.append(peer)
    ports: list[PortRule] = []
    for position, raw_port in enumerate(raw_ports or ()):
        port, problem = read_port(raw_port, f"{field}.ports[{position}]")
        if port is None:
            return None, problem
        ports.append(port)
    return Rule(index, tuple(peers) or None, tuple(ports) or None), None


def _is_list_of_mappings(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(item, dict) for item in items)


def read_peer(raw: dict[str, Any], field: str) -> tuple[Peer | None, str | None]:
    """A peer names exactly one kind of endpoint: selectors (one or both), or an ipBlock."""
    pod_selector = raw.get("podSelector")
    namespace_selector = raw.get("namespaceSelector")
    ip_block = raw.get("ipBlock")
    if ip_block is not None:
        if pod_selector is not None or namespace_selector is not None:
            return None, f"{field} combines ipBlock with a selector"
        return read_ip_block(ip_block, f"{field}.ipBlock")
    if pod_selector is None and namespace_selector is None:
        return None, f"{field} names no podSelector, namespaceSelector or ipBlock"
    for name, selector in (
        ("podSelector", pod_selector),
        ("namespaceSelector", namespace_selector),
    ):
        problem = label_selector_problem(selector, f"{field}.{name}")
        if problem is not None:
            return None, problem
    return SelectorPeer(pod_selector, namespace_selector), None


_CIDR_TEXT = re.compile(r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$")


def parse_cidr(text: Any) -> IPNetwork | None:
    """A CIDR as the API server validates it (address/prefix, no bits set beyond the prefix),
    or None. Older servers stored CIDRs with host bits; such a legacy policy is read as
    refused, which can only make its pods look more open than they are, never less."""
    return _network(text) if isinstance(text, str) else None


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> IPNetwork | None:
    """Kept across policies: they repeat the same few CIDRs, and parsing one is slow."""
    if not _CIDR_TEXT.match(text):
        return None
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None


def read_ip_block(raw: Any, field: str) -> tuple[IPBlock | None, str | None]:
    if not isinstance(raw, dict) or not isinstance(raw.get("cidr"), str):
        return None, f"{field} has no cidr"
    cidr = parse_cidr(raw["cidr"])
    if cidr is None:
        return None, f"{field}.cidr is not a CIDR"
    raw_excepts = raw.get("except")
    if raw_excepts is not None and not isinstance(raw_excepts, list):
        return None, f"{field}.except is not a list"
    excepts = []
    for position, text in enumerate(raw_excepts or ()):
        network = parse_cidr(text)
        if network is None:
            return None, f"{field}.except[{position}] is not a CIDR"
        # The API server requires each exception to be a strict subset of the cidr.
        if network.version != cidr.version or not (
            network.subnet_of(cidr) and network.prefixlen > cidr.prefixlen  # type: ignore[arg-type]
        ):
            return None, f"{field}.except[{position}] is not a strict subset of cidr"
        excepts.append(network)
    return IPBlock(cidr, tuple(excepts)), None


_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def is_port_name(text: str) -> bool:
    """An IANA service name, the only form a named port may take."""
    return (
        len(text) <= 15
        and bool(_PORT_NAME.match(text))
        and "--" not in text
        and any(c.isalpha() for c in text)
    )


def _is_port_number(value: Any) -> bool:
    return type(value) is int and MIN_PORT <= value <= MAX_PORT


def read_port(raw: dict[str, Any], field: str) -> tuple[PortRule | None, str | None]:
    """One NetworkPolicyPort: protocol (TCP when missing), port (number or name), endPort."""
    protocol = raw.get("protocol")
    if protocol is None:
        protocol = TCP
    if protocol not in PROTOCOLS:
        return None, f"{field}.protocol is not one of TCP, UDP, SCTP"
    port, end_port = raw.get("port"), raw.get("endPort")
    if end_port is not None:
        if not _is_port_number(port):
            return None, f"{field}.endPort needs a numeric port"
        if not _is_port_number(end_port) or end_port < port:
            return None, f"{field}.endPort is not a port number at or above port"
        return PortRule(protocol, port, end_port), None
    if port is None:
        return PortRule(protocol), None
    if _is_port_number(port):
        return PortRule(protocol, port, port), None
    if isinstance(port, str) and is_port_name(port):
        return PortRule(protocol, name=port), None
    return None, f"{field}.port is neither a port number (1-65535) nor a port name"


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
