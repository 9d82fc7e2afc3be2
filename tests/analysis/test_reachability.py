"""Reachability analysis: port sets, address ranges, peers, ports and hostile policies."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.analysis.netpol import (
    IPBlock,
    PortRule,
    SelectorPeer,
    is_port_name,
    parse_cidr,
    read_ip_block,
    read_peer,
    read_policy,
    read_port,
)
from kubeproof.analysis.reachability import (
    ALL_PORTS,
    NO_PORTS,
    PortSet,
    Reachability,
    block_spans,
    blocks_cover_internet,
    matrix,
    parse_port_query,
    peer_admits_any_namespace,
    rule_admits_any_namespace,
    rule_admits_internet,
)
from kubeproof.inventory import Inventory, K8sObject

# --- port sets ---------------------------------------------------------------------------

SMALL_PORT = st.integers(min_value=1, max_value=40)
RANGES = st.lists(st.tuples(st.sampled_from(["TCP", "UDP"]), SMALL_PORT, SMALL_PORT), max_size=6)


def expand(ranges: list[tuple[str, int, int]]) -> set[tuple[str, int]]:
    return {(p, n) for p, s, e in ranges for n in range(s, e + 1)}


@settings(max_examples=300, deadline=None)
@given(RANGES, RANGES)
def test_port_set_union_and_intersection_match_plain_sets(
    left: list[tuple[str, int, int]], right: list[tuple[str, int, int]]
) -> None:
    a, b = PortSet.of(left), PortSet.of(right)
    assert expand(list(a.ranges)) == expand(left)
    assert expand(list((a | b).ranges)) == expand(left) | expand(right)
    assert expand(list((a & b).ranges)) == expand(left) & expand(right)
    for protocol, port in expand(left):
        assert a.contains(protocol, port)
    # Normalised: sorted, disjoint, not adjacent within a protocol.
    for (p1, _, e1), (p2, s2, _) in zip(a.ranges, a.ranges[1:], strict=False):
        assert p1 < p2 or s2 > e1 + 1


def test_port_set_labels() -> None:
    assert ALL_PORTS.labels() == ["all"]
    assert NO_PORTS.labels() == [] and not NO_PORTS
    ports = PortSet.of([("TCP", 80, 80), ("TCP", 8000, 8080), ("UDP", 1, 65535)])
    assert ports.labels() == ["TCP/80", "TCP/8000-8080", "UDP/all"]
    assert (ALL_PORTS & ports) == ports and (ports | ALL_PORTS).is_all()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("80", ("TCP", 80)),
        ("53/udp", ("UDP", 53)),
        ("9/SCTP", ("SCTP", 9)),
        ("65535/TCP", ("TCP", 65535)),
    ],
)
def test_port_query(text: str, parsed: tuple[str, int]) -> None:
    assert parse_port_query(text) == parsed


@pytest.mark.parametrize("text", ["", "0", "65536", "http", "80/ICMP", "-1/TCP", "80/"])
def test_bad_port_query_names_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"port|protocol"):
        parse_port_query(text)


# --- policy ports as the API server validates them ----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, PortRule("TCP")),
        ({"protocol": "UDP"}, PortRule("UDP")),
        ({"port": 80}, PortRule("TCP", 80, 80)),
        ({"port": 80, "endPort": 90, "protocol": "SCTP"}, PortRule("SCTP", 80, 90)),
        ({"port": "http"}, PortRule("TCP", name="http")),
        ({"port": "serve-80-tcp"}, PortRule("TCP", name="serve-80-tcp")),
    ],
)
def test_read_port(raw: dict[str, Any], expected: PortRule) -> None:
    assert read_port(raw, "p") == (expected, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"protocol": "ICMP"}, "protocol"),
        ({"protocol": "tcp"}, "protocol"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": True}, "port"),
        ({"port": "80"}, "port"),  # a numeric string is not a port name
        ({"port": "Http"}, "port"),
        ({"port": "a--b"}, "port"),
        ({"port": 1.5}, "port"),
        ({"port": 90, "endPort": 80}, "endPort"),
        ({"port": "http", "endPort": 90}, "endPort"),
        ({"endPort": 90}, "endPort"),
        ({"port": 80, "endPort": "90"}, "endPort"),
    ],
)
def test_read_port_rejects_what_the_api_server_rejects(raw: dict[str, Any], problem: str) -> None:
    port, found = read_port(raw, "spec.ingress[0].ports[0]")
    assert port is None and found is not None and problem in found


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["protocol", "port", "endPort"]),
        st.none()
        | st.booleans()
        | st.integers(min_value=-5, max_value=70000)
        | st.text(max_size=20)
        | st.sampled_from(["TCP", "UDP", "SCTP", "http", "serve-80-tcp"]),
    )
)
def test_any_port_entry_is_read_or_refused_never_crashes(raw: dict[str, Any]) -> None:
    port, problem = read_port(raw, "p")
    assert (port is None) != (problem is None)
    if port is not None:
        assert port.protocol in ("TCP", "UDP", "SCTP")
        if port.start is not None:
            assert port.end is not None and 1 <= port.start <= port.end <= 65535
        if port.name is not None:
            assert is_port_name(port.name) and port.start is None


# --- CIDRs and ipBlocks --------------------------------------------------------------------

IPV4_NETWORKS = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
    st.ip_addresses(v=4),
    st.integers(min_value=0, max_value=32),
)
IPV6_NETWORKS = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
    st.ip_addresses(v=6),
    st.integers(min_value=0, max_value=128),
)


@settings(max_examples=300, deadline=None)
@given(IPV4_NETWORKS | IPV6_NETWORKS)
def test_parse_cidr_round_trips_networks(network: Any) -> None:
    assert parse_cidr(str(network)) == network


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_cidr_never_crashes(text: str) -> None:
    parsed = parse_cidr(text)
    assert parsed is None or "/" in text


@pytest.mark.parametrize(
    "text", ["10.0.0.1", "10.0.0.0/33", "10.0.0.0/255.0.0.0", "010.0.0.0/8", "::/129", "x/8", ""]
)
def test_parse_cidr_rejects_what_the_api_server_rejects(text: str) -> None:
    assert parse_cidr(text) is None


def test_parse_cidr_refuses_host_bits_as_the_api_server_does() -> None:
    assert parse_cidr("10.1.2.3/8") is None
    assert parse_cidr("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")


@settings(max_examples=200, deadline=None)
@given(
    IPV4_NETWORKS, st.lists(IPV4_NETWORKS, max_size=3), st.lists(st.ip_addresses(v=4), max_size=10)
)
def test_block_spans_agree_with_ipaddress_membership(
    cidr: Any, candidates: list[Any], addresses: list[Any]
) -> None:
    excepts = tuple(e for e in candidates if e.subnet_of(cidr) and e.prefixlen > cidr.prefixlen)
    block = IPBlock(cidr, excepts)
    spans = block_spans(block)
    probes = [*addresses, cidr.network_address, cidr.broadcast_address]
    probes += [e.network_address for e in excepts]
    for address in probes:
        expected = address in cidr and not any(address in e for e in excepts)
        assert any(lo <= int(address) <= hi for lo, hi in spans) is expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0.0.0.0/0", "has no cidr"),
        ({"cidr": 10}, "has no cidr"),
        ({"cidr": "10.0.0.0"}, "not a CIDR"),
        ({"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}, "except is not a list"),
        ({"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}, "strict subset"),
        ({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}, "strict subset"),
        ({"cidr": "10.0.0.0/8", "except": ["::/64"]}, "strict subset"),
        ({"cidr": "10.0.0.0/8", "except": [None]}, "not a CIDR"),
    ],
)
def test_bad_ip_blocks_are_refused(raw: Any, problem: str) -> None:
    block, found = read_ip_block(raw, "b")
    assert block is None and found is not None and problem in found


@pytest.mark.parametrize(
    ("blocks", "internet"),
    [
        ([("0.0.0.0/0", [])], True),
        ([("::/0", [])], True),
        ([("2000::/3", [])], True),
        ([("0.0.0.0/0", ["10.0.0.0/8", "169.254.169.254/32", "192.168.0.0/16"])], True),
        ([("0.0.0.0/0", ["8.8.8.0/24"])], False),
        ([("0.0.0.0/1", []), ("128.0.0.0/1", [])], True),
        ([("0.0.0.0/1", [])], False),
        ([("10.0.0.0/8", [])], False),
        ([("1.2.3.4/32", [])], False),
        ([], False),
    ],
)
def test_blocks_cover_internet(blocks: list[tuple[str, list[str]]], internet: bool) -> None:
    parsed = [
        IPBlock(ipaddress.ip_network(c), tuple(ipaddress.ip_network(e) for e in ex))
        for c, ex in blocks
    ]
    assert blocks_cover_internet(parsed) is internet


# --- peers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "names no podSelector"),
        ({"podSelector": None}, "names no podSelector"),
        ({"ipBlock": {"cidr": "0.0.0.0/0"}, "podSelector": {}}, "combines ipBlock"),
        ({"ipBlock": {"cidr": "0.0.0.0/0"}, "namespaceSelector": {}}, "combines ipBlock"),
        ({"podSelector": {"matchLabels": []}}, "not a mapping"),
    ],
)
def test_bad_peers_are_refused(raw: dict[str, Any], problem: str) -> None:
    peer, found = read_peer(raw, "peer")
    assert peer is None and found is not None and problem in found


@pytest.mark.parametrize(
    ("namespace_selector", "any_namespace"),
    [
        ({}, True),
        (None, False),
        ({"matchLabels": {"team": "a"}}, False),
        ({"matchLabels": {"kubernetes.io/metadata.name": "new-namespace"}}, False),
        (
            {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]},
            True,
        ),
        (
            {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["kube-system"],
                    }
                ]
            },
            True,
        ),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}, False),
    ],
)
def test_namespace_selector_admitting_any_namespace(
    namespace_selector: dict[str, Any] | None, any_namespace: bool
) -> None:
    peer = SelectorPeer({"matchLabels": {"app": "x"}}, namespace_selector)
    assert peer_admits_any_namespace(peer) is any_namespace


def rules_of(spec: dict[str, Any]) -> Any:
    policy = read_policy(K8sObject.from_raw(netpol("p", "ns", spec)))
    assert policy.well_formed, policy.problem
    return policy


def test_rule_admitting_internet_and_any_namespace() -> None:
    policy = rules_of(
        {
            "podSelector": {},
            "ingress": [
                {"ports": [{"port": 80}]},
                {"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]},
                {"from": [{"podSelector": {}}]},
            ],
        }
    )
    first, second, third = policy.ingress_rules
    assert rule_admits_internet(first) and rule_admits_any_namespace(first)
    assert rule_admits_internet(second) and not rule_admits_any_namespace(second)
    assert not rule_admits_internet(third) and not rule_admits_any_namespace(third)


# --- the analysis over workloads ----------------------------------------------------------


def netpol(name: str, namespace: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def deployment(
    name: str, namespace: str, ports: list[dict[str, Any]] | None = None, host_network: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1", "ports": ports or []}]}
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def analyse(*objects: dict[str, Any]) -> tuple[Reachability, dict[str, Any]]:
    analysis = Reachability(Inventory([K8sObject.from_raw(o) for o in objects]))
    return analysis, {e.workload.obj.name: e for e in analysis.endpoints}


def test_named_ports_resolve_per_destination_and_protocol() -> None:
    allow_http = netpol(
        "http",
        "shop",
        {
            "podSelector": {},
            "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}]}],
        },
    )
    analysis, by_name = analyse(
        deployment("a", "shop", [{"name": "http", "containerPort": 8080}]),
        deployment(
            "b",
            "shop",
            [
                {"name": "http", "containerPort": 9090, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "TCP"},
            ],
        ),
        deployment("c", "shop"),
        allow_http,
    )
    a, b, c = by_name["a"], by_name["b"], by_name["c"]
    assert analysis.allowed_ports(c, a).labels() == ["TCP/8080"]
    assert analysis.allowed_ports(c, b).labels() == ["TCP/9090"]  # dns is TCP, the rule UDP
    assert analysis.allowed_ports(a, c) == NO_PORTS
    # From outside too, a name resolves against the destination pod.
    assert analysis.allowed_ports(None, a).labels() == ["TCP/8080"]


def test_named_ports_admit_nothing_towards_outside() -> None:
    analysis, by_name = analyse(
        deployment("a", "shop", [{"name": "https", "containerPort": 443}]),
        netpol(
            "out",
            "shop",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": "https"}]},
                    {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 587}]},
                ],
            },
        ),
    )
    assert analysis.allowed_ports(by_name["a"], None).labels() == ["TCP/587"]


def test_host_network_pods_are_not_governed_nor_matched_by_pod_selectors() -> None:
    analysis, by_name = analyse(
        deployment("node-agent", "shop", host_network=True),
        deployment("web", "shop"),
        netpol("deny", "shop", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        netpol(
            "from-all-pods",
            "shop",
            {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]},
        ),
    )
    agent, web = by_name["node-agent"], by_name["web"]
    assert analysis.allowed_ports(web, agent) == NO_PORTS  # web's egress is denied
    assert analysis.allowed_ports(agent, agent).is_all()  # the agent is not governed
    assert analysis.allowed_ports(agent, web) == NO_PORTS  # no pod selector matches it
    assert analysis.governed(agent, "Ingress") == []
    result = matrix(analysis, "shop")
    assert result.not_governed == ["Deployment/shop/node-agent"]


def test_matrix_is_sorted_filtered_and_ends_with_external() -> None:
    analysis, _ = analyse(
        deployment("b", "shop"), deployment("a", "shop"), deployment("z", "other")
    )
    result = matrix(analysis, "shop", ("TCP", 443))
    assert result.labels == ["Deployment/shop/a", "Deployment/shop/b", "external"]
    assert [c.allowed for c in result.cells[0]] == [True, True, True]
    assert result.cells[-1][-1].allowed is False  # outside to outside is not the cluster's
    assert matrix(analysis, "nowhere").labels == ["external"]


def test_ingress_sources_and_egress_destinations_bitsets() -> None:
    analysis, by_name = analyse(
        deployment("a", "shop"),
        deployment("b", "shop"),
        deployment("c", "other"),
        netpol(
            "a",
            "shop",
            {
                "podSelector": {"matchLabels": {"app": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}],
                "egress": [
                    {"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}
                ],
            },
        ),
    )
    a, b, c = by_name["a"], by_name["b"], by_name["c"]
    assert analysis.ingress_sources(a) == 1 << b.index
    assert analysis.egress_destinations(a) == (1 << a.index) | (1 << b.index) | (1 << c.index)
    assert analysis.ingress_sources(c) == (1 << 3) - 1
    assert analysis.external_blocks(a, "Ingress") == []
    assert analysis.external_blocks(c, "Egress") == ["0.0.0.0/0", "::/0"]


# --- hostile policies ------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=70000)
    | st.text(max_size=6)
    | st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "TCP", "UDP", "http", "Ingress", "Egress"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "podSelector",
                    "namespaceSelector",
                    "matchLabels",
                    "matchExpressions",
                    "policyTypes",
                    "ingress",
                    "egress",
                    "from",
                    "to",
                    "ports",
                    "port",
                    "endPort",
                    "protocol",
                    "ipBlock",
                    "cidr",
                    "except",
                    "app",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)

BASELINE = [
    deployment("a", "shop", [{"name": "http", "containerPort": 80}]),
    deployment("b", "shop"),
    deployment("c", "other"),
]


def grid(analysis: Reachability) -> list[list[list[str]]]:
    sides: list[Any] = [*sorted(analysis.endpoints, key=lambda e: e.name), None]
    return [[analysis.allowed_ports(s, d).labels() for d in sides] for s in sides]


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_hostile_policies_never_crash_nor_protect_when_refused(spec: Any) -> None:
    hostile = netpol("hostile", "shop", spec)
    with_policy = Reachability(Inventory([K8sObject.from_raw(o) for o in [*BASELINE, hostile]]))
    observed = grid(with_policy)
    if read_policy(K8sObject.from_raw(hostile)).problem is not None:
        without = Reachability(Inventory([K8sObject.from_raw(o) for o in BASELINE]))
        assert observed == grid(without)


# --- union: on top of a default deny, any well-formed policy only adds --------------------

SELECTORS = st.sampled_from(
    [
        {},
        {"matchLabels": {"app": "a"}},
        {"matchLabels": {"app": "c"}},
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["b"]}]},
    ]
)
NAMESPACE_SELECTORS = st.sampled_from(
    [{}, {"matchLabels": {"kubernetes.io/metadata.name": "other"}}, {"matchLabels": {"x": "y"}}]
)
PEERS = st.one_of(
    st.builds(lambda s: {"podSelector": s}, SELECTORS),
    st.builds(lambda s: {"namespaceSelector": s}, NAMESPACE_SELECTORS),
    st.builds(
        lambda p, n: {"podSelector": p, "namespaceSelector": n}, SELECTORS, NAMESPACE_SELECTORS
    ),
    st.sampled_from([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]),
)
PORT_ENTRIES = st.sampled_from(
    [{"port": 80}, {"port": "http"}, {"protocol": "UDP"}, {"port": 70, "endPort": 90}]
)
RULES = st.fixed_dictionaries(
    {}, optional={"from": st.lists(PEERS, max_size=2), "ports": st.lists(PORT_ENTRIES, max_size=2)}
)
WELL_FORMED = st.fixed_dictionaries(
    {"podSelector": SELECTORS},
    optional={
        "policyTypes": st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
        "ingress": st.lists(RULES, max_size=2),
        "egress": st.lists(
            RULES.map(lambda r: {("to" if k == "from" else k): v for k, v in r.items()}),
            max_size=2,
        ),
    },
)
DENY_ALL = [
    netpol("deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    for ns in ("shop", "other")
]


def covered(smaller: list[list[list[str]]], larger: list[list[list[str]]]) -> bool:
    def ports(labels: list[str]) -> PortSet:
        if labels == ["all"]:
            return ALL_PORTS
        items = []
        for label in labels:
            protocol, _, span = label.partition("/")
            low, _, high = span.partition("-")
            items.append(
                (protocol, 1, 65535) if span == "all" else (protocol, int(low), int(high or low))
            )
        return PortSet.of(items)

    return all(
        (ports(s) & ports(b)) == ports(s)
        for srow, brow in zip(smaller, larger, strict=True)
        for s, b in zip(srow, brow, strict=True)
    )


@settings(max_examples=200, deadline=None)
@given(WELL_FORMED)
def test_policies_add_up_over_a_default_deny(spec: dict[str, Any]) -> None:
    extra = netpol("extra", "shop", spec)
    assert read_policy(K8sObject.from_raw(extra)).well_formed
    base = Reachability(Inventory([K8sObject.from_raw(o) for o in [*BASELINE, *DENY_ALL]]))
    more = Reachability(Inventory([K8sObject.from_raw(o) for o in [*BASELINE, *DENY_ALL, extra]]))
    assert covered(grid(base), grid(more))
