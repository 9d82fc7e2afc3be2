"""Which workloads may talk to which, on which ports, under the NetworkPolicies of an inventory.

The semantics are the Kubernetes ones (see docs/netpol.md):

* A pod is isolated for a direction when some well-formed policy of its namespace selects
  it and names that direction in its policyTypes. A pod isolated for neither direction
  accepts and sends everything; pods on the host network are not governed at all.
* A connection from S to D on a port is allowed when D's ingress allows it (D not isolated
  for ingress, or some rule of some policy isolating D admits S and the port) and S's egress
  allows it (the same, for S's egress rules and destination D). Policies add up: any rule of
  any policy is enough.
* A peer with podSelector and namespaceSelector is one peer (both must match); two peers
  are alternatives. A missing namespaceSelector means the policy's namespace; an empty one
  every namespace. An empty or missing `from`/`to` admits every peer; empty or missing
  `ports` every port. Named ports are resolved against the destination pod's containerPorts,
  by name and protocol.
* Traffic from or to outside the cluster matches ipBlock peers only (or rules admitting
  every peer). Whether an ipBlock also matches pod addresses depends on the network plugin;
  this analysis never lets an ipBlock admit a pod, so pod-to-pod results do not depend on
  addresses kubeproof cannot see.

Workloads (the top owners of pods) stand for their pods: every pod of a workload has the
workload's pod labels and container ports. Labels and selectors are matched with integer
bitsets over the workloads, so a selector costs a few big-integer operations, not a loop
over every pod.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeproof.analysis.netpol import (
    EGRESS,
    INGRESS,
    MAX_PORT,
    MIN_PORT,
    PROTOCOLS,
    IPBlock,
    IPNetwork,
    NetworkPolicy,
    PortRule,
    Rule,
    SelectorPeer,
    policies_by_namespace,
    runs_pods,
)
from kubeproof.inventory import Inventory, Workload
from kubeproof.inventory.index import NAMESPACE_NAME_LABEL
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.inventory.selectors import selector_matches

# The API server sets this label on every namespace, to its name, and it cannot be changed.

# --- port sets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortSet:
    """A set of (protocol, port) pairs, kept as sorted disjoint ranges per protocol."""

    ranges: tuple[tuple[str, int, int], ...] = ()

    @staticmethod
    def of(items: Iterable[tuple[str, int, int]]) -> PortSet:
        by_protocol: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for protocol, start, end in items:
            if start <= end:
                by_protocol[protocol].append((start, end))
        merged: list[tuple[str, int, int]] = []
        for protocol in sorted(by_protocol):
            spans = sorted(by_protocol[protocol])
            low, high = spans[0]
            for start, end in spans[1:]:
                if start <= high + 1:
                    high = max(high, end)
                else:
                    merged.append((protocol, low, high))
                    low, high = start, end
            merged.append((protocol, low, high))
        return PortSet(tuple(merged))

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __or__(self, other: PortSet) -> PortSet:
        if not other.ranges or self.is_all():
            return self
        if not self.ranges or other.is_all():
            return other
        return PortSet.of((*self.ranges, *other.ranges))

    def __and__(self, other: PortSet) -> PortSet:
        if self.is_all():
            return other
        if other.is_all():
            return self
        found = []
        for protocol, start, end in self.ranges:
            for other_protocol, other_start, other_end in other.ranges:
                if protocol == other_protocol:
                    found.append((protocol, max(start, other_start), min(end, other_end)))
        return PortSet.of(found)

    def contains(self, protocol: str, port: int) -> bool:
        return any(p == protocol and s <= port <= e for p, s, e in self.ranges)

    def is_all(self) -> bool:
        return self.ranges == ALL_PORTS.ranges

    def labels(self) -> list[str]:
        """["all"], or one "TCP/80", "TCP/8000-8080" or "UDP/all" per range."""
        if self.is_all():
            return ["all"]
        return [_range_label(p, s, e) for p, s, e in self.ranges]


def _range_label(protocol: str, start: int, end: int) -> str:
    if (start, end) == (MIN_PORT, MAX_PORT):
        return f"{protocol}/all"
    return f"{protocol}/{start}" if start == end else f"{protocol}/{start}-{end}"


ALL_PORTS = PortSet(tuple((p, MIN_PORT, MAX_PORT) for p in sorted(PROTOCOLS)))
NO_PORTS = PortSet()


def parse_port_query(text: str) -> tuple[str, int]:
    """`80`, `80/TCP`, `53/udp` -> (protocol, port); raises ValueError naming the text."""
    number, slash, protocol = text.partition("/")
    protocol = protocol.upper() if slash else "TCP"
    if protocol not in PROTOCOLS:
        raise ValueError(f"{text!r}: protocol must be TCP, UDP or SCTP")
    if not number.isdigit() or not MIN_PORT <= int(number) <= MAX_PORT:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return protocol, int(number)


# --- addresses ---------------------------------------------------------------------------

# Address space that is not the public internet: private, shared, loopback, link-local,
# documentation, benchmarking, multicast and reserved ranges (IANA special-purpose registry).
_NON_PUBLIC_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# IPv6: the internet is global unicast, 2000::/3, less the documentation prefix.
_PUBLIC_V6 = ("2000::/3",)
_NON_PUBLIC_V6 = ("2001:db8::/32",)

Span = tuple[int, int]


def _span(network: IPNetwork) -> Span:
    return int(network.network_address), int(network.broadcast_address)


def subtract_spans(spans: Iterable[Span], removed: Iterable[Span]) -> list[Span]:
    """Integer ranges minus integer ranges (inclusive bounds)."""
    result = sorted(spans)
    for low, high in sorted(removed):
        kept: list[Span] = []
        for start, end in result:
            if end < low or start > high:
                kept.append((start, end))
                continue
            if start < low:
                kept.append((start, low - 1))
            if end > high:
                kept.append((high + 1, end))
        result = kept
    return result


def block_spans(block: IPBlock) -> list[Span]:
    """The addresses an ipBlock admits, as integer ranges of its IP version."""
    return subtract_spans([_span(block.cidr)], [_span(e) for e in block.excepts])


def _networks(texts: Iterable[str]) -> list[Span]:
    return [_span(ipaddress.ip_network(t)) for t in texts]


PUBLIC_SPANS = {
    4: subtract_spans([(0, 2**32 - 1)], _networks(_NON_PUBLIC_V4)),
    6: subtract_spans(_networks(_PUBLIC_V6), _networks(_NON_PUBLIC_V6)),
}


def blocks_cover_internet(blocks: Iterable[IPBlock]) -> bool:
    """Whether ipBlocks together admit every public IPv4 address, or every public IPv6 one:
    0.0.0.0/0 with exceptions only for private or reserved ranges still admits the internet."""
    admitted: dict[int, list[Span]] = defaultdict(list)
    for block in blocks:
        admitted[block.cidr.version].extend(block_spans(block))
    return any(
        not subtract_spans(public, admitted[version])
        for version, public in PUBLIC_SPANS.items()
        if admitted[version]
    )


# --- what one rule admits ----------------------------------------------------------------


def ip_blocks(rule: Rule) -> list[IPBlock]:
    return [p for p in rule.peers or () if isinstance(p, IPBlock)]


def rule_admits_internet(rule: Rule) -> bool:
    """Every peer (no from/to), or ipBlocks covering the whole public internet."""
    return rule.peers is None or blocks_cover_internet(ip_blocks(rule))


def _fresh_namespace_labels(selector: dict[str, Any]) -> dict[str, str]:
    """The labels of a namespace nobody has labelled yet, named so that no value of the
    selector mentions it: what any tenant gets when it creates a namespace."""
    mentioned = set(as_dict(selector.get("matchLabels")).values())
    for expression in as_list(selector.get("matchExpressions")):
        mentioned.update(
            v for v in as_list(as_dict(expression).get("values")) if isinstance(v, str)
        )
    name = "new-namespace"
    while name in mentioned:
        name += "-x"
    return {NAMESPACE_NAME_LABEL: name}


def peer_admits_any_namespace(peer: SelectorPeer) -> bool:
    """A namespaceSelector that would match a namespace created tomorrow, unlabelled:
    the empty selector, or one that only excludes names (NotIn, DoesNotExist ...)."""
    selector = peer.namespace_selector
    return selector is not None and selector_matches(selector, _fresh_namespace_labels(selector))


def rule_admits_any_namespace(rule: Rule) -> bool:
    if rule.peers is None:
        return True
    return any(isinstance(p, SelectorPeer) and peer_admits_any_namespace(p) for p in rule.peers)


def rule_ports_without_pod(rule: Rule) -> PortSet:
    """The ports a rule admits towards an address outside the cluster: named ports resolve
    against pods only, so they admit nothing there."""
    if rule.ports is None:
        return ALL_PORTS
    return PortSet.of(_numbered_range(p) for p in rule.ports if p.name is None)


def _numbered_range(port: PortRule) -> tuple[str, int, int]:
    if port.start is None:
        return port.protocol, MIN_PORT, MAX_PORT
    return port.protocol, port.start, port.end if port.end is not None else port.start


def describe_ports(ports: PortSet) -> str:
    return "every port" if ports.is_all() else ", ".join(ports.labels())


def describe_rule_ports(rule: Rule) -> str:
    """The ports of a rule as written (named ports by name)."""
    if rule.ports is None:
        return "every port"
    return ", ".join(
        f"{p.protocol}/{p.name}" if p.name else _range_label(*_numbered_range(p))
        for p in rule.ports
    )


# --- endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A workload as the analysis sees it: where its pods are and what they listen on."""

    index: int
    workload: Workload
    namespace: str
    labels: dict[str, str]
    named_ports: dict[str, tuple[tuple[str, int], ...]]
    host_network: bool

    @property
    def name(self) -> str:
        return str(self.workload.subject)


def named_ports_of(workload: Workload) -> dict[str, tuple[tuple[str, int], ...]]:
    """containerPorts by name, with their protocol (TCP when missing)."""
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for container in workload.containers:
        if container.list_name == "ephemeralContainers":
            continue  # ephemeral containers may not declare ports
        for port in as_list(container.spec.get("ports")):
            port = as_dict(port)
            name, number = as_str(port.get("name")), port.get("containerPort")
            protocol = port.get("protocol", "TCP")
            if name and type(number) is int and protocol in PROTOCOLS:
                found[name].append((protocol, number))
    return {name: tuple(ports) for name, ports in found.items()}


def endpoint_of(index: int, workload: Workload) -> Endpoint:
    return Endpoint(
        index=index,
        workload=workload,
        namespace=workload.namespace,
        labels=workload.pod_labels,
        named_ports=named_ports_of(workload),
        host_network=workload.pod_spec.get("hostNetwork") is True,
    )


def rule_ports_for(rule: Rule, destination: Endpoint | None) -> PortSet:
    """The ports a rule admits towards a destination pod (or outside, for None)."""
    if rule.ports is None:
        return ALL_PORTS
    if destination is None:
        return rule_ports_without_pod(rule)
    items = []
    for port in rule.ports:
        if port.name is None:
            items.append(_numbered_range(port))
            continue
        for protocol, number in destination.named_ports.get(port.name, ()):
            if protocol == port.protocol:
                items.append((protocol, number, number))
    return PortSet.of(items)


# --- label index -------------------------------------------------------------------------


class LabelIndex:
    """Bitsets of the items (bit i = item i) carrying each label, to evaluate selectors
    with a few integer operations."""

    def __init__(self, labels: list[dict[str, str]]) -> None:
        self.all = (1 << len(labels)) - 1
        self._by_pair: dict[tuple[str, str], int] = defaultdict(int)
        self._by_key: dict[str, int] = defaultdict(int)
        for index, item_labels in enumerate(labels):
            bit = 1 << index
            for key, value in item_labels.items():
                self._by_pair[(key, value)] |= bit
                self._by_key[key] |= bit
        self._cache: dict[str, int] = {}

    def select(self, selector: dict[str, Any]) -> int:
        """The items a well-formed LabelSelector matches (the empty one matches all)."""
        key = json.dumps(selector, sort_keys=True)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._evaluate(selector)
        return cached

    def _evaluate(self, selector: dict[str, Any]) -> int:
        members = self.all
        for key, value in as_dict(selector.get("matchLabels")).items():
            members &= self._by_pair.get((key, value), 0)
        for expression in as_list(selector.get("matchExpressions")):
            members &= self._expression(as_dict(expression))
        return members

    def _expression(self, expression: dict[str, Any]) -> int:
        key = as_str(expression.get("key")) or ""
        values = [v for v in as_list(expression.get("values")) if isinstance(v, str)]
        with_value = 0
        for value in values:
            with_value |= self._by_pair.get((key, value), 0)
        operator = expression.get("operator")
        if operator == "In":
            return with_value
        if operator == "NotIn":
            return self.all & ~with_value
        if operator == "Exists":
            return self._by_key.get(key, 0)
        if operator == "DoesNotExist":
            return self.all & ~self._by_key.get(key, 0)
        return 0  # an unknown operator matches nothing (well-formed policies have none)


def bits(members: int) -> Iterator[int]:
    """The indexes of the set bits, lowest first."""
    while members:
        low = members & -members
        yield low.bit_length() - 1
        members ^= low


EVERY_ADDRESS = ("0.0.0.0/0", "::/0")

# --- the analysis ------------------------------------------------------------------------


@dataclass(slots=True)
class Isolation:
    """The policies that isolate one workload, per direction (empty: not isolated)."""

    ingress: list[NetworkPolicy] = field(default_factory=list)
    egress: list[NetworkPolicy] = field(default_factory=list)

    def policies(self, direction: str) -> list[NetworkPolicy]:
        return self.ingress if direction == INGRESS else self.egress


class Reachability:
    """The reachability of every workload of an inventory, computed on demand per pair."""

    def __init__(
        self,
        inventory: Inventory,
        policies: Mapping[str, list[NetworkPolicy]] | None = None,
    ) -> None:
        self.inventory = inventory
        self.policies = policies if policies is not None else policies_by_namespace(inventory)
        workloads = [w for w in inventory.workloads if runs_pods(w)]
        self.endpoints = [endpoint_of(i, w) for i, w in enumerate(workloads)]
        self._pods = LabelIndex([e.labels for e in self.endpoints])
        # Pods on the host network use the node's address: no pod selector matches them.
        self._pod_network = self._pods.all
        self._in_namespace: dict[str, int] = defaultdict(int)
        for endpoint in self.endpoints:
            self._in_namespace[endpoint.namespace] |= 1 << endpoint.index
            if endpoint.host_network:
                self._pod_network &= ~(1 << endpoint.index)
        self.namespaces = sorted(set(inventory.namespaces()) | set(self._in_namespace))
        self._namespaces = LabelIndex([self.namespace_labels(n) for n in self.namespaces])
        self._namespace_members_cache: dict[str, int] = {}
        self._peer_cache: dict[int, int] = {}
        self.isolation = [Isolation() for _ in self.endpoints]
        for namespace_policies in self.policies.values():
            for policy in namespace_policies:
                self._record_isolation(policy)

    def namespaces_without_object(self) -> list[str]:
        """Namespaces that run workloads but whose Namespace object is not in the input: only
        their name label is known, so a namespaceSelector on other labels cannot match them,
        and what they may reach or be reached from can be understated."""
        return sorted(n for n in self._in_namespace if self.inventory.namespace_object(n) is None)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return self.inventory.namespace_labels(namespace)

    def _record_isolation(self, policy: NetworkPolicy) -> None:
        if not policy.well_formed or not policy.policy_types:
            return
        selected = self._in_namespace.get(policy.namespace, 0)
        if not selected:
            return
        selected &= self._pods.select(policy.pod_selector)
        for index in bits(selected):
            if INGRESS in policy.policy_types:
                self.isolation[index].ingress.append(policy)
            if EGRESS in policy.policy_types:
                self.isolation[index].egress.append(policy)

    def governed(self, endpoint: Endpoint, direction: str) -> list[NetworkPolicy]:
        """The policies isolating a workload for a direction; empty when it is open (pods
        on the host network are never governed)."""
        if endpoint.host_network:
            return []
        return self.isolation[endpoint.index].policies(direction)

    # -- peers --

    def _namespace_members(self, selector: dict[str, Any]) -> int:
        key = json.dumps(selector, sort_keys=True)
        members = self._namespace_members_cache.get(key)
        if members is None:
            members = 0
            for index in bits(self._namespaces.select(selector)):
                members |= self._in_namespace.get(self.namespaces[index], 0)
            self._namespace_members_cache[key] = members
        return members

    def peer_members(self, rule: Rule, policy_namespace: str) -> int:
        """The workloads a rule's selector peers match (all of them for a rule admitting
        every peer); never one on the host network, never through an ipBlock."""
        key = id(rule)
        members = self._peer_cache.get(key)
        if members is not None:
            return members
        if rule.peers is None:
            members = self._pods.all
        else:
            members = 0
            for peer in rule.peers:
                if isinstance(peer, SelectorPeer):
                    members |= self._selector_peer_members(peer, policy_namespace)
        members &= self._pod_network
        self._peer_cache[key] = members
        return members

    def _selector_peer_members(self, peer: SelectorPeer, policy_namespace: str) -> int:
        if peer.namespace_selector is None:
            scope = self._in_namespace.get(policy_namespace, 0)
        else:
            scope = self._namespace_members(peer.namespace_selector)
        if peer.pod_selector is None or not scope:
            return scope
        return scope & self._pods.select(peer.pod_selector)

    # -- directions --

    def ingress_ports(self, destination: Endpoint, source: Endpoint | None) -> PortSet:
        """The ports destination's ingress accepts from source (None: outside the cluster)."""
        policies = self.governed(destination, INGRESS)
        if not policies:
            return ALL_PORTS
        allowed = NO_PORTS
        for policy in policies:
            for rule in policy.ingress_rules:
                if self._rule_admits(rule, policy, source):
                    allowed |= rule_ports_for(rule, destination)
                    if allowed.is_all():
                        return allowed
        return allowed

    def egress_ports(self, source: Endpoint, destination: Endpoint | None) -> PortSet:
        """The ports source's egress allows towards destination (None: outside)."""
        policies = self.governed(source, EGRESS)
        if not policies:
            return ALL_PORTS
        allowed = NO_PORTS
        for policy in policies:
            for rule in policy.egress_rules:
                if self._rule_admits(rule, policy, destination):
                    allowed |= rule_ports_for(rule, destination)
                    if allowed.is_all():
                        return allowed
        return allowed

    def _rule_admits(self, rule: Rule, policy: NetworkPolicy, peer: Endpoint | None) -> bool:
        if rule.peers is None:
            return True
        if peer is None:
            return any(isinstance(p, IPBlock) for p in rule.peers)
        return bool(self.peer_members(rule, policy.namespace) >> peer.index & 1)

    def allowed_ports(self, source: Endpoint | None, destination: Endpoint | None) -> PortSet:
        """The ports on which source may open a connection to destination: the egress of
        the source and the ingress of the destination must both allow it."""
        if source is None and destination is None:
            return NO_PORTS
        if source is None:
            assert destination is not None
            return self.ingress_ports(destination, None)
        if destination is None:
            return self.egress_ports(source, None)
        egress = self.egress_ports(source, destination)
        if not egress:
            return egress
        return egress & self.ingress_ports(destination, source)

    def external_blocks(self, endpoint: Endpoint, direction: str) -> list[str]:
        """The outside addresses a workload accepts (ingress) or reaches (egress), on some
        port: CIDRs as written, with their exceptions."""
        policies = self.governed(endpoint, direction)
        if not policies:
            return list(EVERY_ADDRESS)
        found: list[str] = []
        towards = endpoint if direction == INGRESS else None
        for policy in policies:
            for rule in policy.typed_rules(direction):
                if not rule_ports_for(rule, towards):
                    continue  # only named ports this pod (or the outside) does not have
                if rule.peers is None:
                    return list(EVERY_ADDRESS)
                found.extend(str(b) for b in ip_blocks(rule) if str(b) not in found)
        return found

    # -- per-workload summaries (any port) --

    def ingress_sources(self, destination: Endpoint) -> int:
        """Bitset of the workloads destination's ingress rules admit, on some port."""
        policies = self.governed(destination, INGRESS)
        if not policies:
            return self._pods.all
        members = 0
        for policy in policies:
            for rule in policy.ingress_rules:
                if rule_ports_for(rule, destination):
                    members |= self.peer_members(rule, policy.namespace)
        return members

    def egress_destinations(self, source: Endpoint) -> int:
        """Bitset of the workloads source's egress rules admit, on some port."""
        policies = self.governed(source, EGRESS)
        if not policies:
            return self._pods.all
        members = 0
        for policy in policies:
            for rule in policy.egress_rules:
                members |= self.peer_members(rule, policy.namespace)
        return members

    def in_namespace(self, namespace: str | None) -> list[Endpoint]:
        if namespace is None:
            return list(self.endpoints)
        return [self.endpoints[i] for i in bits(self._in_namespace.get(namespace, 0))]


# --- the matrix --------------------------------------------------------------------------

EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class Cell:
    source: str
    destination: str
    ports: PortSet

    @property
    def allowed(self) -> bool:
        return bool(self.ports)


@dataclass(frozen=True, slots=True)
class Isolated:
    """One workload's isolation, and the outside addresses it accepts and reaches."""

    workload: str
    ingress: str  # "isolated", "open", or "not governed" (host network)
    egress: str
    from_outside: list[str]  # CIDRs (with exceptions) admitted on some port
    to_outside: list[str]


def isolation_of(analysis: Reachability, endpoint: Endpoint) -> Isolated:
    def state(direction: str) -> str:
        if endpoint.host_network:
            return "not governed"
        return "isolated" if analysis.governed(endpoint, direction) else "open"

    return Isolated(
        workload=endpoint.name,
        ingress=state(INGRESS),
        egress=state(EGRESS),
        from_outside=analysis.external_blocks(endpoint, INGRESS),
        to_outside=analysis.external_blocks(endpoint, EGRESS),
    )


@dataclass(frozen=True, slots=True)
class Matrix:
    """Rows are sources, columns destinations; the last row and column are `external`."""

    labels: list[str]  # workload subjects, then "external"
    cells: list[list[Cell]]
    port: tuple[str, int] | None
    namespace: str | None
    not_governed: list[str]  # workloads on the host network
    isolation: list[Isolated]  # per workload, in row order


def matrix(
    analysis: Reachability, namespace: str | None = None, port: tuple[str, int] | None = None
) -> Matrix:
    endpoints = sorted(analysis.in_namespace(namespace), key=lambda e: (e.namespace, e.name))
    sides: list[Endpoint | None] = [*endpoints, None]
    labels = [e.name for e in endpoints] + [EXTERNAL]
    rows = []
    for source, source_label in zip(sides, labels, strict=True):
        row = []
        for destination, destination_label in zip(sides, labels, strict=True):
            ports = analysis.allowed_ports(source, destination)
            if port is not None:
                ports = ports & PortSet(((port[0], port[1], port[1]),))
            row.append(Cell(source_label, destination_label, ports))
        rows.append(row)
    return Matrix(
        labels=labels,
        cells=rows,
        port=port,
        namespace=namespace,
        not_governed=[e.name for e in endpoints if e.host_network],
        isolation=[isolation_of(analysis, e) for e in endpoints],
    )
