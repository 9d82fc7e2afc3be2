"""NetworkPolicy truth table: hand-written reachability grids for classic policies.

The model is the one of the upstream network-policy e2e tests (test/e2e/network/netpol)
and of cyclonus: namespaces x, y, z (labelled ns=<name>), each with pods a, b, c (labelled
pod=<name>), every pod serving 80 and 81 on TCP and UDP and 80 on SCTP, with named ports
serve-<port>-<protocol>. Each grid is written by hand from the semantics in the Kubernetes
documentation, never computed by the code under test: rows are sources, columns
destinations, both in the order x/a x/b x/c y/a y/b y/c z/a z/b z/c; `.` is allowed and
`X` denied.

Two differences from the upstream model, both deliberate (see docs/netpol.md): each pod
here stands for a workload, so the diagonal (a workload to itself, that is to another pod
of it) is governed by policy rather than always allowed as loopback; and ipBlock peers
never match pods, so `external_in` (from outside to each pod) and `external_out` (from each
pod to outside) carry what ipBlocks decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kubeproof.analysis.reachability import PortSet, Reachability
from kubeproof.inventory import Inventory, K8sObject

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
ORDER = [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]
SERVED = [(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP"), (80, "SCTP")]


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"ns": name}},
    }


def pod(ns: str, name: str) -> dict[str, Any]:
    ports = [
        {"name": f"serve-{port}-{protocol.lower()}", "containerPort": port, "protocol": protocol}
        for port, protocol in SERVED
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
        "spec": {"containers": [{"name": "server", "image": "agnhost", "ports": ports}]},
    }


def netpol(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


POD_A = {"matchLabels": {"pod": "a"}}
POD_B = {"matchLabels": {"pod": "b"}}
POD_C = {"matchLabels": {"pod": "c"}}
NS_Y = {"matchLabels": {"ns": "y"}}
NS_Z = {"matchLabels": {"ns": "z"}}
EVERY_NS: dict[str, Any] = {}


@dataclass
class Case:
    name: str
    policies: list[dict[str, Any]]
    probe: tuple[str, int]
    grid: list[str]
    external_in: str | None = None  # outside -> each pod, in ORDER
    external_out: str | None = None  # each pod -> outside, in ORDER
    extra: dict[str, Any] = field(default_factory=dict)


ALL_OPEN = ["........."] * 9

CASES = [
    Case("no policies", [], ("TCP", 80), ALL_OPEN, ".........", "........."),
    Case(
        "default deny ingress in x",
        [netpol("x", "deny", podSelector={}, policyTypes=["Ingress"])],
        ("TCP", 80),
        ["XXX......"] * 9,
        "XXX......",
        ".........",
    ),
    Case(
        "deny all ingress to x/a only",
        [netpol("x", "deny-a", podSelector=POD_A)],
        ("TCP", 80),
        ["X........"] * 9,
    ),
    Case(
        "allow from the same namespace (podSelector {})",
        [netpol("x", "same-ns", podSelector={}, ingress=[{"from": [{"podSelector": {}}]}])],
        ("TCP", 80),
        ["........."] * 3 + ["XXX......"] * 6,
        "XXX......",
    ),
    Case(
        "allow x/a from namespace y by namespaceSelector",
        [
            netpol(
                "x", "from-y", podSelector=POD_A, ingress=[{"from": [{"namespaceSelector": NS_Y}]}]
            )
        ],
        ("TCP", 80),
        ["X........"] * 3 + ["........."] * 3 + ["X........"] * 3,
    ),
    Case(
        "namespaceSelector AND podSelector in one peer: only y/b",
        [
            netpol(
                "x",
                "and",
                podSelector=POD_A,
                ingress=[{"from": [{"namespaceSelector": NS_Y, "podSelector": POD_B}]}],
            )
        ],
        ("TCP", 80),
        ["X........"] * 4 + ["........."] + ["X........"] * 4,
    ),
    Case(
        "namespaceSelector OR podSelector as two peers: all of y, and x/b",
        [
            netpol(
                "x",
                "or",
                podSelector=POD_A,
                ingress=[{"from": [{"namespaceSelector": NS_Y}, {"podSelector": POD_B}]}],
            )
        ],
        ("TCP", 80),
        ["X........", ".........", "X........"] + ["........."] * 3 + ["X........"] * 3,
    ),
    Case(
        "empty namespaceSelector with podSelector: pods c of every namespace",
        [
            netpol(
                "x",
                "every-ns-c",
                podSelector=POD_A,
                ingress=[{"from": [{"namespaceSelector": EVERY_NS, "podSelector": POD_C}]}],
            )
        ],
        ("TCP", 80),
        ["X........", "X........", "........."] * 3,
    ),
    Case(
        "empty namespaceSelector alone: every pod of every namespace, but not outside",
        [
            netpol(
                "x", "every-ns", podSelector=POD_A, ingress=[{"from": [{"namespaceSelector": {}}]}]
            )
        ],
        ("TCP", 80),
        ALL_OPEN,
        "X........",
    ),
    Case(
        "missing namespaceSelector means the policy's namespace",
        [netpol("x", "same-ns-c", podSelector=POD_A, ingress=[{"from": [{"podSelector": POD_C}]}])],
        ("TCP", 80),
        ["X........", "X........", "........."] + ["X........"] * 6,
    ),
    Case(
        "egress deny in x with DNS allowed: TCP 80 is denied",
        [
            netpol(
                "x",
                "dns-only",
                podSelector={},
                policyTypes=["Egress"],
                egress=[{"ports": [{"protocol": "UDP", "port": 53}]}],
            )
        ],
        ("TCP", 80),
        ["XXXXXXXXX"] * 3 + ["........."] * 6,
        ".........",
        "XXX......",
    ),
    Case(
        "egress deny in x with DNS allowed: UDP 53 is allowed everywhere",
        [
            netpol(
                "x",
                "dns-only",
                podSelector={},
                policyTypes=["Egress"],
                egress=[{"ports": [{"protocol": "UDP", "port": 53}]}],
            )
        ],
        ("UDP", 53),
        ALL_OPEN,
        ".........",
        ".........",
    ),
    Case(
        "named port: serve-81-tcp admits TCP 81",
        [
            netpol(
                "x",
                "named",
                podSelector=POD_A,
                ingress=[
                    {"from": [{"namespaceSelector": {}}], "ports": [{"port": "serve-81-tcp"}]}
                ],
            )
        ],
        ("TCP", 81),
        ALL_OPEN,
    ),
    Case(
        "named port: serve-81-tcp does not admit TCP 80",
        [
            netpol(
                "x",
                "named",
                podSelector=POD_A,
                ingress=[
                    {"from": [{"namespaceSelector": {}}], "ports": [{"port": "serve-81-tcp"}]}
                ],
            )
        ],
        ("TCP", 80),
        ["X........"] * 9,
    ),
    Case(
        "named port with the wrong protocol resolves to nothing",
        [
            netpol(
                "x",
                "named-udp-as-tcp",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": "serve-81-udp"}],
                    }
                ],
            )
        ],
        ("UDP", 81),
        ["X........"] * 9,
    ),
    Case(
        "endPort range 80-81 admits TCP 81",
        [
            netpol(
                "x",
                "range",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": 80, "endPort": 81}],
                    }
                ],
            )
        ],
        ("TCP", 81),
        ALL_OPEN,
    ),
    Case(
        "endPort range on TCP does not admit UDP 81",
        [
            netpol(
                "x",
                "range",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": 80, "endPort": 81}],
                    }
                ],
            )
        ],
        ("UDP", 81),
        ["X........"] * 9,
    ),
    Case(
        "a port without protocol is TCP: UDP 80 denied",
        [
            netpol(
                "x",
                "tcp-default",
                podSelector=POD_A,
                ingress=[{"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]}],
            )
        ],
        ("UDP", 80),
        ["X........"] * 9,
    ),
    Case(
        "SCTP port admits SCTP 80",
        [
            netpol(
                "x",
                "sctp",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "SCTP", "port": 80}],
                    }
                ],
            )
        ],
        ("SCTP", 80),
        ALL_OPEN,
    ),
    Case(
        "ipBlock with except: outside admitted, pods not",
        [
            netpol(
                "x",
                "ipblock",
                podSelector=POD_A,
                ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
            )
        ],
        ("TCP", 80),
        ["X........"] * 9,
        ".........",
    ),
    Case(
        "egress to an ipBlock only: x reaches outside, no pod",
        [
            netpol(
                "x",
                "egress-out",
                podSelector={},
                policyTypes=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
            )
        ],
        ("TCP", 80),
        ["XXXXXXXXX"] * 3 + ["........."] * 6,
        ".........",
        ".........",
    ),
    Case(
        "policyTypes Egress only: ingress rules are ignored, egress denied",
        [
            netpol(
                "x",
                "egress-only",
                podSelector=POD_A,
                policyTypes=["Egress"],
                ingress=[{"from": [{"podSelector": POD_B}]}],
            )
        ],
        ("TCP", 80),
        ["XXXXXXXXX"] + ["........."] * 8,
        ".........",
        "X........",
    ),
    Case(
        "missing policyTypes with egress rules: Ingress and Egress both apply",
        [netpol("x", "implied", podSelector=POD_A, egress=[{"to": [{"podSelector": POD_B}]}])],
        ("TCP", 80),
        ["X.XXXXXXX"] + ["X........"] * 8,
        "X........",
        "X........",
    ),
    Case(
        "multiple policies add up: x/b, and all of z",
        [
            netpol("x", "from-b", podSelector=POD_A, ingress=[{"from": [{"podSelector": POD_B}]}]),
            netpol(
                "x", "from-z", podSelector=POD_A, ingress=[{"from": [{"namespaceSelector": NS_Z}]}]
            ),
        ],
        ("TCP", 80),
        ["X........", ".........", "X........"] + ["X........"] * 3 + ["........."] * 3,
    ),
    Case(
        "egress of the source and ingress of the destination must both allow",
        [
            netpol(
                "x",
                "egress-to-y",
                podSelector={},
                policyTypes=["Egress"],
                egress=[{"to": [{"namespaceSelector": NS_Y}]}],
            ),
            netpol("y", "deny-a", podSelector=POD_A, policyTypes=["Ingress"]),
        ],
        ("TCP", 80),
        ["XXXX..XXX"] * 3 + ["...X....."] * 6,
    ),
    Case(
        "egress peer with namespaceSelector AND podSelector: x/a reaches y/c only",
        [
            netpol(
                "x",
                "egress-and",
                podSelector=POD_A,
                policyTypes=["Egress"],
                egress=[{"to": [{"namespaceSelector": NS_Y, "podSelector": POD_C}]}],
            )
        ],
        ("TCP", 80),
        ["XXXXX.XXX"] + ["........."] * 8,
    ),
    Case(
        "namespaceSelector NotIn y: x and z admitted",
        [
            netpol(
                "x",
                "not-y",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {"key": "ns", "operator": "NotIn", "values": ["y"]}
                                    ]
                                }
                            }
                        ]
                    }
                ],
            )
        ],
        ("TCP", 80),
        ["........."] * 3 + ["X........"] * 3 + ["........."] * 3,
    ),
    Case(
        "automatic kubernetes.io/metadata.name label selects namespace z",
        [
            netpol(
                "x",
                "by-name",
                podSelector=POD_A,
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "z"}
                                }
                            }
                        ]
                    }
                ],
            )
        ],
        ("TCP", 80),
        ["X........"] * 6 + ["........."] * 3,
    ),
    Case(
        "default deny ingress and egress in x",
        [netpol("x", "deny-all", podSelector={}, policyTypes=["Ingress", "Egress"])],
        ("TCP", 80),
        ["XXXXXXXXX"] * 3 + ["XXX......"] * 6,
        "XXX......",
        "XXX......",
    ),
]


def analysis_of(case: Case) -> tuple[Reachability, dict[str, Any]]:
    objects = [namespace(ns) for ns in NAMESPACES]
    objects += [pod(ns, name) for ns in NAMESPACES for name in PODS]
    objects += case.policies
    inventory = Inventory([K8sObject.from_raw(o) for o in objects])
    analysis = Reachability(inventory)
    by_name = {f"{e.namespace}/{e.workload.obj.name}": e for e in analysis.endpoints}
    return analysis, by_name


def observed_grid(case: Case) -> tuple[list[str], str, str]:
    analysis, by_name = analysis_of(case)
    protocol, port = case.probe

    def mark(ports: PortSet) -> str:
        return "." if ports.contains(protocol, port) else "X"

    grid = [
        "".join(mark(analysis.allowed_ports(by_name[s], by_name[d])) for d in ORDER) for s in ORDER
    ]
    external_in = "".join(mark(analysis.allowed_ports(None, by_name[d])) for d in ORDER)
    external_out = "".join(mark(analysis.allowed_ports(by_name[s], None)) for s in ORDER)
    return grid, external_in, external_out


def test_there_are_enough_cases_and_every_grid_is_nine_by_nine() -> None:
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)
    for case in CASES:
        assert len(case.grid) == 9 and all(len(r) == 9 and set(r) <= {".", "X"} for r in case.grid)
        for line in (case.external_in, case.external_out):
            assert line is None or (len(line) == 9 and set(line) <= {".", "X"})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reachability_reproduces_the_hand_written_grid(case: Case) -> None:
    grid, external_in, external_out = observed_grid(case)
    expected = "\n".join(f"{s:>4} {r}" for s, r in zip(ORDER, case.grid, strict=True))
    observed = "\n".join(f"{s:>4} {r}" for s, r in zip(ORDER, grid, strict=True))
    assert observed == expected
    if case.external_in is not None:
        assert external_in == case.external_in
    if case.external_out is not None:
        assert external_out == case.external_out
