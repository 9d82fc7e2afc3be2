"""kubeproof's RBAC model agrees with a real API server.

Rule matching, role references, RoleBinding scoping and subjects are compared with
SubjectAccessReview answers for a matrix of users and requests; ClusterRole aggregation
is compared with what the real aggregation controller writes, for Kubernetes' own
admin/edit/view and for roles made to exercise transitivity, order and duplicates.
"""

from __future__ import annotations

import itertools

import pytest
import yaml
from controlplane import ControlPlane, wait_for
from rbac_helpers import (
    COLLECTIONS,
    RBAC,
    aggregation_disagreements,
    rule_contents,
    server_allows,
    service_account_user,
)

from kubeproof.analysis.rbac import RbacIndex, listed_rules
from kubeproof.inventory import Inventory, K8sObject

pytestmark = pytest.mark.integration


NS = "rbac-sar"
OTHER = "rbac-sar-other"

FIXTURES = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-reader}}
rules:
- {{verbs: [get, list], apiGroups: [""], resources: [pods, pods/log]}}
- {{verbs: [get], apiGroups: [""], resources: [secrets], resourceNames: [app-tls]}}
- {{verbs: [get], apiGroups: [""], resources: [nodes]}}
- {{verbs: [get], nonResourceURLs: [/metrics, /logs*, /healthz/*]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-scaler}}
rules:
- {{verbs: [update], apiGroups: ["*"], resources: ["*/scale"]}}
- {{verbs: [create], apiGroups: [""], resources: [pods/*, "*/*"]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: sar-exec, namespace: {NS}}}
rules:
- {{verbs: [create], apiGroups: [""], resources: [pods/exec]}}
- {{verbs: ["*"], apiGroups: [apps], resources: [deployments]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-agg-top, labels: {{sar/extra: "true"}}}}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {{sar/agg-top: "true"}}
  - matchExpressions: [{{key: sar/extra, operator: Exists}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-agg-mid, labels: {{sar/agg-top: "true"}}}}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {{sar/agg-mid: "true"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-leaf-a, labels: {{sar/agg-mid: "true"}}}}
rules:
- {{verbs: [get], apiGroups: [""], resources: [configmaps]}}
- {{verbs: [get], apiGroups: [""], resources: [secrets], resourceNames: [other]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: sar-leaf-b, labels: {{sar/agg-top: "true", sar/extra: "true"}}}}
rules:
- {{verbs: [get], apiGroups: [""], resources: [configmaps]}}
- {{verbs: [delete], apiGroups: [apps], resources: [deployments]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-rb, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sar-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}
- {{kind: ServiceAccount, name: app}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: sar-reader-crb}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sar-reader}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: exec-rb, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: sar-exec}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}}
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: sar-scaler-crb}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sar-scaler}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: sar-agg-crb}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sar-agg-top}}
subjects: [{{kind: ServiceAccount, name: app, namespace: {OTHER}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: sa-group-rb, namespace: {OTHER}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sar-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:serviceaccounts:{NS}"}}
"""

USERS = [
    ("alice", []),
    ("bob", ["devs"]),
    service_account_user(NS),
    service_account_user(OTHER),
    ("carol", ["system:authenticated"]),
]
RESOURCE_REQUESTS = [
    ("get", "", "pods", "", "p1"),
    ("list", "", "pods", "", ""),
    ("get", "", "pods", "log", "p1"),
    ("create", "", "pods", "exec", "p1"),
    ("create", "", "pods", "attach", "p1"),
    ("get", "", "pods", "exec", "p1"),
    ("create", "", "pods", "*", "p1"),
    ("get", "", "secrets", "", "app-tls"),
    ("get", "", "secrets", "", "other"),
    ("list", "", "secrets", "", ""),
    ("get", "", "configmaps", "", "c1"),
    ("get", "", "nodes", "", "n1"),
    ("get", "", "nodes", "proxy", "n1"),
    ("update", "apps", "deployments", "scale", "d1"),
    ("update", "example.com", "widgets", "scale", "w1"),
    ("update", "apps", "deployments", "", "d1"),
    ("delete", "apps", "deployments", "", "d1"),
    ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", ""),
]
NAMESPACES = [NS, OTHER, ""]
NON_RESOURCE_REQUESTS = [
    (verb, path)
    for verb in ("get", "post")
    for path in (
        "/metrics",
        "/metrics/x",
        "/logs",
        "/logs/kubelet",
        "/healthz",
        "/healthz/etcd",
        "/version",
        "/apis",
        "/api/v1",
        "/openid/v1/jwks",
    )
]


def _apply_fixtures(control_plane: ControlPlane) -> None:
    for name in (NS, OTHER):
        control_plane.create("/api/v1/namespaces", {"metadata": {"name": name}})
    for doc in yaml.safe_load_all(FIXTURES):
        namespace = doc["metadata"].get("namespace", "")
        control_plane.create(COLLECTIONS[doc["kind"]].format(namespace=namespace), doc)


def _read_rbac(control_plane: ControlPlane) -> RbacIndex:
    objects = []
    for kind in COLLECTIONS:
        path = f"{RBAC}/{kind.lower()}s"
        for item in control_plane.get(path).json()["items"]:
            item.update(kind=kind, apiVersion="rbac.authorization.k8s.io/v1")
            objects.append(K8sObject.from_raw(item))
    return RbacIndex(Inventory(objects))


@pytest.fixture(scope="module")
def rbac(control_plane: ControlPlane) -> RbacIndex:
    _apply_fixtures(control_plane)

    def converged() -> RbacIndex | None:
        index = _read_rbac(control_plane)
        top = index.cluster_role("sar-agg-top")
        ready = top is not None and listed_rules(top).rules and not aggregation_disagreements(index)
        return index if ready else None

    try:
        return wait_for(converged, "the aggregation controller to agree with the model", 30)
    except AssertionError:
        differences = aggregation_disagreements(_read_rbac(control_plane))
        raise AssertionError("aggregation differs:\n" + "\n".join(differences)) from None


def _model_allows(index: RbacIndex, user: str, groups: list[str], **request: str) -> bool:
    for binding in index.bindings():
        resolved = index.resolve(binding)
        if resolved.subject_for(user, groups) is None:
            continue
        if "path" in request:
            if resolved.allows_non_resource(request["verb"], request["path"]):
                return True
        elif resolved.allows(
            request["verb"],
            request["group"],
            request["resource"],
            request["subresource"] or None,
            request["name"] or None,
            request["namespace"] or None,
        ):
            return True
    return False


def test_aggregation_matches_the_controller(rbac: RbacIndex) -> None:
    # The fixture waited for agreement; check the cases it was meant to cover did occur.
    top = rbac.cluster_role("sar-agg-top")
    admin = rbac.cluster_role("admin")
    assert top is not None and admin is not None
    contents = rule_contents(rbac.aggregated_rules(top).rules)
    # Transitive (leaf-a through agg-mid), duplicates once, never itself.
    assert [c[2] for c in contents] == [("configmaps",), ("secrets",), ("deployments",)]
    assert len(rbac.aggregated_rules(admin).rules) > 10
    assert not aggregation_disagreements(rbac)


def test_resource_decisions_match_subject_access_review(
    control_plane: ControlPlane, rbac: RbacIndex
) -> None:
    disagreements = []
    allowed = 0
    for (user, groups), request, namespace in itertools.product(
        USERS, RESOURCE_REQUESTS, NAMESPACES
    ):
        verb, group, resource, subresource, name = request
        attributes = {
            "verb": verb,
            "group": group,
            "resource": resource,
            "subresource": subresource,
            "name": name,
            "namespace": namespace,
        }
        server = server_allows(control_plane, user, groups, **attributes)
        model = _model_allows(rbac, user, groups, **attributes)
        allowed += server
        if server != model:
            disagreements.append(f"{user} {attributes}: server {server}, model {model}")
    assert not disagreements, "\n".join(disagreements)
    assert allowed > 20  # the matrix exercises grants, not only denials


def test_non_resource_decisions_match_subject_access_review(
    control_plane: ControlPlane, rbac: RbacIndex
) -> None:
    disagreements = []
    for (user, groups), (verb, path) in itertools.product(USERS, NON_RESOURCE_REQUESTS):
        server = server_allows(control_plane, user, groups, verb=verb, path=path)
        model = _model_allows(rbac, user, groups, verb=verb, path=path)
        if server != model:
            disagreements.append(f"{user} {verb} {path}: server {server}, model {model}")
    assert not disagreements, "\n".join(disagreements)
