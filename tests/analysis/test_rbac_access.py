"""Effective permissions: who-can and per-subject answers, their grant paths, the
groups the API server adds, and the parsing of kubectl-style RESOURCE arguments."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from integration.rbac_helpers import (
    NON_RESOURCE_VERBS,
    OBJECT_NAMES,
    RESOURCES,
    URLS,
    VERBS,
    generate_rbac,
)
from kubeproof.analysis.rbac import RbacIndex
from kubeproof.analysis.rbac_access import (
    AccessRequest,
    Identity,
    NonResourceRequest,
    RbacAccess,
    ResourceRequest,
    parse_request,
    parse_resource,
)
from kubeproof.inventory import Inventory, K8sObject

MANIFESTS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- {verbs: [get, list], apiGroups: [""], resources: [pods, pods/log]}
- {verbs: [get], apiGroups: [""], resources: [secrets], resourceNames: [app-tls]}
- {verbs: [get], nonResourceURLs: [/metrics]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {aggregate-to-monitoring: "true"}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: scrape, labels: {aggregate-to-monitoring: "true"}}
rules:
- {verbs: [get], apiGroups: [""], resources: [nodes/proxy]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-shop, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: ServiceAccount, name: api}
- {kind: Group, name: "system:serviceaccounts:ci", apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: monitoring}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: monitoring}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: metrics-readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vendor, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: vendor-role}
subjects: [{kind: User, name: vendor, apiGroup: rbac.authorization.k8s.io}]
"""


def access_of(text: str) -> RbacAccess:
    objects = [K8sObject.from_raw(d) for d in yaml.safe_load_all(text) if d]
    return RbacAccess(RbacIndex(Inventory(objects)))


@pytest.fixture(scope="module")
def access() -> RbacAccess:
    return access_of(MANIFESTS)


def names(access: RbacAccess, request: AccessRequest) -> list[str]:
    return sorted({str(g.subject) for g in access.who_can(request).grants})


# -- identities ---------------------------------------------------------------------


def test_identities_carry_the_groups_the_api_server_adds() -> None:
    account = Identity.service_account("shop", "api")
    assert account.username == "system:serviceaccount:shop:api"
    assert account.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:shop",
        "system:authenticated",
    )
    assert Identity.user("alice", ["devs"]).groups == ("devs", "system:authenticated")
    assert Identity.user("system:anonymous").groups == ("system:unauthenticated",)
    assert Identity.group("ops").username is None


# -- who can ------------------------------------------------------------------------


def test_role_binding_to_cluster_role_grants_only_in_its_namespace(access: RbacAccess) -> None:
    in_shop = ResourceRequest("get", "", "pods", namespace="shop")
    assert names(access, in_shop) == [
        "Group ops",
        "Group system:serviceaccounts:ci",
        "ServiceAccount shop/api",
        "User alice",
    ]
    elsewhere = ResourceRequest("get", "", "pods", namespace="web")
    assert names(access, elsewhere) == ["Group ops", "User alice"]


def test_grant_path_names_binding_subject_role_and_rule(access: RbacAccess) -> None:
    answer = access.who_can(ResourceRequest("get", "", "pods", "log", "p1", "shop"))
    paths = {str(g.subject): g.path for g in answer.grants}
    assert paths["ServiceAccount shop/api"] == (
        "RoleBinding shop/read-shop subjects[0] -> ClusterRole reader rules[0]"
    )
    assert paths["Group ops"] == (
        "ClusterRoleBinding ops subjects[0] -> built-in ClusterRole cluster-admin rules[0]"
    )


def test_aggregation_steps_are_in_the_path(access: RbacAccess) -> None:
    answer = access.who_can(ResourceRequest("get", "", "nodes", "proxy", "n1"))
    paths = [g.path for g in answer.grants if g.subject.kind == "ServiceAccount"]
    assert paths == [
        "ClusterRoleBinding prometheus subjects[0] -> ClusterRole scrape rules[0], "
        "aggregated into ClusterRole monitoring by clusterRoleSelectors[0]"
    ]


def test_resource_names_limit_to_named_requests(access: RbacAccess) -> None:
    named = ResourceRequest("get", "", "secrets", name="app-tls", namespace="shop")
    other = ResourceRequest("get", "", "secrets", name="db", namespace="shop")
    unnamed = ResourceRequest("list", "", "secrets", namespace="shop")
    assert "ServiceAccount shop/api" in names(access, named)
    assert names(access, other) == names(access, unnamed) == ["Group ops"]


def test_non_resource_urls_only_through_cluster_role_bindings(access: RbacAccess) -> None:
    # reader has /metrics, but through RoleBinding read-shop it grants no URL.
    assert names(access, NonResourceRequest("get", "/metrics")) == ["Group ops", "User alice"]
    assert names(access, NonResourceRequest("post", "/metrics")) == ["Group ops"]


def test_identity_is_allowed_through_its_implicit_groups(access: RbacAccess) -> None:
    answer = access.who_can(ResourceRequest("list", "", "pods", namespace="shop"))
    assert answer.allows(Identity.service_account("ci", "builder"))
    assert not answer.allows(Identity.service_account("web", "builder"))
    assert answer.allows(Identity.user("bob", ["ops"]))
    assert not answer.allows(Identity.user("bob"))


def test_a_role_that_is_not_in_the_input_is_unknown_not_denied(access: RbacAccess) -> None:
    answer = access.who_can(ResourceRequest("delete", "apps", "deployments", namespace="shop"))
    assert [str(u.subject) for u in answer.unknown] == ["User vendor"]
    assert "ClusterRole vendor-role is not in the input" in answer.unknown[0].reason
    # Outside its namespace the unknown binding cannot matter.
    assert not access.who_can(ResourceRequest("delete", "", "pods", namespace="web")).unknown


def test_system_masters_is_noted_as_outside_rbac(access: RbacAccess) -> None:
    notes = access.who_can(ResourceRequest("get", "", "pods")).notes
    assert any("system:masters" in note for note in notes)


# -- per subject ----------------------------------------------------------------------


def test_permissions_are_grouped_by_scope_with_paths(access: RbacAccess) -> None:
    answer = access.permissions(Identity.user("alice"))
    scopes = answer.by_scope()
    assert [namespace for namespace, _ in scopes] == [None]
    grants = scopes[0][1]
    assert [g.rule.resources or g.rule.non_resource_urls for g in grants] == [
        ("pods", "pods/log"),
        ("secrets",),
        ("/metrics",),
    ]
    assert (
        grants[2].path
        == "ClusterRoleBinding metrics-readers subjects[0] -> ClusterRole reader rules[2]"
    )


def test_permissions_through_role_binding_drop_non_resource_rules(access: RbacAccess) -> None:
    answer = access.permissions(Identity.service_account("shop", "api"))
    assert [(ns, len(grants)) for ns, grants in answer.by_scope()] == [("shop", 2)]
    assert all(not g.rule.non_resource_urls for g in answer.grants)


def test_permissions_through_a_group_name_the_group(access: RbacAccess) -> None:
    answer = access.permissions(Identity.service_account("ci", "builder"))
    assert {str(g.subject) for g in answer.grants} == {"Group system:serviceaccounts:ci"}
    assert all(g.subject.path == "subjects[1]" for g in answer.grants)


def test_permissions_list_unknown_roles(access: RbacAccess) -> None:
    answer = access.permissions(Identity.user("vendor"))
    assert not answer.grants
    assert [u.binding.label for u in answer.unknown] == ["RoleBinding shop/vendor"]


def test_first_matching_subject_of_a_binding_is_the_one_reported() -> None:
    access = access_of(
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: twice}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: Group, name: system:authenticated, apiGroup: rbac.authorization.k8s.io}
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
"""
    )
    answer = access.permissions(Identity.user("alice"))
    assert {g.subject.path for g in answer.grants} == {"subjects[0]"}


def test_hostile_bindings_grant_nothing_and_do_not_crash() -> None:
    access = access_of(
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: broken}
roleRef: [not, a, mapping]
subjects: {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: odd, namespace: shop}
roleRef: {kind: ClusterRole, name: cluster-admin}
subjects: [{kind: User, name: 7}, "text", {kind: ServiceAccount, name: api}]
"""
    )
    answer = access.who_can(ResourceRequest("get", "", "pods", namespace="shop"))
    assert names(access, answer.request) == ["ServiceAccount shop/api"]
    assert access.permissions(Identity.user("alice")).grants == []


# -- the index agrees with the primitives -----------------------------------------------


def _brute_force(index: RbacIndex, identity: Identity, request: AccessRequest) -> bool:
    """The authorizer's loop over every binding, on the primitives, without any index."""
    for binding in index.bindings():
        resolved = index.resolve(binding)
        if resolved.subject_for(identity.username or "", identity.groups) is None:
            continue
        if isinstance(request, NonResourceRequest):
            if resolved.allows_non_resource(request.verb, request.path):
                return True
        elif resolved.allows(
            request.verb,
            request.api_group,
            request.resource,
            request.subresource,
            request.name,
            request.namespace,
        ):
            return True
    return False


def test_indexed_answers_equal_the_authorizer_loop_on_a_generated_set() -> None:
    generated = generate_rbac(7, namespaces=3, bindings=300)
    index = RbacIndex(Inventory(K8sObject.from_raw(o) for o in generated.objects))
    access = RbacAccess(index)
    identities = [Identity.user(u, generated.groups[:1]) for u in generated.users]
    identities += [Identity.service_account(ns, n) for ns, n in generated.service_accounts]
    rng = random.Random(3)
    checked = allowed = 0
    for _ in range(300):
        request: AccessRequest
        if rng.random() < 0.2:
            request = NonResourceRequest(rng.choice(NON_RESOURCE_VERBS), rng.choice(URLS))
        else:
            group, resource, subresources, _ = rng.choice(RESOURCES)
            request = ResourceRequest(
                rng.choice(VERBS),
                group,
                resource,
                rng.choice((None, *subresources)),
                rng.choice((None, *OBJECT_NAMES)),
                rng.choice((None, *generated.namespaces)),
            )
        who_can = access.who_can(request)
        for identity in rng.sample(identities, 10):
            expected = _brute_force(index, identity, request)
            assert who_can.allows(identity) == expected, (identity, request)
            assert (access.allows(identity, request) is not None) == expected
            checked += 1
            allowed += expected
    assert checked == 3000 and allowed > 100


# -- RESOURCE arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pods", ("pods", None, None)),
        ("pods/log", ("pods", None, "log")),
        ("deployments.apps", ("deployments", "apps", None)),
        ("deployments.apps/scale", ("deployments", "apps", "scale")),
        ("deployments.v1.apps", ("deployments", "apps", None)),
        ("ingresses.networking.k8s.io", ("ingresses", "networking.k8s.io", None)),
        ("cronjobs.v1beta1.batch", ("cronjobs", "batch", None)),
        ("widgets.v1", ("widgets", "v1", None)),
        ("*", ("*", None, None)),
        ("*/scale", ("*", None, "scale")),
    ],
)
def test_parse_resource(text: str, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_resource(text) == expected


@pytest.mark.parametrize("text", ["", "pods/", "pods/log/x", ".apps", "pods.", "a..b", "po ds"])
def test_parse_resource_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="resource"):
        parse_resource(text)


@pytest.mark.parametrize(
    ("words", "flags", "message"),
    [
        (("get", "/metrics"), {"namespace": "shop"}, "--namespace do not apply"),
        (("get", "/metrics"), {"name": "x", "api_group": "apps"}, "--name, --api-group"),
        (("get", "deployments.apps"), {"api_group": "batch"}, "--api-group is 'batch'"),
        (("get", "pods/log"), {"subresource": "exec"}, "--subresource is 'exec'"),
        (("get pods", "pods"), {}, "verb"),
        (("", "pods"), {}, "verb"),
        (("get", "pods"), {"namespace": ""}, "--namespace"),
        (("get", "pods"), {"name": "a/b"}, "--name"),
    ],
)
def test_parse_request_rejects_with_the_word(
    words: tuple[str, str], flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_request(*words, **flags)


def test_parse_request_combines_words_and_flags() -> None:
    assert parse_request("update", "deployments.apps/scale", namespace="shop") == ResourceRequest(
        "update", "apps", "deployments", "scale", None, "shop"
    )
    assert parse_request("get", "pods", subresource="log", name="p1") == ResourceRequest(
        "get", "", "pods", "log", "p1", None
    )
    assert parse_request("get", "deployments", api_group="apps") == ResourceRequest(
        "get", "apps", "deployments"
    )
    assert parse_request("get", "/healthz/etcd") == NonResourceRequest("get", "/healthz/etcd")


segment = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)
# A group's first segment that kubectl would not read as a version.
group_head = segment.filter(lambda s: not (s[0] == "v" and s[1:2].isdigit()))
groups = st.builds(lambda h, t: ".".join([h, *t]), group_head, st.lists(segment, max_size=3))
versions = st.sampled_from(["v1", "v2", "v1beta1", "v2alpha3"])


@given(segment, st.none() | groups, st.none() | segment)
def test_parse_resource_reads_what_was_written(
    resource: str, group: str | None, subresource: str | None
) -> None:
    text = resource + (f".{group}" if group else "") + (f"/{subresource}" if subresource else "")
    assert parse_resource(text) == (resource, group, subresource)


@given(segment, versions, groups)
def test_parse_resource_drops_the_version_of_a_qualified_name(
    resource: str, version: str, group: str
) -> None:
    assert parse_resource(f"{resource}.{version}.{group}") == (resource, group, None)


@given(st.text(max_size=40))
def test_parse_request_never_fails_other_than_with_value_error(text: str) -> None:
    try:
        request = parse_request("get", text)
    except ValueError as error:
        assert str(error)
    else:
        if text.startswith("/"):
            assert request == NonResourceRequest("get", text)
        else:
            assert isinstance(request, ResourceRequest) and request.resource
            assert request.resource in text
