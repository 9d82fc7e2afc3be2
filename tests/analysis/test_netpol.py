"""NetworkPolicy selection primitives: defaults, default deny, malformed policies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.analysis.netpol import (
    EGRESS,
    INGRESS,
    isolating,
    read_policy,
    rule_admits_everything,
    running_workloads_in,
)
from kubeproof.inventory import Inventory, K8sObject
from kubeproof.inventory.selectors import label_selector_problem


def policy(spec: Any, namespace: str = "shop") -> K8sObject:
    raw = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
    }
    if spec is not None:
        raw["spec"] = spec
    return K8sObject.from_raw(raw)


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({"podSelector": {}}, {INGRESS}),
        ({"podSelector": {}, "policyTypes": []}, {INGRESS}),
        ({"podSelector": {}, "egress": []}, {INGRESS}),
        ({"podSelector": {}, "egress": [{}]}, {INGRESS, EGRESS}),
        ({"podSelector": {}, "ingress": [{}], "egress": [{"to": []}]}, {INGRESS, EGRESS}),
        ({"podSelector": {}, "policyTypes": ["Egress"]}, {EGRESS}),
        ({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]}, {EGRESS}),
    ],
)
def test_policy_types_default_as_the_api_server_defaults_them(
    spec: dict[str, Any], types: set[str]
) -> None:
    assert read_policy(policy(spec)).policy_types == types


def test_missing_spec_and_pod_selector_select_every_pod() -> None:
    # The API server decodes a missing podSelector as the empty selector.
    for spec in (None, {}):
        read = read_policy(policy(spec))
        assert read.well_formed and read.selects_all_pods()
        assert read.denies_by_default(INGRESS) and not read.denies_by_default(EGRESS)


def test_empty_pod_selector_selects_every_pod_of_its_namespace_only() -> None:
    read = read_policy(policy({"podSelector": {}}))
    assert read.selects("shop", {}) and read.selects("shop", {"app": "x"})
    assert not read.selects("other", {"app": "x"})


def test_default_deny_needs_every_pod_the_type_and_no_rules() -> None:
    assert read_policy(
        policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    ).denies_by_default(EGRESS)
    assert not read_policy(policy({"podSelector": {"matchLabels": {"a": "b"}}})).denies_by_default(
        INGRESS
    )
    assert not read_policy(
        policy({"podSelector": {}, "ingress": [{"from": []}]})
    ).denies_by_default(INGRESS)


def test_isolation_by_labels_and_direction() -> None:
    web = read_policy(
        policy({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]})
    )
    assert isolating([web], "shop", {"app": "web"}, EGRESS) == [web]
    assert isolating([web], "shop", {"app": "web"}, INGRESS) == []
    assert isolating([web], "shop", {"app": "api"}, EGRESS) == []


@pytest.mark.parametrize(
    ("rule", "direction", "open_"),
    [
        ({}, INGRESS, True),
        ({"from": [], "ports": []}, INGRESS, True),
        ({"ports": [{"port": 80}]}, INGRESS, False),
        ({"from": [{"podSelector": {}}]}, INGRESS, False),
        ({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, EGRESS, False),
        ({"from": [{"podSelector": {}}]}, EGRESS, True),  # `from` means nothing to egress
    ],
)
def test_rule_admitting_everything(rule: dict[str, Any], direction: str, open_: bool) -> None:
    assert rule_admits_everything(rule, direction) is open_


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("deny", "spec is not a mapping"),
        ({"podSelector": []}, "spec.podSelector is not a mapping"),
        ({"podSelector": {"matchLabels": ["a"]}}, "spec.podSelector.matchLabels is not a mapping"),
        ({"podSelector": {"matchLabels": {"a": 1}}}, "not a string"),
        ({"podSelector": {"matchExpressions": "a"}}, "matchExpressions is not a list"),
        ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "without values"),
        (
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            },
            "with values",
        ),
        ({"podSelector": {}, "policyTypes": "Ingress"}, "spec.policyTypes is not a list"),
        ({"podSelector": {}, "policyTypes": ["ingress"]}, "may only hold"),
        ({"podSelector": {}, "ingress": {}}, "spec.ingress is not a list"),
        ({"podSelector": {}, "egress": ["x"]}, "spec.egress[0] is not a mapping"),
        ({"podSelector": {}, "ingress": [{"ports": {"port": 80}}]}, "ports is not a list"),
        ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": "0.0.0.0/0"}]}]}, "has no cidr"),
        (
            {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": "all"}]}]},
            "namespaceSelector is not a mapping",
        ),
    ],
)
def test_malformed_policies_isolate_nothing(spec: Any, problem: str) -> None:
    read = read_policy(policy(spec))
    assert read.problem is not None and problem in read.problem
    assert read.policy_types == frozenset()
    assert not read.selects("shop", {})
    assert not read.selects_all_pods()
    assert not any(read.denies_by_default(d) for d in (INGRESS, EGRESS))


def test_label_selector_problem_accepts_well_formed_selectors() -> None:
    assert label_selector_problem(None, "s") is None
    assert label_selector_problem({}, "s") is None
    assert label_selector_problem({"matchLabels": None, "matchExpressions": None}, "s") is None
    assert (
        label_selector_problem(
            {
                "matchLabels": {"a": "b"},
                "matchExpressions": [
                    {"key": "a", "operator": "NotIn", "values": ["c"]},
                    {"key": "d", "operator": "DoesNotExist"},
                ],
            },
            "s",
        )
        is None
    )


def test_running_workloads_follow_inventory_changes_and_skip_templates() -> None:
    def obj(kind: str, name: str, namespace: str) -> K8sObject:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        }
        spec = {"containers": [{"name": "c", "image": "i"}]}
        if kind == "Pod":
            body["spec"] = spec
        else:
            body["template"] = {"spec": spec}
        return K8sObject.from_raw(body)

    inventory = Inventory([obj("Pod", "a", "shop"), obj("PodTemplate", "t", "shop")])
    assert [w.obj.name for w in running_workloads_in(inventory, "shop")] == ["a"]
    inventory.add(obj("Pod", "b", "shop"))
    assert [w.obj.name for w in running_workloads_in(inventory, "shop")] == ["a", "b"]
    assert running_workloads_in(inventory, "other") == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "podSelector",
                    "matchLabels",
                    "matchExpressions",
                    "key",
                    "operator",
                    "values",
                    "policyTypes",
                    "ingress",
                    "egress",
                    "from",
                    "to",
                    "ports",
                    "ipBlock",
                    "cidr",
                    "namespaceSelector",
                    "In",
                    "Ingress",
                    "Egress",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_spec_is_read_without_crashing(spec: Any) -> None:
    read = read_policy(policy(spec))
    for direction in (INGRESS, EGRESS):
        read.denies_by_default(direction)
        read.isolates("shop", {"app": "web"}, direction)
        read.open_rules(direction)
    if read.problem is not None:
        assert read.policy_types == frozenset()
