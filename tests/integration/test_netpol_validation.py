"""NetworkPolicy semantics against a real API server: kubeproof refuses exactly the policies
the server refuses (a refused policy isolates nothing), and `kubeproof netpol matrix
--cluster` reads what the server stores, automatic namespace labels included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from controlplane import ControlPlane
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeproof.analysis.netpol import read_policy
from kubeproof.cli.main import main
from kubeproof.inventory import K8sObject

pytestmark = pytest.mark.integration

NAMESPACE = "kp-netpol"
POLICIES = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies"

# Each spec is sent with dryRun: the server's verdict is compared with kubeproof's.
SPECS: list[Any] = [
    {"podSelector": {}},
    {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 65536}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "80"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "Http"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "a--b"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "sixteen-chars-xx"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 9}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 90}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"endPort": 90}]}]},
    {"podSelector": {}, "ingress": [{"from": [{}]}]},
    {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]},
    {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
    {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]},
    {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
    },
    {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}],
    },
    {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}],
    },
    {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "::/0", "except": ["fd00::/8"]}}]}],
    },
    {
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
    },
    {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}},
    {"podSelector": {}, "policyTypes": ["ingress"]},
    {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.1.2.3/8"}}]}]},
    {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "010.0.0.0/8"}}]}]},
    {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/255.0.0.0"}}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": "1-2"}]}]},
    {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 65536}]}]},
    {"podSelector": {}, "egress": [{"to": [{"podSelector": {}, "namespaceSelector": {}}]}]},
]


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    control_plane.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    return NAMESPACE


@pytest.mark.parametrize("spec", SPECS, ids=[json.dumps(s)[:80] for s in SPECS])
def test_kubeproof_refuses_exactly_what_the_api_server_refuses(
    control_plane: ControlPlane, namespace: str, spec: Any
) -> None:
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": spec,
    }
    response = control_plane.request("POST", f"{POLICIES}?dryRun=All", body)
    assert response.status in (201, 400, 422), response.body[:300]
    problem = read_policy(K8sObject.from_raw(body)).problem
    detail = response.body[:400].decode(errors="replace")
    assert (response.status == 201) == (problem is None), f"kubeproof: {problem}; server: {detail}"


def test_matrix_from_the_cluster_uses_automatic_namespace_labels(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client_ns = "kp-netpol-clients"
    control_plane.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": client_ns}},
    )
    for ns, name, port in ((namespace, "server", 8080), (client_ns, "client", 9000)):
        control_plane.create(
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "registry.example.com/app:1",
                                    "ports": [{"name": "http", "containerPort": port}],
                                }
                            ]
                        },
                    },
                },
            },
        )
    # The server gives every namespace kubernetes.io/metadata.name; no manifest set it here.
    control_plane.create(
        POLICIES,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "from-clients", "namespace": namespace},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": client_ns}
                                }
                            }
                        ],
                        "ports": [{"port": "http"}],
                    }
                ],
            },
        },
    )
    code = main(
        [
            "netpol",
            "matrix",
            "--cluster",
            "--kubeconfig",
            str(control_plane.admin_kubeconfig),
            "-o",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    cells = {
        (row["source"], cell["destination"]): cell["ports"]
        for row in document["matrix"]
        for cell in row["destinations"]
    }
    server = f"Deployment/{namespace}/server"
    client = f"Deployment/{client_ns}/client"
    assert cells[(client, server)] == ["TCP/8080"]
    assert cells[(server, client)] == ["all"]
    assert cells[("external", server)] == []
    assert document["incomplete"] is None
    assert document["namespaces_without_object"] == []


PORT_VALUES = (
    st.none()
    | st.integers(min_value=-1, max_value=70000)
    | st.sampled_from([0, 1, 80, 65535, 65536, True])
    | st.text(alphabet="abzAZ09-", max_size=17)
)
PORT_ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "protocol": st.sampled_from(["TCP", "UDP", "SCTP", "tcp", "ICMP"]),
        "port": PORT_VALUES,
        "endPort": PORT_VALUES,
    },
)
CIDRS = st.builds(
    lambda address, prefix: f"{address}/{prefix}",
    st.ip_addresses(v=4) | st.sampled_from(["10.0.0.0", "0.0.0.0", "10.1.0.0"]),
    st.integers(min_value=0, max_value=33),
)
IP_BLOCKS = st.fixed_dictionaries(
    {"cidr": CIDRS | st.sampled_from(["10.0.0.0/8", "0.0.0.0/0", "::/0"])},
    optional={"except": st.lists(CIDRS | st.sampled_from(["10.1.0.0/16", "fd00::/8"]), max_size=2)},
)


def dry_run_agrees(control_plane: ControlPlane, namespace: str, rule: dict[str, Any]) -> None:
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"podSelector": {}, "ingress": [rule]},
    }
    response = control_plane.request("POST", f"{POLICIES}?dryRun=All", body)
    assert response.status in (201, 400, 422), response.body[:300]
    problem = read_policy(K8sObject.from_raw(body)).problem
    detail = response.body[:400].decode(errors="replace")
    assert (response.status == 201) == (problem is None), f"kubeproof: {problem}; server: {detail}"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(PORT_ENTRIES)
def test_random_ports_are_refused_exactly_as_the_server_refuses_them(
    control_plane: ControlPlane, namespace: str, port: dict[str, Any]
) -> None:
    dry_run_agrees(control_plane, namespace, {"ports": [port]})


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(IP_BLOCKS)
def test_random_ip_blocks_are_refused_exactly_as_the_server_refuses_them(
    control_plane: ControlPlane, namespace: str, block: dict[str, Any]
) -> None:
    dry_run_agrees(control_plane, namespace, {"from": [{"ipBlock": block}]})
