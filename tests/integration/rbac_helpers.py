"""RBAC test support shared by the agreement tests and bench/rbac_analysis.py: applying
RBAC objects to the real control plane, asking it SubjectAccessReviews, comparing
aggregated ClusterRoles with what the controller wrote, and a seeded generator of
realistic RBAC sets (namespaces, Roles, ClusterRoles with aggregation and wildcards,
resourceNames, subresources, bindings to users, groups and service accounts).

The generator uses only the standard library so that the benchmark can import it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane import ControlPlane

    from kubeproof.analysis.rbac import RbacIndex

RBAC = "/apis/rbac.authorization.k8s.io/v1"
RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
COLLECTIONS = {
    "ClusterRole": f"{RBAC}/clusterroles",
    "ClusterRoleBinding": f"{RBAC}/clusterrolebindings",
    "Role": f"{RBAC}/namespaces/{{namespace}}/roles",
    "RoleBinding": f"{RBAC}/namespaces/{{namespace}}/rolebindings",
}
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


# -- the real server ------------------------------------------------------------------


def apply_objects(
    control_plane: ControlPlane, objects: list[dict[str, Any]], namespaces: Sequence[str] = ()
) -> None:
    """Create the namespaces, then each RBAC object, with the admin identity."""
    for name in namespaces:
        control_plane.create("/api/v1/namespaces", {"metadata": {"name": name}})
    for doc in objects:
        namespace = doc["metadata"].get("namespace", "")
        control_plane.create(COLLECTIONS[doc["kind"]].format(namespace=namespace), doc)


def service_account_user(namespace: str, name: str = "app") -> tuple[str, list[str]]:
    """The user name and groups the API server gives a service account's requests."""
    groups = [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    return f"system:serviceaccount:{namespace}:{name}", groups


def server_allows(
    control_plane: ControlPlane, user: str, groups: list[str], **request: str
) -> bool:
    """The real authorizer's answer: `path=` makes a non-resource request."""
    spec: dict[str, Any] = {"user": user, "groups": groups}
    if "path" in request:
        spec["nonResourceAttributes"] = request
    else:
        spec["resourceAttributes"] = request
    review = control_plane.create(SUBJECT_ACCESS_REVIEWS, {"spec": spec})
    return bool(review["status"].get("allowed"))


def rule_contents(rules: Any) -> list[tuple[tuple[str, ...], ...]]:
    return [
        (r.verbs, r.api_groups, r.resources, r.resource_names, r.non_resource_urls) for r in rules
    ]


def aggregation_disagreements(index: RbacIndex) -> list[str]:
    """Aggregated ClusterRoles whose computed rules differ from what the controller wrote."""
    from kubeproof.analysis.rbac import is_aggregated, listed_rules

    differences = []
    for role in index.cluster_roles():
        if not is_aggregated(role):
            continue
        written = rule_contents(listed_rules(role).rules)
        computed = rule_contents(index.aggregated_rules(role).rules)
        if written != computed:
            differences.append(f"{role.name}: controller wrote {written}, computed {computed}")
    return differences


# -- a seeded, realistic RBAC set -------------------------------------------------------

# (API group, resource, subresources, cluster-scoped)
RESOURCES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("", "pods", ("log", "exec", "attach", "status", "ephemeralcontainers"), False),
    ("", "secrets", (), False),
    ("", "configmaps", (), False),
    ("", "services", ("proxy", "status"), False),
    ("", "serviceaccounts", ("token",), False),
    ("", "persistentvolumeclaims", (), False),
    ("", "events", (), False),
    ("apps", "deployments", ("scale", "status"), False),
    ("apps", "statefulsets", ("scale",), False),
    ("apps", "daemonsets", (), False),
    ("batch", "jobs", (), False),
    ("batch", "cronjobs", (), False),
    ("networking.k8s.io", "networkpolicies", (), False),
    ("networking.k8s.io", "ingresses", (), False),
    ("rbac.authorization.k8s.io", "roles", (), False),
    ("rbac.authorization.k8s.io", "rolebindings", (), False),
    ("rbac.authorization.k8s.io", "clusterroles", (), True),
    ("", "nodes", ("proxy", "status"), True),
    ("", "namespaces", (), True),
    ("", "persistentvolumes", (), True),
    ("certificates.k8s.io", "certificatesigningrequests", ("approval",), True),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", (), True),
    ("example.com", "widgets", ("scale",), False),
)
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
SPECIAL = ("escalate", "bind", "impersonate", "use", "approve")
VERBS = READ + WRITE + SPECIAL
OBJECT_NAMES = ("app-tls", "db", "web", "cache")
URLS = (
    "/metrics",
    "/metrics/cadvisor",
    "/healthz",
    "/healthz/etcd",
    "/livez",
    "/version",
    "/api",
    "/api/v1",
    "/apis",
    "/logs",
    "/logs/kube-apiserver.log",
    "/debug/pprof",
    "/openid/v1/jwks",
)
URL_PATTERNS = ("/metrics", "/logs/*", "/healthz/*", "/debug/*", "/version", "*")
NON_RESOURCE_VERBS = ("get", "post", "put", "delete", "head")


@dataclass
class RbacSet:
    """Generated objects, and the names a question generator draws from."""

    namespaces: list[str]
    objects: list[dict[str, Any]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    service_accounts: list[tuple[str, str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _resource_rule(rng: random.Random) -> dict[str, Any]:
    """A rule over one API group's resources: mostly specific, sometimes wildcarded."""
    group, resource, subresources, _ = rng.choice(RESOURCES)
    same_group = [r for r in RESOURCES if r[0] == group]
    picked = {resource}
    if rng.random() < 0.3:
        picked.add(rng.choice(same_group)[1])
    resources = sorted(picked)
    roll = rng.random()
    if subresources and roll < 0.25:
        resources.append(f"{resource}/{rng.choice(subresources)}")
    elif roll < 0.3:
        resources = [f"*/{rng.choice(('scale', 'status', 'log', 'proxy'))}"]
    elif roll < 0.36:
        resources = ["*"]
    if rng.random() < 0.08:
        verbs = ["*"]
    else:
        pool = rng.choice((READ, READ + WRITE, WRITE, VERBS))
        verbs = sorted(rng.sample(pool, rng.randint(1, min(4, len(pool)))))
    rule: dict[str, Any] = {
        "verbs": verbs,
        "apiGroups": ["*"] if rng.random() < 0.08 else [group],
        "resources": resources,
    }
    if rng.random() < 0.2:
        rule["resourceNames"] = sorted(rng.sample(OBJECT_NAMES, rng.randint(1, 2)))
    return rule


def _url_rule(rng: random.Random) -> dict[str, Any]:
    return {
        "verbs": sorted(rng.sample(NON_RESOURCE_VERBS, rng.randint(1, 2))),
        "nonResourceURLs": sorted(rng.sample(URL_PATTERNS, rng.randint(1, 2))),
    }


def _rules(rng: random.Random, urls: bool, generated: RbacSet) -> list[dict[str, Any]]:
    rules = [_resource_rule(rng) for _ in range(rng.randint(1, 4))]
    if urls and rng.random() < 0.3:
        rules.append(_url_rule(rng))
    generated.rules.extend(rules)
    return rules


def generate_rbac(
    seed: int,
    *,
    namespaces: int = 4,
    bindings: int = 120,
    prefix: str = "kpgen",
) -> RbacSet:
    """A seeded RBAC set with `bindings` bindings over `namespaces` namespaces. Names
    start with `prefix`, so that several sets can share one server."""
    rng = random.Random(seed)
    names = [f"{prefix}-ns{i}" for i in range(namespaces)]
    generated = RbacSet(namespaces=names)
    generated.users = [f"{prefix}-user{i}" for i in range(max(8, bindings // 40))]
    generated.groups = [f"{prefix}-group{i}" for i in range(max(4, bindings // 200))]
    generated.service_accounts = [(ns, f"sa{k}") for ns in names for k in range(3)]
    objects = generated.objects

    # Aggregated ClusterRoles: one over plain roles, one over another aggregated one
    # (transitive), one with a selector nothing matches.
    aggregators = [f"{prefix}-agg{k}" for k in range(3)]
    objects.append(
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(aggregators[0], **{f"{prefix}/agg-top": "true"}),
            "aggregationRule": {
                "clusterRoleSelectors": [{"matchLabels": {f"{prefix}/agg-0": "true"}}]
            },
        }
    )
    objects.append(
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(aggregators[1]),
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {f"{prefix}/agg-1": "true"}},
                    {"matchExpressions": [{"key": f"{prefix}/agg-top", "operator": "Exists"}]},
                ]
            },
        }
    )
    objects.append(
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(aggregators[2]),
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"none": "x"}}]},
        }
    )
    cluster_roles = list(aggregators)
    for k in range(max(12, bindings // 25)):
        name = f"{prefix}-cr{k}"
        labels: dict[str, str] = {}
        if k % 5 == 0:
            labels[f"{prefix}/agg-{(k // 5) % 2}"] = "true"
        objects.append(
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "ClusterRole",
                "metadata": _meta(name, **labels),
                "rules": _rules(rng, True, generated),
            }
        )
        cluster_roles.append(name)
    # A wildcard admin role, as charts often ship.
    objects.append(
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(f"{prefix}-all"),
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        }
    )
    cluster_roles.append(f"{prefix}-all")

    roles: dict[str, list[str]] = {}
    for ns in names:
        roles[ns] = []
        for k in range(max(3, bindings // (8 * namespaces))):
            name = f"{prefix}-role{k}"
            objects.append(
                {
                    "apiVersion": RBAC_API_VERSION,
                    "kind": "Role",
                    "metadata": _meta(name, ns),
                    "rules": _rules(rng, False, generated),
                }
            )
            roles[ns].append(name)

    for k in range(bindings):
        ns = rng.choice(names)
        cluster_binding = rng.random() < 0.2
        subjects = [_subject(rng, generated, ns, cluster_binding) for _ in range(rng.randint(1, 3))]
        if cluster_binding:
            # Broad grants cluster-wide go to narrow roles only, as in a real cluster.
            role = rng.choice(cluster_roles[3:-1] if _broad(subjects) else cluster_roles)
            objects.append(_binding("ClusterRoleBinding", f"{prefix}-crb{k}", None, role, subjects))
        elif rng.random() < 0.5:
            role = rng.choice(cluster_roles)
            objects.append(_binding("RoleBinding", f"{prefix}-rb{k}", ns, role, subjects))
        else:
            role = rng.choice(roles[ns])
            objects.append(_binding("RoleBinding", f"{prefix}-rb{k}", ns, role, subjects, "Role"))
    return generated


def _broad(subjects: list[dict[str, str]]) -> bool:
    return any(s["name"].startswith("system:") for s in subjects)


def _subject(
    rng: random.Random, generated: RbacSet, namespace: str, cluster_binding: bool
) -> dict[str, str]:
    roll = rng.random()
    if roll < 0.35:
        return {
            "kind": "User",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": rng.choice(generated.users),
        }
    if roll < 0.55:
        return {
            "kind": "Group",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": rng.choice(generated.groups),
        }
    if roll < 0.62:
        group = rng.choice(
            (f"system:serviceaccounts:{rng.choice(generated.namespaces)}", "system:serviceaccounts")
        )
        return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}
    account_namespace, account = rng.choice(generated.service_accounts)
    if not cluster_binding and rng.random() < 0.4:
        return {"kind": "ServiceAccount", "name": rng.choice(("sa0", "sa1", "sa2"))}
    return {"kind": "ServiceAccount", "name": account, "namespace": account_namespace}


def _binding(
    kind: str,
    name: str,
    namespace: str | None,
    role: str,
    subjects: list[dict[str, str]],
    role_kind: str = "ClusterRole",
) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": kind,
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }
