"""RBAC checks: a passing and a failing manifest (or more) for every check, and the
paths, exemptions and not-evaluated cases that make the results trustworthy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from checks.helpers import failing, inventory_of, per_subject, run, run_all
from kubeproof.checks import catalogue, find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.model import Result, Status

API = "rbac.authorization.k8s.io/v1"


def cluster_role(
    name: str,
    *rules: dict[str, Any],
    labels: dict[str, str] | None = None,
    selectors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": API,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "rules": list(rules),
    }
    if selectors is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return role


def role(name: str, *rules: dict[str, Any], namespace: str = "team") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": list(rules),
    }


def r(
    verbs: list[str],
    resources: list[str],
    groups: list[str] | None = None,
    names: list[str] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "verbs": verbs,
        "apiGroups": [""] if groups is None else groups,
        "resources": resources,
    }
    if names is not None:
        rule["resourceNames"] = names
    return rule


def urls(verbs: list[str], paths: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "nonResourceURLs": paths}


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def deployment(name: str, service_account: str, namespace: str = "team") -> dict[str, Any]:
    pod = {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "a"}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": pod}},
    }


def sa(name: str, namespace: str | None = None) -> dict[str, str]:
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace:
        subject["namespace"] = namespace
    return subject


def crb(name: str, role_name: str, *subjects: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": list(subjects),
    }


def rb(
    name: str, role_kind: str, role_name: str, *subjects: dict[str, str], namespace: str = "team"
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


@dataclass(frozen=True)
class Case:
    check: str
    name: str
    objects: tuple[dict[str, Any], ...]
    expected: dict[str, str | None]  # subject -> status, None: no result (not applicable)
    says: tuple[str, ...] = ()  # fragments the first subject's message must contain

    def __str__(self) -> str:
        return f"{self.check}:{self.name}"


def case(
    check: str,
    name: str,
    *objects: dict[str, Any],
    says: tuple[str, ...] = (),
    **expected: str | None,
) -> Case:
    # Keyword names use __ for "/" and _ for "-": Kind__name or Kind__namespace__name.
    keys = {k.replace("__", "/").replace("-", "_"): v for k, v in expected.items()}
    return Case(check, name, objects, keys, says)


CASES = [
    # -- rbac.cluster-admin-bound -------------------------------------------------------
    case(
        "rbac.cluster-admin-bound",
        "fail-builtin-cluster-admin-to-user",
        crb("ops-admins", "cluster-admin", user("alice")),
        ClusterRoleBinding__ops_admins="fail",
        says=(
            "ClusterRoleBinding ops-admins -> built-in ClusterRole cluster-admin rules[0] "
            "grants User alice every permission cluster-wide",
        ),
    ),
    case(
        "rbac.cluster-admin-bound",
        "fail-rolebinding-scoped-to-namespace",
        rb("team-admins", "ClusterRole", "cluster-admin", group("team-leads")),
        RoleBinding__team__team_admins="fail",
        says=("grants Group team-leads every permission in namespace team",),
    ),
    case(
        "rbac.cluster-admin-bound",
        "fail-equivalent-custom-role",
        cluster_role("superuser", r(["*"], ["*"], ["*"])),
        crb("su", "superuser", user("bob")),
        ClusterRoleBinding__su="fail",
        says=("ClusterRoleBinding su -> ClusterRole superuser rules[0] grants User bob",),
    ),
    case(
        "rbac.cluster-admin-bound",
        "fail-through-aggregation",
        cluster_role("platform", selectors=[{"matchLabels": {"to-platform": "true"}}]),
        cluster_role("all", r(["*"], ["*"], ["*"]), labels={"to-platform": "true"}),
        crb("platform", "platform", group("platform-team")),
        ClusterRoleBinding__platform="fail",
        says=("ClusterRole all rules[0], aggregated into ClusterRole platform",),
    ),
    case(
        "rbac.cluster-admin-bound",
        "pass-view",
        crb("readers", "view", user("alice")),
        ClusterRoleBinding__readers="pass",
    ),
    case(
        "rbac.cluster-admin-bound",
        "pass-service-accounts-are-the-other-check",
        crb("ci", "cluster-admin", sa("deployer", "ci")),
        ClusterRoleBinding__ci="pass",
    ),
    case(
        "rbac.cluster-admin-bound",
        "pass-wildcards-split-across-rules",
        cluster_role("wide", r(["*"], ["pods"], ["*"]), r(["get"], ["*"], ["*"])),
        crb("wide", "wide", user("alice")),
        ClusterRoleBinding__wide="pass",
    ),
    case(
        "rbac.cluster-admin-bound",
        "not-applicable-bootstrap-binding",
        crb("cluster-admin", "cluster-admin", group("system:masters")),
        ClusterRoleBinding__cluster_admin=None,
    ),
    case(
        "rbac.cluster-admin-bound",
        "fail-system-named-binding-to-a-person",
        crb("system:backdoor", "cluster-admin", user("system:kube-scheduler"), user("mallory")),
        **{"ClusterRoleBinding__system:backdoor": "fail"},
        says=("grants User mallory",),
    ),
    case(
        "rbac.cluster-admin-bound",
        "not-evaluated-unknown-role",
        crb("mystery", "custom-role", user("alice")),
        ClusterRoleBinding__mystery="not_evaluated",
        says=(
            "ClusterRole custom-role, referenced by ClusterRoleBinding mystery, is not in "
            "the input",
        ),
    ),
    # -- rbac.cluster-admin-service-account ---------------------------------------------
    case(
        "rbac.cluster-admin-service-account",
        "fail-cluster-admin-to-service-account",
        crb("ci", "cluster-admin", sa("deployer", "ci"), user("alice")),
        ClusterRoleBinding__ci="fail",
        says=("grants ServiceAccount ci/deployer every permission cluster-wide",),
    ),
    case(
        "rbac.cluster-admin-service-account",
        "fail-namespace-defaulted",
        rb("app-admin", "ClusterRole", "cluster-admin", sa("app")),
        RoleBinding__team__app_admin="fail",
        says=("ServiceAccount team/app every permission in namespace team",),
    ),
    case(
        "rbac.cluster-admin-service-account",
        "pass-edit",
        rb("app-edit", "ClusterRole", "edit", sa("app")),
        RoleBinding__team__app_edit="pass",
    ),
    case(
        "rbac.cluster-admin-service-account",
        "not-applicable-kubernetes-component",
        crb("system:controller:thing", "cluster-admin", sa("thing-controller", "kube-system")),
        **{"ClusterRoleBinding__system:controller:thing": None},
    ),
    # -- rbac.system-masters-bound ------------------------------------------------------
    case(
        "rbac.system-masters-bound",
        "fail-custom-binding",
        crb("masters-view", "view", group("system:masters")),
        ClusterRoleBinding__masters_view="fail",
        says=("ClusterRoleBinding masters-view -> ClusterRole view binds Group system:masters",),
    ),
    case(
        "rbac.system-masters-bound",
        "pass-other-group",
        crb("admins", "cluster-admin", group("admins")),
        ClusterRoleBinding__admins="pass",
    ),
    case(
        "rbac.system-masters-bound",
        "not-applicable-bootstrap-binding",
        crb("cluster-admin", "cluster-admin", group("system:masters")),
        ClusterRoleBinding__cluster_admin=None,
    ),
    # -- rbac.anonymous-or-all-users-bound ----------------------------------------------
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-anonymous-unknown-role",
        crb("anon-view", "view", user("system:anonymous")),
        ClusterRoleBinding__anon_view="fail",
        says=(
            "grants User system:anonymous (every anonymous request) a role that is not in "
            "the input",
        ),
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-authenticated-read-secrets",
        cluster_role("reader", r(["get", "list"], ["secrets"])),
        crb("everyone-reads", "reader", group("system:authenticated")),
        ClusterRoleBinding__everyone_reads="fail",
        says=(
            "ClusterRoleBinding everyone-reads -> ClusterRole reader rules[0] grants Group "
            "system:authenticated (every authenticated user) more than discovery "
            "cluster-wide: verbs: get, list",
        ),
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-system-name-is-no-excuse",
        cluster_role("system:leak", r(["get"], ["configmaps"])),
        crb("system:leak", "system:leak", group("system:unauthenticated")),
        **{"ClusterRoleBinding__system:leak": "fail"},
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-every-service-account",
        rb("sa-read", "Role", "pods-reader", group("system:serviceaccounts")),
        role("pods-reader", r(["get"], ["pods"])),
        RoleBinding__team__sa_read="fail",
        says=("(every service account in the cluster)",),
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-metrics-url-cluster-wide",
        cluster_role("metrics", urls(["get"], ["/metrics"])),
        crb("public-metrics", "metrics", user("system:anonymous")),
        ClusterRoleBinding__public_metrics="fail",
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "pass-public-info-viewer-builtin",
        crb(
            "system:public-info-viewer",
            "system:public-info-viewer",
            group("system:authenticated"),
            group("system:unauthenticated"),
        ),
        **{"ClusterRoleBinding__system:public-info-viewer": "pass"},
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "pass-discovery-only-custom-role",
        cluster_role(
            "health",
            urls(["get"], ["/healthz", "/version"]),
            r(["create"], ["selfsubjectaccessreviews"], ["authorization.k8s.io"]),
        ),
        crb("health", "health", user("system:anonymous")),
        ClusterRoleBinding__health="pass",
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "pass-url-rule-is-dead-in-a-rolebinding",
        cluster_role("metrics", urls(["get"], ["/metrics"])),
        rb("metrics", "ClusterRole", "metrics", group("system:authenticated")),
        RoleBinding__team__metrics="pass",
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "pass-kubeadm-cluster-info",
        role(
            "cluster-info",
            r(["get"], ["configmaps"], names=["cluster-info"]),
            namespace="kube-public",
        ),
        rb(
            "cluster-info",
            "Role",
            "cluster-info",
            user("system:anonymous"),
            namespace="kube-public",
        ),
        RoleBinding__kube_public__cluster_info="pass",
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "fail-cluster-info-elsewhere-is-not-public",
        role("cluster-info", r(["get"], ["configmaps"], names=["cluster-info"])),
        rb("cluster-info", "Role", "cluster-info", user("system:anonymous")),
        RoleBinding__team__cluster_info="fail",
    ),
    case(
        "rbac.anonymous-or-all-users-bound",
        "pass-named-users",
        cluster_role("reader", r(["get"], ["secrets"])),
        crb("readers", "reader", user("alice")),
        ClusterRoleBinding__readers="pass",
    ),
    # -- rbac.default-service-account-bound ---------------------------------------------
    case(
        "rbac.default-service-account-bound",
        "fail-default-in-binding-namespace",
        rb("default-view", "ClusterRole", "view", sa("default")),
        RoleBinding__team__default_view="fail",
        says=(
            "RoleBinding team/default-view -> ClusterRole view grants ServiceAccount "
            "team/default in namespace team",
        ),
    ),
    case(
        "rbac.default-service-account-bound",
        "fail-kube-system-default-even-if-system",
        crb("system:sneaky", "view", sa("default", "kube-system")),
        **{"ClusterRoleBinding__system:sneaky": "fail"},
    ),
    case(
        "rbac.default-service-account-bound",
        "pass-dedicated-account",
        rb("app-view", "ClusterRole", "view", sa("app")),
        RoleBinding__team__app_view="pass",
    ),
    # -- rbac.wildcard-rules ------------------------------------------------------------
    case(
        "rbac.wildcard-rules",
        "fail-wildcard-verbs",
        role("all-verbs", r(["*"], ["configmaps"])),
        Role__team__all_verbs="fail",
        says=(
            "Role team/all-verbs rules[0] (bound by no binding in the input) uses a "
            "wildcard in verbs",
        ),
    ),
    case(
        "rbac.wildcard-rules",
        "fail-star-slash-subresource",
        cluster_role("scaler", r(["update"], ["*/scale"], ["apps"])),
        ClusterRole__scaler="fail",
        says=("wildcard in resources",),
    ),
    case(
        "rbac.wildcard-rules",
        "fail-wildcard-groups-and-urls",
        cluster_role("wide", r(["get"], ["pods"], ["*"]), urls(["get"], ["*"])),
        ClusterRole__wide="fail",
        says=(
            "rules[0] (bound by no binding in the input) uses a wildcard in apiGroups",
            "rules[1] (bound by no binding in the input) uses a wildcard in nonResourceURLs",
        ),
    ),
    case(
        "rbac.wildcard-rules",
        "fail-through-aggregation-pointing-at-the-selector",
        cluster_role("agg", selectors=[{"matchLabels": {"a": "b"}}]),
        cluster_role("contrib", r(["*"], ["pods"]), labels={"a": "b"}),
        crb("agg", "agg", user("alice")),
        ClusterRole__agg="fail",
        ClusterRole__contrib="fail",
        says=(
            "ClusterRoleBinding agg -> ClusterRole contrib rules[0], aggregated into "
            "ClusterRole agg",
        ),
    ),
    case(
        "rbac.wildcard-rules",
        "pass-explicit",
        role("explicit", r(["get", "list"], ["configmaps", "pods"]), urls(["get"], ["/healthz/*"])),
        Role__team__explicit="pass",
    ),
    case(
        "rbac.wildcard-rules",
        "not-applicable-kubernetes-roles",
        cluster_role("system:controller:x", r(["*"], ["*"], ["*"])),
        cluster_role(
            "admin", r(["*"], ["*"]), labels={"kubernetes.io/bootstrapping": "rbac-defaults"}
        ),
        **{"ClusterRole__system:controller:x": None, "ClusterRole__admin": None},
    ),
    case(
        "rbac.wildcard-rules",
        "judged-when-a-builtin-name-lacks-the-bootstrap-label",
        cluster_role("admin", r(["*"], ["*"])),
        ClusterRole__admin="fail",
    ),
    # -- rbac.secrets-read --------------------------------------------------------------
    case(
        "rbac.secrets-read",
        "fail-get-secrets",
        role("reader", r(["get"], ["secrets"])),
        rb("reader", "Role", "reader", sa("app")),
        Role__team__reader="fail",
        says=(
            "RoleBinding team/reader -> Role team/reader rules[0] allows get on secrets "
            '(verbs: get; apiGroups: ""; resources: secrets)',
        ),
    ),
    case(
        "rbac.secrets-read",
        "fail-wildcard-resources",
        cluster_role("core-reader", r(["list", "watch"], ["*"])),
        ClusterRole__core_reader="fail",
        says=("allows list, watch on secrets",),
    ),
    case(
        "rbac.secrets-read",
        "pass-named-secrets",
        role("one-secret", r(["get"], ["secrets"], names=["app-tls"])),
        Role__team__one_secret="pass",
    ),
    case(
        "rbac.secrets-read",
        "pass-other-group",
        role("not-core", r(["get"], ["secrets"], ["example.com"])),
        Role__team__not_core="pass",
    ),
    case(
        "rbac.secrets-read",
        "not-evaluated-unreadable-rule",
        role("broken", {"verbs": "get", "apiGroups": [""], "resources": ["secrets"]}),
        Role__team__broken="not_evaluated",
        says=("rules[0].verbs is not a list",),
    ),
    # -- rbac.pod-create ----------------------------------------------------------------
    case(
        "rbac.pod-create",
        "fail-create-pods",
        role("runner", r(["create", "get"], ["pods"])),
        Role__team__runner="fail",
        says=("allows create on pods",),
    ),
    case(
        "rbac.pod-create",
        "fail-create-deployments",
        role("deployer", r(["create", "update"], ["deployments", "statefulsets"], ["apps"])),
        Role__team__deployer="fail",
        says=("allows create on deployments, statefulsets (apps)",),
    ),
    case(
        "rbac.pod-create",
        "pass-read-only",
        role(
            "viewer", r(["get", "list", "watch"], ["pods"]), r(["get"], ["deployments"], ["apps"])
        ),
        Role__team__viewer="pass",
    ),
    case(
        "rbac.pod-create",
        "pass-create-with-resource-names-grants-nothing",
        role("named", r(["create"], ["pods"], names=["x"])),
        Role__team__named="pass",
    ),
    # -- rbac.pod-exec ------------------------------------------------------------------
    case(
        "rbac.pod-exec",
        "fail-exec",
        role("debugger", r(["create"], ["pods/exec"])),
        Role__team__debugger="fail",
        says=("allows create on pods/exec",),
    ),
    case(
        "rbac.pod-exec",
        "fail-get-attach",
        role("attacher", r(["get"], ["pods/attach"])),
        Role__team__attacher="fail",
        says=("allows get on pods/attach",),
    ),
    case(
        "rbac.pod-exec",
        "fail-ephemeral-containers",
        cluster_role("ephemeral", r(["patch"], ["pods/ephemeralcontainers"])),
        ClusterRole__ephemeral="fail",
    ),
    case(
        "rbac.pod-exec",
        "fail-star-slash-exec-on-one-pod",
        role("one-pod", r(["create"], ["*/exec"], names=["debug-pod"])),
        Role__team__one_pod="fail",
        says=("resourceNames: debug-pod",),
    ),
    case(
        "rbac.pod-exec",
        "pass-logs",
        role("logs", r(["get"], ["pods", "pods/log"])),
        Role__team__logs="pass",
    ),
    # -- rbac.escalate-bind-impersonate -------------------------------------------------
    case(
        "rbac.escalate-bind-impersonate",
        "fail-bind-named-cluster-roles",
        role(
            "delegator",
            r(["bind"], ["clusterroles"], ["rbac.authorization.k8s.io"], names=["view"]),
        ),
        Role__team__delegator="fail",
        says=("allows bind on clusterroles (rbac.authorization.k8s.io)", "resourceNames: view"),
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "fail-escalate-roles",
        role("escalator", r(["escalate"], ["roles"], ["rbac.authorization.k8s.io"])),
        Role__team__escalator="fail",
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "fail-impersonate-users",
        cluster_role("sudo", r(["impersonate"], ["users", "groups"])),
        ClusterRole__sudo="fail",
        says=("allows impersonate on users, groups",),
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "fail-impersonate-service-accounts-in-a-role",
        role("as-sa", r(["impersonate"], ["serviceaccounts"])),
        Role__team__as_sa="fail",
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "fail-constrained-impersonation",
        cluster_role(
            "constrained",
            r(["impersonate:serviceaccount"], ["serviceaccounts"], ["authentication.k8s.io"]),
        ),
        ClusterRole__constrained="fail",
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "pass-role-cannot-impersonate-users",
        role(
            "dead",
            r(["impersonate"], ["users"]),
            r(["escalate"], ["clusterroles"], ["rbac.authorization.k8s.io"]),
        ),
        Role__team__dead="pass",
    ),
    case(
        "rbac.escalate-bind-impersonate",
        "pass-manage-bindings-without-bind",
        role("binder", r(["create", "update"], ["rolebindings"], ["rbac.authorization.k8s.io"])),
        Role__team__binder="pass",
    ),
    # -- rbac.persistent-volume-create --------------------------------------------------
    case(
        "rbac.persistent-volume-create",
        "fail-create-pv",
        cluster_role("provisioner", r(["create", "delete"], ["persistentvolumes"])),
        ClusterRole__provisioner="fail",
        says=("allows create on persistentvolumes",),
    ),
    case(
        "rbac.persistent-volume-create",
        "pass-claims-only-and-roles-not-judged",
        cluster_role("claims", r(["create"], ["persistentvolumeclaims"])),
        role("pv", r(["create"], ["persistentvolumes"])),
        ClusterRole__claims="pass",
    ),
    # -- rbac.node-proxy ----------------------------------------------------------------
    case(
        "rbac.node-proxy",
        "fail-get-node-proxy",
        cluster_role("kubelet-reader", r(["get"], ["nodes/proxy"])),
        ClusterRole__kubelet_reader="fail",
        says=("allows get on nodes/proxy",),
    ),
    case(
        "rbac.node-proxy",
        "fail-core-wildcard",
        cluster_role("core-all", r(["get"], ["*"])),
        ClusterRole__core_all="fail",
    ),
    case(
        "rbac.node-proxy",
        "pass-metrics-and-stats",
        cluster_role("scraper", r(["get"], ["nodes/metrics", "nodes/stats", "nodes"])),
        ClusterRole__scraper="pass",
    ),
    # -- rbac.csr-approval --------------------------------------------------------------
    case(
        "rbac.csr-approval",
        "fail-approval-subresource",
        cluster_role(
            "approver",
            r(["update"], ["certificatesigningrequests/approval"], ["certificates.k8s.io"]),
        ),
        ClusterRole__approver="fail",
        says=("allows update on certificatesigningrequests/approval (certificates.k8s.io)",),
    ),
    case(
        "rbac.csr-approval",
        "fail-approve-signer",
        cluster_role(
            "signer",
            r(
                ["approve"],
                ["signers"],
                ["certificates.k8s.io"],
                names=["kubernetes.io/kube-apiserver-client"],
            ),
        ),
        ClusterRole__signer="fail",
    ),
    case(
        "rbac.csr-approval",
        "pass-request-certificates",
        cluster_role(
            "requester",
            r(["create", "get"], ["certificatesigningrequests"], ["certificates.k8s.io"]),
        ),
        ClusterRole__requester="pass",
    ),
    # -- rbac.webhook-config-write ------------------------------------------------------
    case(
        "rbac.webhook-config-write",
        "fail-patch-mutating-webhooks",
        cluster_role(
            "hooker",
            r(
                ["patch"],
                ["mutatingwebhookconfigurations"],
                ["admissionregistration.k8s.io"],
                names=["my-hook"],
            ),
        ),
        ClusterRole__hooker="fail",
        says=("allows patch on mutatingwebhookconfigurations (admissionregistration.k8s.io)",),
    ),
    case(
        "rbac.webhook-config-write",
        "fail-delete-admission-policies",
        cluster_role(
            "unguard",
            r(["delete"], ["validatingadmissionpolicies"], ["admissionregistration.k8s.io"]),
        ),
        ClusterRole__unguard="fail",
    ),
    case(
        "rbac.webhook-config-write",
        "pass-read-only",
        cluster_role(
            "auditor", r(["get", "list", "watch"], ["*"], ["admissionregistration.k8s.io"])
        ),
        ClusterRole__auditor="pass",
    ),
    # -- rbac.service-account-token-create ----------------------------------------------
    case(
        "rbac.service-account-token-create",
        "fail-token-create",
        role("minter", r(["create"], ["serviceaccounts/token"], names=["builder"])),
        Role__team__minter="fail",
        says=("allows create on serviceaccounts/token",),
    ),
    case(
        "rbac.service-account-token-create",
        "pass-create-service-accounts",
        role("sa-admin", r(["create", "get"], ["serviceaccounts"])),
        Role__team__sa_admin="pass",
    ),
    # -- rbac.workload-service-account-privileged --------------------------------------
    case(
        "rbac.workload-service-account-privileged",
        "fail-pods-read-secrets",
        deployment("app", "reader"),
        role("secrets", r(["get", "list"], ["secrets"])),
        rb("app-secrets", "Role", "secrets", sa("reader")),
        Deployment__team__app="fail",
        says=(
            "pods run as ServiceAccount team/reader, whose token gives a compromised "
            "container: read secrets (get, list on secrets) in namespace team "
            "(RoleBinding team/app-secrets -> Role team/secrets rules[0])",
        ),
    ),
    case(
        "rbac.workload-service-account-privileged",
        "pass-config-reader",
        deployment("app", "reader"),
        role("config", r(["get", "list", "watch"], ["configmaps"])),
        rb("app-config", "Role", "config", sa("reader")),
        Deployment__team__app="pass",
    ),
]


def _subject_key(result: Result) -> str:
    return str(result.subject).replace("-", "_")


@pytest.mark.parametrize("c", CASES, ids=str)
def test_case(c: Case) -> None:
    results = {_subject_key(res): res for res in run(c.check, *c.objects)}
    for subject, status in c.expected.items():
        if status is None:
            assert subject not in results, results[subject].message
            continue
        assert subject in results, f"no result for {subject}: {sorted(results)}"
        result = results[subject]
        assert result.status.value == status, result.message
    first = results.get(next(iter(c.expected)))
    for fragment in c.says:
        assert first is not None and fragment in first.message, first


def test_every_check_has_a_passing_and_a_failing_case() -> None:
    rbac_checks = {c.id for c in catalogue() if c.spec.group == "rbac"}
    assert len(rbac_checks) >= 14
    for check_id in rbac_checks:
        statuses = {s for c in CASES if c.check == check_id for s in c.expected.values()}
        assert {"pass", "fail"} <= statuses, check_id


# -- binding-level details ----------------------------------------------------------------


def test_each_offending_subject_is_a_violation_at_its_path() -> None:
    results = run(
        "rbac.cluster-admin-bound",
        crb("admins", "cluster-admin", sa("x", "ns"), user("alice"), group("ops")),
    )
    [result] = failing(results)
    assert result.path == "subjects[1]"
    assert [v["path"] for v in result.extra["violations"]] == ["subjects[1]", "subjects[2]"]


def test_kubernetes_own_binding_is_judged_only_for_other_subjects() -> None:
    [result] = run(
        "rbac.cluster-admin-bound",
        crb("cluster-admin", "cluster-admin", group("system:masters"), user("intruder")),
    )
    assert result.status is Status.FAIL
    assert "system:masters" not in result.message and "User intruder" in result.message


def test_a_missing_role_names_the_coverage_gap() -> None:
    objects = [K8sObject.from_raw(crb("b", "custom", user("alice")))]
    coverage = Coverage(complete_by_default=False)
    coverage.record("ClusterRoleBinding", "listed")
    coverage.record("ClusterRole", "forbidden", "403 from the API server")
    inv = Inventory(objects, coverage)
    check = find("rbac.cluster-admin-bound")
    assert check is not None
    [result] = per_subject(evaluate(inv, [check], Context(inv)))
    assert result.status is Status.NOT_EVALUATED
    assert "ClusterRole forbidden (403 from the API server)" in (result.reason or "")


def test_a_cluster_role_binding_to_a_role_is_not_evaluated() -> None:
    doc = crb("odd", "x", user("alice"))
    doc["roleRef"]["kind"] = "Role"
    [result] = run("rbac.cluster-admin-bound", doc, role("x", r(["*"], ["*"], ["*"])))
    assert result.status is Status.NOT_EVALUATED
    assert "cannot reference a Role" in result.message


def test_malformed_subjects_are_not_passed() -> None:
    doc = rb("odd", "ClusterRole", "view")
    doc["subjects"] = [{"kind": "ServiceAccount"}, "default"]
    [result] = run("rbac.default-service-account-bound", doc)
    assert result.status is Status.NOT_EVALUATED


def test_a_binding_with_no_subjects_passes() -> None:
    [result] = run("rbac.default-service-account-bound", rb("empty", "ClusterRole", "view"))
    assert result.status is Status.PASS


# -- role-level details -------------------------------------------------------------------


def test_every_offending_rule_is_reported_not_only_the_first() -> None:
    [result] = run(
        "rbac.secrets-read",
        role("r", r(["get"], ["secrets"]), r(["get"], ["pods"]), r(["list"], ["*"])),
    )
    assert result.status is Status.FAIL
    assert [v["path"] for v in result.extra["violations"]] == ["rules[0]", "rules[2]"]


def test_aggregated_rules_point_at_the_selector_that_pulled_them_in() -> None:
    results = run(
        "rbac.secrets-read",
        cluster_role(
            "agg",
            r(["get"], ["pods"]),
            selectors=[{"matchLabels": {"x": "y"}}, {"matchLabels": {"to-agg": "true"}}],
        ),
        cluster_role("contrib", r(["get"], ["secrets"]), labels={"to-agg": "true"}),
    )
    by_name = {res.subject.name: res for res in results}
    assert by_name["agg"].path == "aggregationRule.clusterRoleSelectors[1]"
    assert (
        "ClusterRole contrib rules[0], aggregated into ClusterRole agg by "
        "clusterRoleSelectors[1]" in by_name["agg"].message
    )
    assert by_name["contrib"].path == "rules[0]"
    assert "(aggregated into ClusterRole agg)" in by_name["contrib"].message


def test_bindings_are_named_on_the_role_message() -> None:
    objects = [cluster_role("reader", r(["get"], ["secrets"]))]
    objects += [
        rb(f"b{i}", "ClusterRole", "reader", user("u"), namespace=f"ns{i}") for i in range(5)
    ]
    [result] = run("rbac.secrets-read", *objects)
    assert result.message.startswith(
        "RoleBinding ns0/b0, RoleBinding ns1/b1, RoleBinding ns2/b2, 2 more -> "
        "ClusterRole reader rules[0]"
    )


def test_cluster_scoped_checks_do_not_judge_roles() -> None:
    assert run("rbac.node-proxy", role("x", r(["*"], ["*"], ["*"]))) == []


def test_system_roles_give_no_role_level_result() -> None:
    assert run("rbac.secrets-read", cluster_role("system:node", r(["get"], ["secrets"]))) == []


# -- hostile input ------------------------------------------------------------------------

HOSTILE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: h1, labels: [not, a, map]}
rules: {verbs: ["*"]}
aggregationRule: [1, 2]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: h2}
rules: [null, 7, {verbs: [null, {}], resources: "pods", apiGroups: 3}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: h3}
roleRef: [ClusterRole, cluster-admin]
subjects: {kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: h4}
roleRef: {kind: 5, name: null}
subjects: [null, {kind: Group, name: 9}, {kind: User, name: system:anonymous}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: h5}
aggregationRule: {clusterRoleSelectors: [{matchExpressions: [{key: a, operator: In}]}, null]}
"""


def test_hostile_objects_never_crash_nor_pass() -> None:
    results = [res for res in run_all(HOSTILE) if res.check.group == "rbac"]
    assert len(results) == 5 * 2 + 10 * 2 + 6  # bindings, cluster roles, the role
    for res in results:
        assert res.status is Status.NOT_EVALUATED, (res.check.id, res.subject, res.message)
        assert not (res.reason or "").startswith("check error"), res.reason


def test_the_catalogue_entries_are_complete() -> None:
    for check in catalogue():
        if check.spec.group != "rbac":
            continue
        spec = check.spec
        if spec.id == "rbac.workload-service-account-privileged":
            assert spec.scope == "workload" and set(spec.needs) == {
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            }
        else:
            assert spec.scope == "object"
            assert set(spec.kinds) in (
                {"ClusterRoleBinding", "RoleBinding"},
                {"ClusterRole", "Role"},
                {"ClusterRole"},
            )
        assert spec.remediation and spec.description
        for rationale in spec.criteria.values():
            assert rationale.endswith(".") and rationale.count(". ") == 0


def test_yaml_fixture_style_input_works_too() -> None:
    text = yaml.safe_dump_all([role("x", r(["get"], ["secrets"]))])
    assert [res.status for res in run("rbac.secrets-read", text)] == [Status.FAIL]
    assert len(inventory_of(text)) == 1
