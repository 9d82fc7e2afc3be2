"""Escalation paths: what a compromised pod's service account token allows
(rbac.workload-service-account-privileged), and the service accounts a role's pod
creation reaches (rbac.pod-create)."""

from __future__ import annotations

from typing import Any

from checks.helpers import per_subject, run
from checks.test_rbac import crb, deployment, r, rb, role, sa
from kubeproof.checks import find
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.model import Status

CHECK = "rbac.workload-service-account-privileged"


def service_account(name: str, namespace: str = "team", automount: Any = None) -> dict[str, Any]:
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    if automount is not None:
        account["automountServiceAccountToken"] = automount
    return account


def only(check: str, *objects: dict[str, Any]) -> Any:
    [result] = run(check, *objects)
    return result


def test_cluster_admin_token_names_the_path() -> None:
    result = only(
        CHECK,
        deployment("app", "ops"),
        service_account("ops"),
        crb("ops-admin", "cluster-admin", sa("ops", "team")),
    )
    assert result.status is Status.FAIL
    assert result.path == "spec.template.spec.serviceAccountName"
    assert (
        "every permission cluster-wide (ClusterRoleBinding ops-admin -> built-in ClusterRole "
        "cluster-admin rules[0])" in result.message
    )
    assert "not mounted" not in result.message


def test_dangers_through_an_implicit_group_say_which_group() -> None:
    objects = (
        role(
            "debug",
            r(["create"], ["pods/exec"]),
            r(["bind"], ["roles"], ["rbac.authorization.k8s.io"]),
        ),
        rb(
            "all-accounts",
            "Role",
            "debug",
            {"kind": "Group", "name": "system:serviceaccounts:team"},
        ),
        service_account("worker"),
        service_account("worker", "web"),
        deployment("app", "worker"),
        deployment("app", "worker", namespace="web"),
    )
    results = {str(res.subject): res for res in run(CHECK, *objects)}
    failed = results["Deployment/team/app"]
    assert failed.status is Status.FAIL
    assert (
        "escalate, bind or impersonate (bind on roles (rbac.authorization.k8s.io)) in namespace "
        "team (RoleBinding team/all-accounts -> Role team/debug rules[1] via Group "
        "system:serviceaccounts:team)" in failed.message
    )
    assert "run commands in pods (create on pods/exec) in namespace team" in failed.message
    assert results["Deployment/web/app"].status is Status.PASS


def test_a_token_that_is_not_mounted_is_said_not_passed() -> None:
    admin = crb("ops-admin", "cluster-admin", sa("ops", "team"))
    pod_off = deployment("app", "ops")
    pod_off["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    result = only(CHECK, pod_off, service_account("ops"), admin)
    assert result.status is Status.FAIL
    assert (
        "its token is not mounted (the pod sets automountServiceAccountToken false)"
        in result.message
    )
    assert "anyone who can create pods in the namespace can still mount it" in result.message

    account_off = only(
        CHECK, deployment("app", "ops"), service_account("ops", automount=False), admin
    )
    assert account_off.status is Status.FAIL
    assert "ServiceAccount ops sets automountServiceAccountToken false" in account_off.message

    unseen = only(CHECK, deployment("app", "ops"), admin)
    assert "whether its token is mounted is not known" in unseen.message


def test_the_default_service_account_is_judged_when_none_is_named() -> None:
    pod = deployment("app", "x")
    del pod["spec"]["template"]["spec"]["serviceAccountName"]
    result = only(
        CHECK,
        pod,
        role("read", r(["list"], ["secrets"])),
        rb("oops", "Role", "read", sa("default")),
    )
    assert result.status is Status.FAIL
    assert "ServiceAccount team/default" in result.message


def test_cluster_scoped_permissions_through_a_role_binding_grant_nothing() -> None:
    result = only(
        CHECK,
        deployment("app", "agent"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "node-proxy"},
            "rules": [r(["get"], ["nodes/proxy"])],
        },
        rb("local", "ClusterRole", "node-proxy", sa("agent")),
    )
    assert result.status is Status.PASS


def test_a_role_that_is_not_in_the_input_is_not_evaluated() -> None:
    result = only(
        CHECK, deployment("app", "vendor"), rb("v", "ClusterRole", "vendor-role", sa("vendor"))
    )
    assert result.status is Status.NOT_EVALUATED
    assert "RoleBinding team/v -> ClusterRole vendor-role" in result.message


def test_unreadable_bindings_make_it_not_evaluated() -> None:
    objects = [K8sObject.from_raw(deployment("app", "ops"))]
    coverage = Coverage(complete_by_default=False)
    for kind in ("Deployment", "ClusterRole", "Role", "ClusterRoleBinding"):
        coverage.record(kind, "listed")
    coverage.record("RoleBinding", "forbidden", "403")
    inventory = Inventory(objects, coverage)
    check = find(CHECK)
    assert check is not None
    [result] = per_subject(evaluate(inventory, [check], Context(inventory)))
    assert result.status is Status.NOT_EVALUATED
    assert "RoleBinding forbidden" in result.message


def test_hostile_service_account_name_does_not_crash() -> None:
    pod = deployment("app", "x")
    pod["spec"]["template"]["spec"]["serviceAccountName"] = ["not", "a", "name"]
    result = only(CHECK, pod, crb("everyone", "cluster-admin", sa("default", "team")))
    assert result.status is Status.FAIL
    assert "ServiceAccount team/default" in result.message


# -- rbac.pod-create: the service accounts pod creation reaches --------------------------


def test_pod_create_names_the_service_accounts_it_reaches() -> None:
    result = only(
        "rbac.pod-create",
        role("launcher", r(["create"], ["pods"])),
        rb("ci", "Role", "launcher", {"kind": "User", "name": "ci"}),
        service_account("deployer"),
        service_account("web"),
        crb("deployer-admin", "cluster-admin", sa("deployer", "team")),
    )
    assert result.status is Status.FAIL
    assert (
        'allows create on pods (verbs: create; apiGroups: ""; resources: pods); pods it '
        "creates in namespace team may run as any service "
        "account there, reaching ServiceAccount team/deployer: every permission cluster-wide "
        "(ClusterRoleBinding deployer-admin -> built-in ClusterRole cluster-admin rules[0])"
        in result.message
    )
    assert "team/web" not in result.message


def test_pod_create_with_no_dangerous_account_says_so() -> None:
    result = only(
        "rbac.pod-create",
        role("launcher", r(["create"], ["deployments"], ["apps"])),
        rb("ci", "Role", "launcher", {"kind": "User", "name": "ci"}),
        service_account("web"),
    )
    assert result.status is Status.FAIL
    assert (
        "none of the 2 in the input holding a dangerous permission" in result.message
    )  # web and default


def test_pod_create_cluster_wide_reaches_every_namespace() -> None:
    results = run(
        "rbac.pod-create",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "launcher"},
            "rules": [r(["create"], ["pods"])],
        },
        crb("ci", "launcher", {"kind": "User", "name": "ci"}),
        deployment("app", "reader", namespace="web"),
        role("secrets", r(["get"], ["secrets"]), namespace="web"),
        rb("reader", "Role", "secrets", sa("reader"), namespace="web"),
    )
    [result] = [res for res in results if res.subject.name == "launcher"]
    assert "pods it creates in every namespace" in result.message
    assert "reaching ServiceAccount web/reader: read secrets" in result.message


def test_unbound_pod_create_role_keeps_its_plain_message() -> None:
    result = only("rbac.pod-create", role("launcher", r(["create"], ["pods"])))
    assert result.status is Status.FAIL
    assert "pods it creates" not in result.message
