"""network.* checks on what isolating policies let through: any namespace, the internet."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import run, statuses

ANY_NAMESPACE = "network.workload-reachable-from-any-namespace"
INTERNET = "network.workload-reachable-from-internet"
EGRESS_INTERNET = "network.workload-egress-to-internet"


def deployment(name: str = "web", host_network: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "app", "image": "app:1", "ports": [{"name": "http", "containerPort": 8080}]}
        ]
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def policy(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {"matchLabels": {"app": "web"}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def ingress(*rules: dict[str, Any]) -> dict[str, Any]:
    return policy(policyTypes=["Ingress"], ingress=list(rules))


def egress(*rules: dict[str, Any]) -> dict[str, Any]:
    return policy(policyTypes=["Egress"], egress=list(rules))


HTTP = [{"port": 8080}]
INTERNET_BLOCK = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}


def verdicts(check_id: str, *objects: dict[str, Any]) -> list[str]:
    return statuses(run(check_id, *objects))


# --- any namespace -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"namespaceSelector": {}}], "ports": HTTP},
        {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prom"}}}]},
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "NotIn",
                                "values": ["sandbox"],
                            }
                        ]
                    }
                }
            ]
        },
        {"ports": HTTP},  # no from: every source, on 8080
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]},
    ],
)
def test_rules_admitting_any_namespace_fail(rule: dict[str, Any]) -> None:
    results = run(ANY_NAMESPACE, deployment(), ingress(rule))
    assert statuses(results) == ["fail"]
    assert "NetworkPolicy web spec.ingress[0]" in results[0].message
    assert "any namespace" in results[0].message or "every source" in results[0].message


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"podSelector": {}}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}]},
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
        # A named port the workload does not declare admits nothing.
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics"}]},
    ],
)
def test_rules_naming_their_sources_pass(rule: dict[str, Any]) -> None:
    assert verdicts(ANY_NAMESPACE, deployment(), ingress(rule)) == ["pass"]


def test_workloads_the_isolation_check_reports_are_not_judged_again() -> None:
    assert verdicts(ANY_NAMESPACE, deployment()) == []
    assert verdicts(ANY_NAMESPACE, deployment(host_network=True), ingress()) == []
    assert verdicts(ANY_NAMESPACE, deployment(), ingress({})) == []  # open rule


def test_malformed_policy_isolates_nothing_so_nothing_is_judged() -> None:
    hostile = policy(ingress=[{"from": [{"namespaceSelector": {}}], "ports": [{"port": "80"}]}])
    assert verdicts(ANY_NAMESPACE, deployment(), hostile) == []


# --- internet -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        [{"from": [INTERNET_BLOCK], "ports": HTTP}],
        [{"from": [{"ipBlock": {"cidr": "::/0"}}]}],
        [{"ports": HTTP}],
        [
            {"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}], "ports": HTTP},
            {"from": [{"ipBlock": {"cidr": "128.0.0.0/1"}}], "ports": [{"port": 9090}]},
        ],
    ],
)
def test_policies_admitting_the_internet_fail(rules: list[dict[str, Any]]) -> None:
    results = run(INTERNET, deployment(), ingress(*rules))
    assert statuses(results) == ["fail"]
    assert "NetworkPolicy web spec.ingress[" in results[0].message


@pytest.mark.parametrize(
    "rules",
    [
        [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["8.0.0.0/8"]}}]}],
        [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
        [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]}],
        [{"from": [{"namespaceSelector": {}}]}],
        [{"from": [INTERNET_BLOCK], "ports": [{"port": "metrics"}]}],
    ],
)
def test_policies_admitting_part_of_the_internet_pass(rules: list[dict[str, Any]]) -> None:
    assert verdicts(INTERNET, deployment(), ingress(*rules)) == ["pass"]


# --- egress to the internet -----------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"to": [INTERNET_BLOCK]},
        {"to": [{"ipBlock": {"cidr": "::/0"}}]},
        {
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [{"protocol": "TCP"}, {"protocol": "UDP"}, {"protocol": "SCTP"}],
        },
    ],
)
def test_egress_to_the_internet_on_every_port_fails(rule: dict[str, Any]) -> None:
    results = run(EGRESS_INTERNET, deployment(), egress(rule))
    assert statuses(results) == ["fail"]
    assert "spec.egress[0] ipBlock" in results[0].message


@pytest.mark.parametrize(
    "rule",
    [
        {"to": [INTERNET_BLOCK], "ports": [{"port": 443}]},
        {"to": [{"ipBlock": {"cidr": "10.20.0.25/32"}}]},
        {"to": [{"namespaceSelector": {}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP"}]},
    ],
)
def test_egress_narrowed_by_ports_or_addresses_passes(rule: dict[str, Any]) -> None:
    assert verdicts(EGRESS_INTERNET, deployment(), egress(rule)) == ["pass"]


def test_unrestricted_egress_is_left_to_the_existing_check() -> None:
    assert verdicts(EGRESS_INTERNET, deployment()) == []
    assert verdicts(EGRESS_INTERNET, deployment(), egress({})) == []
    assert statuses(run("network.workload-egress-unrestricted", deployment(), egress({}))) == [
        "fail"
    ]
