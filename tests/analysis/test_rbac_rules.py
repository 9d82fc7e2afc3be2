"""RBAC semantics: rule matching, aggregation, role references and subjects, checked
against the behaviour of the API server's RBAC authorizer and aggregation controller."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.analysis.rbac import (
    BUILTIN_CLUSTER_ROLE_RULES,
    PolicyRule,
    RbacIndex,
    RuleOrigin,
    grants,
    grants_everything,
    grants_for_some_name,
    grants_non_resource,
    is_aggregated,
    rule_allows,
    rule_allows_non_resource,
    rule_allows_some_name,
    selector_problem,
)
from kubeproof.engine import Context
from kubeproof.inventory import Inventory, K8sObject


def rule(**fields: Any) -> PolicyRule:
    return PolicyRule.from_raw(fields)


def allows(
    r: PolicyRule,
    verb: str,
    group: str,
    resource: str,
    sub: str | None = None,
    name: str | None = None,
) -> bool:
    return rule_allows(r, verb, group, resource, sub, name)


def inventory(text: str) -> Inventory:
    return Inventory(K8sObject.from_raw(d) for d in yaml.safe_load_all(text) if d)


def cluster_role(
    name: str,
    rules: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    selectors: list[Any] | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
    }
    if rules is not None:
        role["rules"] = rules
    if selectors is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return role


def index_of(*objects: dict[str, Any]) -> RbacIndex:
    return RbacIndex(Inventory(K8sObject.from_raw(o) for o in objects))


def contents(rules: tuple[PolicyRule, ...]) -> list[tuple[str, ...]]:
    """Rules by their resources (or URLs), which the tests make distinct."""
    return [r.resources or r.non_resource_urls for r in rules]


# -- verbs and API groups -------------------------------------------------------------


class TestVerbs:
    def test_exact_verb(self) -> None:
        r = rule(verbs=["get", "list"], apiGroups=[""], resources=["pods"])
        assert allows(r, "get", "", "pods")
        assert allows(r, "list", "", "pods")
        assert not allows(r, "watch", "", "pods")

    def test_wildcard_verb_matches_every_verb_even_unusual_ones(self) -> None:
        r = rule(verbs=["*"], apiGroups=[""], resources=["pods"])
        for verb in ("get", "create", "escalate", "impersonate:user-info", "approve"):
            assert allows(r, verb, "", "pods")

    def test_verbs_are_case_sensitive(self) -> None:
        r = rule(verbs=["Get"], apiGroups=[""], resources=["pods"])
        assert not allows(r, "get", "", "pods")

    def test_no_verbs_grants_nothing(self) -> None:
        assert not allows(rule(apiGroups=["*"], resources=["*"]), "get", "", "pods")

    def test_verb_star_is_only_matched_by_a_wildcard_rule(self) -> None:
        # Asking for verb "*" is asking whether the rule holds the wildcard itself.
        assert not allows(rule(verbs=["get"], apiGroups=[""], resources=["pods"]), "*", "", "pods")


class TestApiGroups:
    def test_core_group_is_the_empty_string(self) -> None:
        r = rule(verbs=["get"], apiGroups=[""], resources=["deployments"])
        assert allows(r, "get", "", "deployments")
        assert not allows(r, "get", "apps", "deployments")

    def test_named_group_does_not_match_core(self) -> None:
        r = rule(verbs=["get"], apiGroups=["apps"], resources=["pods"])
        assert not allows(r, "get", "", "pods")

    def test_wildcard_group_matches_core_and_named_groups(self) -> None:
        r = rule(verbs=["get"], apiGroups=["*"], resources=["deployments"])
        assert allows(r, "get", "", "deployments")
        assert allows(r, "get", "apps", "deployments")
        assert allows(r, "get", "example.com", "deployments")

    def test_missing_api_groups_grants_no_resource(self) -> None:
        assert not allows(rule(verbs=["*"], resources=["*"]), "get", "", "pods")


# -- resources and subresources ---------------------------------------------------------


class TestResources:
    def test_exact_resource(self) -> None:
        r = rule(verbs=["get"], apiGroups=[""], resources=["pods"])
        assert allows(r, "get", "", "pods")
        assert not allows(r, "get", "", "services")

    def test_resource_does_not_include_its_subresources(self) -> None:
        r = rule(verbs=["create"], apiGroups=[""], resources=["pods"])
        assert not allows(r, "create", "", "pods", "exec")

    def test_subresource_rule_does_not_grant_the_resource(self) -> None:
        r = rule(verbs=["create", "get"], apiGroups=[""], resources=["pods/exec"])
        assert allows(r, "create", "", "pods", "exec")
        assert not allows(r, "get", "", "pods")
        assert not allows(r, "create", "", "pods", "attach")

    def test_wildcard_resource_matches_resources_and_subresources(self) -> None:
        r = rule(verbs=["get"], apiGroups=[""], resources=["*"])
        assert allows(r, "get", "", "pods")
        assert allows(r, "get", "", "pods", "exec")
        assert allows(r, "get", "", "nodes", "proxy")

    def test_star_slash_subresource_matches_that_subresource_of_every_resource(self) -> None:
        r = rule(verbs=["update"], apiGroups=["*"], resources=["*/scale"])
        assert allows(r, "update", "apps", "deployments", "scale")
        assert allows(r, "update", "example.com", "widgets", "scale")
        assert not allows(r, "update", "apps", "deployments")
        assert not allows(r, "update", "apps", "deployments", "status")
        # Not a bare resource named "scale" either.
        assert not allows(r, "update", "", "scale")

    def test_resource_slash_star_is_not_a_wildcard(self) -> None:
        r = rule(verbs=["*"], apiGroups=[""], resources=["pods/*"])
        assert not allows(r, "create", "", "pods", "exec")
        assert not allows(r, "get", "", "pods")
        assert allows(r, "get", "", "pods", "*")  # only a subresource literally named "*"

    def test_star_slash_star_is_not_every_subresource(self) -> None:
        r = rule(verbs=["*"], apiGroups=[""], resources=["*/*"])
        assert not allows(r, "create", "", "pods", "exec")
        assert not allows(r, "get", "", "pods")

    def test_star_slash_prefix_must_match_the_whole_subresource(self) -> None:
        r = rule(verbs=["*"], apiGroups=[""], resources=["*/xec"])
        assert not allows(r, "create", "", "pods", "exec")

    def test_empty_subresource_is_no_subresource(self) -> None:
        r = rule(verbs=["get"], apiGroups=[""], resources=["pods"])
        assert allows(r, "get", "", "pods", "")

    def test_resources_are_case_sensitive(self) -> None:
        assert not allows(
            rule(verbs=["get"], apiGroups=[""], resources=["Pods"]), "get", "", "pods"
        )

    def test_missing_resources_grants_no_resource(self) -> None:
        assert not allows(rule(verbs=["*"], apiGroups=["*"]), "get", "", "pods")


# -- resource names ----------------------------------------------------------------------


class TestResourceNames:
    named = rule(
        verbs=["get", "list", "create"],
        apiGroups=[""],
        resources=["secrets"],
        resourceNames=["app-tls", "db"],
    )

    def test_listed_names_are_allowed(self) -> None:
        assert allows(self.named, "get", "", "secrets", name="app-tls")
        assert allows(self.named, "get", "", "secrets", name="db")

    def test_other_names_are_not(self) -> None:
        assert not allows(self.named, "get", "", "secrets", name="other")

    def test_requests_naming_no_object_are_not(self) -> None:
        # list, watch and create carry no name: resourceNames cannot allow them.
        assert not allows(self.named, "list", "", "secrets")
        assert not allows(self.named, "create", "", "secrets")

    def test_no_resource_names_allows_every_name_and_none(self) -> None:
        r = rule(verbs=["get", "list"], apiGroups=[""], resources=["secrets"])
        assert allows(r, "get", "", "secrets", name="anything")
        assert allows(r, "list", "", "secrets")

    def test_empty_string_name_matches_a_request_without_name(self) -> None:
        # As in the authorizer, which compares against the empty name.
        r = rule(verbs=["list"], apiGroups=[""], resources=["secrets"], resourceNames=[""])
        assert allows(r, "list", "", "secrets")

    def test_names_apply_to_subresources(self) -> None:
        r = rule(verbs=["create"], apiGroups=[""], resources=["pods/exec"], resourceNames=["debug"])
        assert allows(r, "create", "", "pods", "exec", "debug")
        assert not allows(r, "create", "", "pods", "exec", "web")

    def test_some_name_ignores_resource_names_but_nothing_else(self) -> None:
        assert rule_allows_some_name(self.named, "list", "", "secrets")
        assert not rule_allows_some_name(self.named, "delete", "", "secrets")
        assert not rule_allows_some_name(self.named, "get", "", "configmaps")
        assert not rule_allows_some_name(self.named, "get", "", "secrets", "status")

    def test_grants_for_some_name_finds_name_limited_rules(self) -> None:
        rules = [rule(verbs=["get"], apiGroups=[""], resources=["pods"]), self.named]
        assert grants(rules, "get", "", "secrets") is None
        assert grants_for_some_name(rules, "get", "", "secrets") is self.named


# -- non-resource URLs -------------------------------------------------------------------


class TestNonResourceUrls:
    def test_exact_path(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["/healthz"])
        assert rule_allows_non_resource(r, "get", "/healthz")
        assert not rule_allows_non_resource(r, "get", "/healthz/etcd")
        assert not rule_allows_non_resource(r, "get", "/healthz/")
        assert not rule_allows_non_resource(r, "post", "/healthz")

    def test_star_matches_every_path(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["*"])
        assert rule_allows_non_resource(r, "get", "/metrics")
        assert rule_allows_non_resource(r, "get", "/")

    def test_trailing_star_is_a_prefix(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["/healthz/*"])
        assert rule_allows_non_resource(r, "get", "/healthz/etcd")
        assert rule_allows_non_resource(r, "get", "/healthz/")
        assert not rule_allows_non_resource(r, "get", "/healthz")

    def test_prefix_is_a_string_prefix_not_a_path_prefix(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["/api*"])
        assert rule_allows_non_resource(r, "get", "/api")
        assert rule_allows_non_resource(r, "get", "/apis/apps/v1")

    def test_every_trailing_star_is_trimmed(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["/logs**"])
        assert rule_allows_non_resource(r, "get", "/logs/kubelet")

    def test_star_elsewhere_is_literal(self) -> None:
        r = rule(verbs=["get"], nonResourceURLs=["/*/metrics"])
        assert not rule_allows_non_resource(r, "get", "/x/metrics")
        assert rule_allows_non_resource(r, "get", "/*/metrics")

    def test_resource_rules_and_url_rules_do_not_cross(self) -> None:
        url_rule = rule(verbs=["*"], nonResourceURLs=["*"])
        resource_rule = rule(verbs=["*"], apiGroups=["*"], resources=["*"])
        assert not allows(url_rule, "get", "", "pods")
        assert not rule_allows_non_resource(resource_rule, "get", "/healthz")

    def test_mixed_rule_is_matched_half_by_half(self) -> None:
        # The API server rejects such a rule; if one is read, each half behaves as its own.
        r = rule(verbs=["get"], apiGroups=[""], resources=["pods"], nonResourceURLs=["/metrics"])
        assert allows(r, "get", "", "pods")
        assert rule_allows_non_resource(r, "get", "/metrics")
        assert not rule_allows_non_resource(r, "get", "/pods")

    def test_grants_non_resource_returns_the_granting_rule(self) -> None:
        first = rule(verbs=["get"], nonResourceURLs=["/version"])
        second = rule(verbs=["get"], nonResourceURLs=["/metrics"])
        assert grants_non_resource([first, second], "get", "/metrics") is second
        assert grants_non_resource([first, second], "get", "/debug") is None


# -- grants ------------------------------------------------------------------------------


class TestGrants:
    def test_returns_the_first_granting_rule(self) -> None:
        a = rule(verbs=["get"], apiGroups=[""], resources=["pods"])
        b = rule(verbs=["*"], apiGroups=["*"], resources=["*"])
        assert grants([a, b], "get", "", "pods") is a
        assert grants([a, b], "delete", "", "pods") is b
        assert grants([a], "delete", "", "pods") is None
        assert grants([], "get", "", "pods") is None

    def test_accepts_any_iterable(self) -> None:
        a = rule(verbs=["get"], apiGroups=[""], resources=["pods"])
        assert grants(iter([a]), "get", "", "pods") is a

    def test_grants_everything_needs_one_rule_with_all_three_wildcards(self) -> None:
        split = [
            rule(verbs=["*"], apiGroups=["*"], resources=["pods"]),
            rule(verbs=["get"], apiGroups=["*"], resources=["*"]),
        ]
        assert grants_everything(split) is None
        named = rule(verbs=["*"], apiGroups=["*"], resources=["*"], resourceNames=["x"])
        assert grants_everything([named]) is None
        full = rule(verbs=["*"], apiGroups=["*"], resources=["*"])
        assert grants_everything([*split, full]) is full


class TestMalformedRules:
    def test_wrong_types_grant_nothing_and_are_reported(self) -> None:
        r = PolicyRule.from_raw(
            {"verbs": "*", "apiGroups": ["*"], "resources": ["*"]},
            RuleOrigin("ClusterRole", "x", None, 3),
        )
        assert r.verbs == ()
        assert r.problems == ("rules[3].verbs is not a list",)
        assert not allows(r, "get", "", "pods")

    def test_non_string_items_are_dropped_and_reported(self) -> None:
        r = PolicyRule.from_raw(
            {"verbs": ["get", 7, None], "apiGroups": [""], "resources": ["pods", {"a": 1}]}
        )
        assert r.verbs == ("get",)
        assert r.resources == ("pods",)
        assert len(r.problems) == 2
        assert allows(r, "get", "", "pods")

    def test_a_rule_that_is_not_a_mapping(self) -> None:
        r = PolicyRule.from_raw(["get"])
        assert r == PolicyRule()
        assert r.problems == ("rule is not a mapping",)

    def test_null_fields_are_empty(self) -> None:
        r = PolicyRule.from_raw({"verbs": ["get"], "apiGroups": None, "resources": None})
        assert r.problems == ()

    def test_equality_is_on_content_only(self) -> None:
        a = PolicyRule.from_raw({"verbs": ["get"]}, RuleOrigin("Role", "a", "ns", 0))
        b = PolicyRule.from_raw({"verbs": ["get"]}, RuleOrigin("Role", "b", "ns", 4))
        assert a == b and hash(a) == hash(b)
        assert a != PolicyRule.from_raw({"verbs": ["get", "list"]})

    def test_describe_shows_names_and_urls(self) -> None:
        r = rule(verbs=["get"], apiGroups=[""], resources=["secrets"], resourceNames=["db"])
        assert r.describe() == 'verbs: get; apiGroups: ""; resources: secrets; resourceNames: db'
        assert rule(verbs=["get"], nonResourceURLs=["/x"]).describe() == (
            "verbs: get; nonResourceURLs: /x"
        )


# -- aggregation -------------------------------------------------------------------------

SECRETS = {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}
PODS = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
NODES = {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}
TO_MONITORING = {"matchLabels": {"aggregate-to-monitoring": "true"}}


class TestAggregation:
    def test_a_non_aggregated_role_has_its_listed_rules(self) -> None:
        index = index_of(cluster_role("plain", [PODS]))
        role = index.cluster_role("plain")
        assert role is not None and not is_aggregated(role)
        assert contents(index.rules_of(role).rules) == [("pods",)]

    def test_rules_come_from_the_selected_cluster_roles(self) -> None:
        index = index_of(
            cluster_role("monitoring", selectors=[TO_MONITORING]),
            cluster_role("b-metrics", [PODS], {"aggregate-to-monitoring": "true"}),
            cluster_role("a-secrets", [SECRETS], {"aggregate-to-monitoring": "true"}),
            cluster_role("unrelated", [NODES], {"team": "x"}),
        )
        role = index.cluster_role("monitoring")
        assert role is not None
        aggregated = index.aggregated_rules(role).rules
        # Sorted by ClusterRole name within a selector, as the controller does.
        assert contents(aggregated) == [("secrets",), ("pods",)]
        assert grants(aggregated, "get", "", "secrets") is aggregated[0]
        assert grants(aggregated, "get", "", "nodes") is None

    def test_aggregated_rules_keep_where_they_came_from(self) -> None:
        index = index_of(
            cluster_role("monitoring", selectors=[{"matchLabels": {"x": "y"}}, TO_MONITORING]),
            cluster_role("secrets-reader", [PODS, SECRETS], {"aggregate-to-monitoring": "true"}),
        )
        role = index.cluster_role("monitoring")
        assert role is not None
        found = grants(index.rules_of(role).rules, "get", "", "secrets")
        assert found is not None and found.origin is not None
        assert (found.origin.name, found.origin.index) == ("secrets-reader", 1)
        assert found.origin.via == (("monitoring", 1),)
        assert found.origin.selector_path == "aggregationRule.clusterRoleSelectors[1]"
        assert str(found.origin) == (
            "ClusterRole secrets-reader rules[1], aggregated into ClusterRole monitoring by "
            "clusterRoleSelectors[1]"
        )

    def test_match_expressions_select(self) -> None:
        selector = {
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["read", "write"]},
                {"key": "deprecated", "operator": "DoesNotExist"},
            ]
        }
        index = index_of(
            cluster_role("agg", selectors=[selector]),
            cluster_role("r", [PODS], {"tier": "read"}),
            cluster_role("w", [SECRETS], {"tier": "write", "deprecated": "yes"}),
            cluster_role("n", [NODES], {"tier": "none"}),
        )
        role = index.cluster_role("agg")
        assert role is not None
        assert contents(index.aggregated_rules(role).rules) == [("pods",)]

    def test_selectors_in_order_and_duplicates_dropped(self) -> None:
        index = index_of(
            cluster_role(
                "agg", selectors=[{"matchLabels": {"s": "2"}}, {"matchLabels": {"s": "1"}}]
            ),
            cluster_role("one", [PODS, SECRETS], {"s": "1"}),
            cluster_role("two", [NODES, PODS], {"s": "2"}),
        )
        role = index.cluster_role("agg")
        assert role is not None
        rules = index.aggregated_rules(role).rules
        assert contents(rules) == [("nodes",), ("pods",), ("secrets",)]
        assert rules[1].origin is not None and rules[1].origin.name == "two"

    def test_an_empty_selector_selects_every_cluster_role_but_itself(self) -> None:
        index = index_of(
            cluster_role("all", [NODES], selectors=[{}]),
            cluster_role("x", [PODS]),
            cluster_role("y", [SECRETS]),
        )
        role = index.cluster_role("all")
        assert role is not None
        assert contents(index.aggregated_rules(role).rules) == [("pods",), ("secrets",)]

    def test_the_role_never_aggregates_itself(self) -> None:
        index = index_of(
            cluster_role(
                "self", [NODES], {"aggregate-to-monitoring": "true"}, selectors=[TO_MONITORING]
            ),
            cluster_role("other", [PODS], {"aggregate-to-monitoring": "true"}),
        )
        role = index.cluster_role("self")
        assert role is not None
        assert contents(index.aggregated_rules(role).rules) == [("pods",)]

    def test_aggregation_is_transitive(self) -> None:
        # admin selects edit, edit selects a CRD's role: admin gets the CRD's rules.
        index = index_of(
            cluster_role("admin", selectors=[{"matchLabels": {"to-admin": "true"}}]),
            cluster_role(
                "edit",
                labels={"to-admin": "true"},
                selectors=[{"matchLabels": {"to-edit": "true"}}],
            ),
            cluster_role("widgets-edit", [SECRETS], {"to-edit": "true"}),
        )
        admin = index.cluster_role("admin")
        assert admin is not None
        rules = index.aggregated_rules(admin).rules
        assert contents(rules) == [("secrets",)]
        origin = rules[0].origin
        assert origin is not None and origin.via == (("admin", 0), ("edit", 0))
        assert str(origin) == (
            "ClusterRole widgets-edit rules[0], aggregated into ClusterRole edit by "
            "clusterRoleSelectors[0] then into ClusterRole admin by clusterRoleSelectors[0]"
        )

    def test_listed_rules_of_an_aggregated_role_are_kept_in_rules_of(self) -> None:
        # A cluster read shows the controller's last result; manifests may list rules too.
        index = index_of(
            cluster_role("agg", [NODES, PODS], selectors=[TO_MONITORING]),
            cluster_role("c", [PODS, SECRETS], {"aggregate-to-monitoring": "true"}),
        )
        role = index.cluster_role("agg")
        assert role is not None
        assert contents(index.aggregated_rules(role).rules) == [("pods",), ("secrets",)]
        effective = index.rules_of(role).rules
        assert contents(effective) == [("nodes",), ("pods",), ("secrets",)]
        # A rule the role lists itself is reported where it is written.
        assert effective[1].origin is not None and effective[1].origin.via == ()

    def test_an_aggregation_rule_without_selectors_aggregates_nothing(self) -> None:
        index = index_of(
            {**cluster_role("agg", [PODS]), "aggregationRule": {}}, cluster_role("x", [SECRETS])
        )
        role = index.cluster_role("agg")
        assert role is not None and is_aggregated(role)
        assert index.aggregated_rules(role).rules == ()
        assert contents(index.rules_of(role).rules) == [("pods",)]

    def test_cycles_end(self) -> None:
        index = index_of(
            cluster_role("a", [PODS], {"ring": "a"}, selectors=[{"matchLabels": {"ring": "b"}}]),
            cluster_role("b", [SECRETS], {"ring": "b"}, selectors=[{"matchLabels": {"ring": "a"}}]),
        )
        a = index.cluster_role("a")
        assert a is not None
        # Every rule that may circulate in the ring is in force for a.
        assert sorted(contents(index.rules_of(a).rules)) == [("pods",), ("secrets",)]

    def test_hostile_selection_graphs_stay_linear(self) -> None:
        objects = [
            cluster_role(
                f"r{i:03}",
                [{"verbs": ["get"], "apiGroups": [""], "resources": [f"res{i}"]}],
                selectors=[{}, {}],
            )
            for i in range(300)
        ]
        index = index_of(*objects)
        start = time.monotonic()
        role = index.cluster_role("r000")
        assert role is not None
        rules = index.rules_of(role).rules
        assert len(rules) == 300
        assert time.monotonic() - start < 5

    def test_problems_in_selectors_and_contributors_are_reported(self) -> None:
        index = index_of(
            cluster_role(
                "agg",
                selectors=[
                    "nope",
                    {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]},
                    TO_MONITORING,
                ],
            ),
            cluster_role("c", [PODS, {"verbs": "get"}], {"aggregate-to-monitoring": "true"}),
        )
        role = index.cluster_role("agg")
        assert role is not None
        ruleset = index.rules_of(role)
        assert contents(ruleset.rules) == [("pods",), ()]
        assert ruleset.problems == (
            "ClusterRole agg: aggregationRule.clusterRoleSelectors[0] is not a label selector",
            "ClusterRole agg: aggregationRule.clusterRoleSelectors[1] matchExpressions has "
            "unknown operator 'Near'",
            "ClusterRole c: rules[1].verbs is not a list",
        )

    @pytest.mark.parametrize(
        ("selector", "problem"),
        [
            ({}, None),
            ({"matchLabels": {"a": "b"}}, None),
            ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, None),
            (
                {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
                "matchExpressions operator In has the wrong number of values",
            ),
            (
                {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                "matchExpressions operator Exists has the wrong number of values",
            ),
            (
                {"matchExpressions": [{"operator": "Exists"}]},
                "matchExpressions has an entry without a key",
            ),
            ({"matchExpressions": "a=b"}, "matchExpressions is not a list"),
            ({"matchLabels": ["a"]}, "matchLabels is not a mapping"),
            (None, "is not a label selector"),
        ],
    )
    def test_selector_problems(self, selector: Any, problem: str | None) -> None:
        assert selector_problem(selector) == problem

    def test_aggregated_into(self) -> None:
        index = index_of(
            cluster_role("admin", selectors=[{"matchLabels": {"to-admin": "true"}}]),
            cluster_role(
                "edit",
                labels={"to-admin": "true"},
                selectors=[{"matchLabels": {"to-edit": "true"}}],
            ),
            cluster_role("widgets", [SECRETS], {"to-edit": "true", "to-admin": "true"}),
        )
        assert index.aggregated_into("widgets") == ["admin", "edit"]
        assert index.aggregated_into("edit") == ["admin"]
        assert index.aggregated_into("admin") == []


# -- role references and subjects -------------------------------------------------------

BINDINGS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- {verbs: [get], apiGroups: [""], resources: [secrets]}
- {verbs: [get], apiGroups: [""], resources: [nodes]}
- {verbs: [get], nonResourceURLs: [/metrics]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: local, namespace: team}
rules:
- {verbs: [create], apiGroups: [""], resources: [pods]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: local, namespace: elsewhere}
rules:
- {verbs: ["*"], apiGroups: ["*"], resources: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: to-cluster-role, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: ServiceAccount, name: app}
- {kind: ServiceAccount, name: other, namespace: other-ns}
- {kind: User, name: alice}
- {kind: Group, name: devs}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: to-role, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: local}
subjects: [{kind: User, name: bob}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: cluster-wide}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: ServiceAccount, name: agent, namespace: monitoring}
- {kind: ServiceAccount, name: no-namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: to-a-role}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: local}
subjects: [{kind: User, name: carol}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: builtin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: ops}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: missing, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: not-here}
subjects: [{kind: User, name: dan}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: broken, namespace: team}
roleRef: reader
subjects: [{kind: Robot, name: r2}, "x", {kind: User}]
"""


@pytest.fixture(scope="module")
def rbac() -> RbacIndex:
    return RbacIndex(inventory(BINDINGS))


def binding(index: RbacIndex, kind: str, name: str) -> K8sObject:
    return next(b for b in index.inventory.of_kind(kind) if b.name == name)


class TestRoleBindingToClusterRole:
    def test_grants_the_cluster_roles_rules_in_its_namespace_only(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role"))
        assert resolved.role_source == "input" and resolved.namespace == "team"
        assert resolved.scope == "in namespace team"
        assert resolved.allows("get", "", "secrets", namespace="team") is resolved.rules[0]
        assert resolved.allows("get", "", "secrets", namespace="prod") is None

    def test_grants_no_cluster_scoped_resource(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role"))
        assert grants(resolved.rules, "get", "", "nodes") is not None  # the role has it...
        assert resolved.allows("get", "", "nodes") is None  # ...the RoleBinding cannot give it

    def test_grants_no_non_resource_url(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role"))
        assert resolved.allows_non_resource("get", "/metrics") is None

    def test_service_accounts_default_to_the_binding_namespace(self, rbac: RbacIndex) -> None:
        subjects = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role")).subjects
        assert [(s.kind, s.namespace, s.name) for s in subjects] == [
            ("ServiceAccount", "team", "app"),
            ("ServiceAccount", "other-ns", "other"),
            ("User", None, "alice"),
            ("Group", None, "devs"),
        ]
        assert subjects[0].username == "system:serviceaccount:team:app"
        assert [s.path for s in subjects] == [f"subjects[{i}]" for i in range(4)]


class TestClusterRoleBinding:
    def test_grants_everywhere(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "ClusterRoleBinding", "cluster-wide"))
        assert resolved.namespace is None and resolved.scope == "cluster-wide"
        assert resolved.allows("get", "", "secrets", namespace="anywhere") is not None
        assert resolved.allows("get", "", "nodes") is not None
        assert resolved.allows_non_resource("get", "/metrics") is resolved.rules[2]

    def test_a_service_account_without_namespace_matches_no_one(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "ClusterRoleBinding", "cluster-wide"))
        lost = resolved.subjects[1]
        assert lost.namespace is None and lost.username is None
        assert not lost.applies_to("system:serviceaccount::no-namespace", [])
        assert resolved.subject_problems == (
            "subjects[1] is a ServiceAccount with no namespace in a ClusterRoleBinding: it "
            "matches no one",
        )

    def test_cannot_reference_a_role(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "ClusterRoleBinding", "to-a-role"))
        assert resolved.rules == () and resolved.role_source == "missing"
        assert resolved.problems == (
            "a ClusterRoleBinding cannot reference a Role: it grants nothing",
        )


class TestRoleReferences:
    def test_a_role_is_looked_up_in_the_binding_namespace(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "to-role"))
        assert resolved.role is not None and resolved.role.namespace == "team"
        assert resolved.role_label == "Role team/local"
        assert resolved.allows("create", "", "pods", namespace="team") is not None
        assert resolved.allows("delete", "", "pods", namespace="team") is None

    def test_builtin_cluster_roles_stand_in_when_not_in_the_input(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "ClusterRoleBinding", "builtin"))
        assert resolved.role is None and resolved.role_source == "built-in"
        found = grants_everything(resolved.rules)
        assert found is not None and found.origin is not None
        assert str(found.origin) == "built-in ClusterRole cluster-admin rules[0]"

    def test_a_missing_role_grants_nothing_known(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "missing"))
        assert resolved.role_source == "missing" and not resolved.rules_known
        assert resolved.rules == () and resolved.problems == ()

    def test_malformed_bindings_are_reported(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "broken"))
        assert resolved.problems == (
            "roleRef is missing or not a mapping",
            "roleRef kind None name None names no role",
        )
        assert resolved.subjects == ()
        assert len(resolved.subject_problems) == 3

    def test_bindings_of(self, rbac: RbacIndex) -> None:
        reader = rbac.cluster_role("reader")
        team_local = rbac.role("team", "local")
        elsewhere_local = rbac.role("elsewhere", "local")
        assert reader is not None and team_local is not None and elsewhere_local is not None
        assert [b.name for b in rbac.bindings_of(reader)] == ["cluster-wide", "to-cluster-role"]
        assert [b.name for b in rbac.bindings_of(team_local)] == ["to-role"]
        assert rbac.bindings_of(elsewhere_local) == []

    def test_builtin_table_parses_cleanly(self) -> None:
        for raw_rules in BUILTIN_CLUSTER_ROLE_RULES.values():
            assert all(PolicyRule.from_raw(r).problems == () for r in raw_rules)


class TestSubjects:
    def test_subject_matching_follows_the_authorizer(self, rbac: RbacIndex) -> None:
        resolved = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role"))
        app, other, alice, devs = resolved.subjects
        assert app.applies_to("system:serviceaccount:team:app", [])
        assert not app.applies_to("system:serviceaccount:other:app", [])
        assert other.applies_to("system:serviceaccount:other-ns:other", [])
        assert alice.applies_to("alice", ["devs"])
        assert not alice.applies_to("Alice", [])
        assert devs.applies_to("anyone", ["system:authenticated", "devs"])
        assert not devs.applies_to("devs", [])  # a group is not a user name
        assert resolved.subject_for("bob", ["devs"]) is devs
        assert resolved.subject_for("alice", ["devs"]) is alice  # the first that applies
        assert resolved.subject_for("eve", []) is None

    def test_a_user_subject_can_name_a_service_account(self) -> None:
        index = index_of(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "system:serviceaccount:ns:sa"}],
            }
        )
        resolved = index.resolve(next(index.bindings()))
        assert resolved.subject_for("system:serviceaccount:ns:sa", []) is not None

    def test_subject_labels(self, rbac: RbacIndex) -> None:
        subjects = rbac.resolve(binding(rbac, "RoleBinding", "to-cluster-role")).subjects
        assert [str(s) for s in subjects] == [
            "ServiceAccount team/app",
            "ServiceAccount other-ns/other",
            "User alice",
            "Group devs",
        ]


def test_the_index_is_built_once_per_scan() -> None:
    inv = inventory(BINDINGS)
    context = Context(inv)
    assert context.derived("rbac", RbacIndex) is context.derived("rbac", RbacIndex)


# -- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
RULE_KEYS = ["verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs", "other"]
words = st.sampled_from(
    ["", "*", "get", "pods", "pods/exec", "*/exec", "exec", "/api", "/api*", "apps", "/*"]
) | st.text(max_size=6)
rule_dicts = st.dictionaries(
    st.sampled_from(RULE_KEYS), st.lists(words, max_size=4) | json_values, max_size=6
)
any_rule = rule_dicts | json_values
optional_words = st.none() | words


@settings(max_examples=300, deadline=None)
@given(
    raw=any_rule,
    verb=words,
    group=words,
    resource=words,
    sub=optional_words,
    name=optional_words,
    path=words,
)
def test_matching_never_crashes_on_arbitrary_rules(
    raw: Any,
    verb: str,
    group: str,
    resource: str,
    sub: str | None,
    name: str | None,
    path: str,
) -> None:
    r = PolicyRule.from_raw(raw, RuleOrigin("ClusterRole", "x", None, 0))
    for found in (
        grants([r], verb, group, resource, sub, name),
        grants_for_some_name([r], verb, group, resource, sub),
        grants_non_resource([r], verb, path),
        grants_everything([r]),
    ):
        assert found is None or found is r
    assert isinstance(r.describe(), str)
    assert all(isinstance(v, str) for v in (*r.verbs, *r.api_groups, *r.resources))


@settings(max_examples=300, deadline=None)
@given(
    raw=rule_dicts, verb=words, group=words, resource=words, sub=optional_words, name=optional_words
)
def test_names_only_narrow_and_wildcards_only_widen(
    raw: dict[str, Any],
    verb: str,
    group: str,
    resource: str,
    sub: str | None,
    name: str | None,
) -> None:
    r = PolicyRule.from_raw(raw)
    if rule_allows(r, verb, group, resource, sub, name):
        assert rule_allows_some_name(r, verb, group, resource, sub)
        unnamed = PolicyRule(r.verbs, r.api_groups, r.resources)
        assert rule_allows(unnamed, verb, group, resource, sub, name)
        assert verb in r.verbs or "*" in r.verbs
        assert group in r.api_groups or "*" in r.api_groups
    widest = PolicyRule(("*",), ("*",), ("*",), (), ("*",))
    assert rule_allows(widest, verb, group, resource, sub, name)
    assert rule_allows_non_resource(widest, verb, resource)


role_like = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["ClusterRole", "Role", "RoleBinding", "ClusterRoleBinding"]),
        "metadata": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["a", "b", "c"]),
                "labels": st.dictionaries(st.sampled_from(["l"]), st.sampled_from(["1", "2"])),
            }
        ),
    },
    optional={
        "rules": st.lists(any_rule, max_size=3) | json_values,
        "aggregationRule": json_values
        | st.fixed_dictionaries(
            {"clusterRoleSelectors": st.lists(json_values | st.just({}), max_size=3)}
        ),
        "roleRef": json_values
        | st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["Role", "ClusterRole", "x"]),
                "name": st.sampled_from(["a", "b", "cluster-admin"]),
            }
        ),
        "subjects": json_values | st.lists(json_values, max_size=3),
    },
)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(role_like, max_size=6))
def test_index_never_crashes_on_arbitrary_objects(objects: list[dict[str, Any]]) -> None:
    index = index_of(*objects)
    for obj in index.inventory:
        if obj.kind in ("Role", "ClusterRole"):
            index.rules_of(obj)
            index.aggregated_rules(obj)
            index.bindings_of(obj)
            index.aggregated_into(obj.name)
        else:
            resolved = index.resolve(obj)
            resolved.allows("get", "", "pods", namespace="a")
            resolved.allows_non_resource("get", "/")
            resolved.subject_for("a", ["b"])
