"""network.* checks: NetworkPolicy coverage of namespaces and workloads."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import failing, per_subject, run, statuses
from kubeproof.checks import find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage, Inventory, K8sObject


def deployment(
    name: str = "web",
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1"}]}
    if host_network:
        pod_spec["hostNetwork"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": labels or {"app": name}}, "spec": pod_spec}},
    }


def policy(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


DENY_INGRESS = policy("deny-ingress", policyTypes=["Ingress"])
DENY_EGRESS = policy("deny-egress", policyTypes=["Egress"])
DENY_BOTH = policy("deny-all", policyTypes=["Ingress", "Egress"])
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


def namespace_result(check_id: str, *objects: dict[str, Any]) -> list[str]:
    return [r.status.value for r in run(check_id, *objects) if r.subject.name == "shop"]


# --- namespace-without-network-policy --------------------------------------------------


def test_namespace_with_a_policy_passes() -> None:
    results = namespace_result(
        "network.namespace-without-network-policy",
        deployment(),
        policy("allow-web", podSelector={}),
    )
    assert results == ["pass"]


def test_namespace_without_policy_fails_and_says_which() -> None:
    results = run("network.namespace-without-network-policy", NAMESPACE, deployment())
    [result] = results
    assert result.status.value == "fail"
    assert result.subject.kind == "Namespace" and result.subject.name == "shop"
    assert "namespace shop has no NetworkPolicy" in result.message


def test_a_policy_in_another_namespace_does_not_count() -> None:
    results = namespace_result(
        "network.namespace-without-network-policy",
        deployment(),
        policy("elsewhere", namespace="other"),
    )
    assert results == ["fail"]


def test_only_malformed_policies_do_not_count() -> None:
    broken = policy("broken", podSelector="app=web")
    [result] = run("network.namespace-without-network-policy", deployment(), broken)
    assert result.status.value == "fail"
    assert "broken (spec.podSelector is not a mapping)" in result.message


def test_system_namespaces_are_judged() -> None:
    dns = deployment("coredns", namespace="kube-system")
    assert statuses(run("network.namespace-without-network-policy", dns)) == ["fail"]


def test_namespace_without_workloads_is_not_judged_when_pods_were_read() -> None:
    assert run("network.namespace-without-network-policy", NAMESPACE) == []
    assert (
        run(
            "network.namespace-default-deny-ingress",
            NAMESPACE,
            policy("allow", podSelector={"matchLabels": {"app": "x"}}),
        )
        == []
    )


def test_namespace_without_visible_workloads_is_judged_when_pods_were_not_read() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("NetworkPolicy", "listed")
    coverage.record("Pod", "forbidden", "403")
    inventory = Inventory([K8sObject.from_raw(NAMESPACE)], coverage)
    check = find("network.namespace-without-network-policy")
    assert check is not None
    results = per_subject(evaluate(inventory, [check], Context(inventory)))
    assert [r.status.value for r in results] == ["fail"]


def test_unread_network_policies_are_not_evaluated() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("NetworkPolicy", "forbidden", "403")
    inventory = Inventory([K8sObject.from_raw(deployment())], coverage)
    check = find("network.namespace-without-network-policy")
    assert check is not None
    [result] = per_subject(evaluate(inventory, [check], Context(inventory)))
    assert result.status.value == "not_evaluated"
    assert "NetworkPolicy forbidden" in (result.reason or "")


# --- default deny ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deny",
    [
        DENY_INGRESS,
        DENY_BOTH,
        policy("implicit", podSelector={}),  # no policyTypes: Ingress
        policy("empty-list", podSelector={"matchLabels": {}}, ingress=[]),
    ],
)
def test_default_deny_ingress_passes(deny: dict[str, Any]) -> None:
    assert namespace_result("network.namespace-default-deny-ingress", deployment(), deny) == [
        "pass"
    ]


@pytest.mark.parametrize(
    "not_deny",
    [
        DENY_EGRESS,
        policy(
            "selects-some", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"]
        ),
        policy("allow-list", policyTypes=["Ingress"], ingress=[{"from": [{"podSelector": {}}]}]),
        policy("wrong-types", policyTypes="Ingress"),
    ],
)
def test_no_default_deny_ingress_fails(not_deny: dict[str, Any]) -> None:
    assert namespace_result("network.namespace-default-deny-ingress", deployment(), not_deny) == [
        "fail"
    ]


def test_allow_list_over_every_pod_is_named_in_the_message() -> None:
    allow = policy("allow-same-namespace", ingress=[{"from": [{"podSelector": {}}]}])
    [result] = failing(run("network.namespace-default-deny-ingress", deployment(), allow))
    assert "allow-same-namespace select every pod but carry ingress rules" in result.message


@pytest.mark.parametrize("deny", [DENY_EGRESS, DENY_BOTH])
def test_default_deny_egress_passes(deny: dict[str, Any]) -> None:
    assert namespace_result("network.namespace-default-deny-egress", deployment(), deny) == ["pass"]


@pytest.mark.parametrize(
    "not_deny",
    [
        DENY_INGRESS,
        policy("implicit", podSelector={}),  # no policyTypes and no egress rules: Ingress only
        policy("egress-allow", egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]),
    ],
)
def test_no_default_deny_egress_fails(not_deny: dict[str, Any]) -> None:
    assert namespace_result("network.namespace-default-deny-egress", deployment(), not_deny) == [
        "fail"
    ]


# --- workload isolation ------------------------------------------------------------------


def workload_statuses(check_id: str, *objects: dict[str, Any]) -> list[str]:
    return [r.status.value for r in run(check_id, *objects) if r.subject.kind == "Deployment"]


@pytest.mark.parametrize(
    "isolating",
    [
        DENY_INGRESS,
        policy(
            "by-label",
            podSelector={"matchLabels": {"app": "web"}},
            ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "lb"}}}]}],
        ),
        policy(
            "by-expression",
            podSelector={
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]
            },
        ),
    ],
)
def test_workload_isolated_for_ingress_passes(isolating: dict[str, Any]) -> None:
    assert workload_statuses("network.workload-ingress-not-isolated", deployment(), isolating) == [
        "pass"
    ]


@pytest.mark.parametrize(
    "not_isolating",
    [
        policy("other-app", podSelector={"matchLabels": {"app": "api"}}),
        policy("egress-only", policyTypes=["Egress"]),
        policy("other-namespace", namespace="other"),
        policy("bad-selector", podSelector={"matchLabels": "app"}),
    ],
)
def test_workload_not_isolated_for_ingress_fails(not_isolating: dict[str, Any]) -> None:
    results = failing(run("network.workload-ingress-not-isolated", deployment(), not_isolating))
    [result] = [r for r in results if r.subject.kind == "Deployment"]
    assert "no NetworkPolicy in namespace shop selects its pods for Ingress" in result.message
    assert result.path == "spec.template.spec"


def test_policy_admitting_everything_does_not_isolate() -> None:
    open_policy = policy("allow-all", podSelector={"matchLabels": {"app": "web"}}, ingress=[{}])
    [result] = failing(run("network.workload-ingress-not-isolated", deployment(), open_policy))
    assert "allow-all spec.ingress[0] has no from and no ports" in result.message


def test_rule_with_ports_only_is_left_to_reachability_analysis() -> None:
    web = policy(
        "https", podSelector={"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": 443}]}]
    )
    assert workload_statuses("network.workload-ingress-not-isolated", deployment(), web) == ["pass"]


def test_host_network_pods_are_not_isolated() -> None:
    results = failing(
        run("network.workload-ingress-not-isolated", deployment(host_network=True), DENY_BOTH)
    )
    [result] = results
    assert "hostNetwork is true" in result.message
    assert result.path == "spec.template.spec.hostNetwork"


def test_pod_templates_are_not_judged() -> None:
    template = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "t", "namespace": "shop"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
    }
    assert run("network.workload-ingress-not-isolated", template) == []


def test_bare_pods_are_matched_on_their_own_labels() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    selective = policy("web", podSelector={"matchLabels": {"app": "web"}})
    assert statuses(run("network.workload-ingress-not-isolated", pod, selective)) == ["pass"]
    pod["metadata"]["labels"] = {"app": "api"}
    assert statuses(run("network.workload-ingress-not-isolated", pod, selective)) == ["fail"]


@pytest.mark.parametrize(
    "restricting",
    [
        DENY_EGRESS,
        policy(
            "implied",
            podSelector={"matchLabels": {"app": "web"}},
            egress=[
                {"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}
            ],
        ),
    ],
)
def test_workload_egress_restricted_passes(restricting: dict[str, Any]) -> None:
    assert workload_statuses("network.workload-egress-unrestricted", deployment(), restricting) == [
        "pass"
    ]


@pytest.mark.parametrize(
    "not_restricting",
    [
        DENY_INGRESS,
        policy("implicit", podSelector={}),
        policy("empty-egress-rule", policyTypes=["Egress"], egress=[{}]),
    ],
)
def test_workload_egress_unrestricted_fails(not_restricting: dict[str, Any]) -> None:
    assert workload_statuses(
        "network.workload-egress-unrestricted", deployment(), not_restricting
    ) == ["fail"]


# --- policy-selects-no-workload ----------------------------------------------------------


def policy_statuses(*objects: dict[str, Any]) -> list[str]:
    return statuses(run("network.policy-selects-no-workload", *objects))


def test_policy_selecting_a_workload_passes() -> None:
    assert policy_statuses(
        deployment(), policy("web", podSelector={"matchLabels": {"app": "web"}})
    ) == ["pass"]


def test_policy_selecting_nothing_fails() -> None:
    [result] = run(
        "network.policy-selects-no-workload",
        deployment(),
        policy("old", podSelector={"matchLabels": {"app": "legacy"}}),
    )
    assert result.status.value == "fail"
    assert result.path == "spec.podSelector"
    assert "matches no workload in namespace shop" in result.message


def test_policy_does_not_select_workloads_of_other_namespaces() -> None:
    assert policy_statuses(
        deployment(namespace="other"), policy("web", podSelector={"matchLabels": {"app": "web"}})
    ) == ["fail"]


def test_namespace_wide_policy_is_not_judged_even_in_an_empty_namespace() -> None:
    assert policy_statuses(DENY_BOTH) == []


def test_malformed_policy_fails() -> None:
    [result] = run(
        "network.policy-selects-no-workload",
        deployment(),
        policy("bad", podSelector={"matchExpressions": [{"key": "app"}]}),
    )
    assert result.status.value == "fail"
    assert "unknown operator" in result.message


@pytest.mark.parametrize(
    "hostile",
    [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "x", "namespace": "shop"},
            "spec": "nonsense",
        },
        policy("x", ingress="all"),
        policy("x", egress=[["to"]], policyTypes=["Egress"]),
        policy("x", ingress=[{"from": {"podSelector": {}}}]),
        policy("x", policyTypes=[1]),
    ],
)
def test_hostile_policies_never_isolate_and_never_crash(hostile: dict[str, Any]) -> None:
    for check_id in (
        "network.workload-ingress-not-isolated",
        "network.workload-egress-unrestricted",
    ):
        assert workload_statuses(check_id, deployment(), hostile) == ["fail"]
    assert namespace_result("network.namespace-default-deny-ingress", deployment(), hostile) == [
        "fail"
    ]
    assert policy_statuses(hostile) == ["fail"]
