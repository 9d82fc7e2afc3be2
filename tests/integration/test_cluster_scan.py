"""`kubeproof scan --cluster` against a real API server: findings attach to top owners,
coverage says what each identity could read, and an unreadable cluster never looks clean."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import REPO, ControlPlane, wait_for

from kubeproof.cli.main import main
from kubeproof.sources import cluster
from kubeproof.sources.cluster import SCANNED_KINDS, ApiClient, discover, load_cluster
from kubeproof.sources.kubeconfig import load_connection

pytestmark = pytest.mark.integration

RBAC = "/apis/rbac.authorization.k8s.io/v1"
RESTRICTED_USER = "kp-restricted-reader"
SECRET_VALUE = "kp-" + "never-read-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    """A namespace with a privileged Deployment (and its ReplicaSet and pods), a
    NetworkPolicy, and a ServiceAccount bound to cluster-admin."""
    name = f"kp-scan-{uuid.uuid4().hex[:8]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    app = {"app": "web"}
    control_plane.create(
        f"/apis/apps/v1/namespaces/{name}/deployments",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": app},
                "template": {
                    "metadata": {"labels": app},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx:1.27",
                                "securityContext": {"privileged": True},
                            }
                        ]
                    },
                },
            },
        },
    )
    control_plane.create(
        f"/apis/networking.k8s.io/v1/namespaces/{name}/networkpolicies",
        {
            "metadata": {"name": "default-deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
    )
    control_plane.create(
        f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "ops"}}
    )
    control_plane.create(
        f"{RBAC}/clusterrolebindings",
        {
            "metadata": {"name": f"{name}-ops-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "ops", "namespace": name}],
        },
    )  # fmt: skip

    control_plane.create(
        f"/api/v1/namespaces/{name}/secrets",
        {"metadata": {"name": "app"}, "stringData": {"password": SECRET_VALUE}},
    )
    control_plane.create(
        f"/api/v1/namespaces/{name}/secrets",
        {
            "metadata": {
                "name": "ops-token",
                "annotations": {"kubernetes.io/service-account.name": "ops"},
            },
            "type": "kubernetes.io/service-account-token",
        },
    )

    def pods_running() -> bool:
        pods = control_plane.get(f"/api/v1/namespaces/{name}/pods").json()["items"]
        sets = control_plane.get(f"/apis/apps/v1/namespaces/{name}/replicasets").json()["items"]
        return len(pods) == 2 and len(sets) == 1

    wait_for(pods_running, "the Deployment's ReplicaSet and two pods", timeout_s=30)
    return name


def scan(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(
        ["scan", "--cluster", "--kubeconfig", str(kubeconfig), "-o", "json", "--fail-on", "none",
         *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    report = json.loads(captured.out) if captured.out.strip() else {}
    return code, report, captured.err


def namespace_results(report: dict[str, Any], check: str, namespace: str) -> list[Any]:
    return [
        r
        for r in report["results"]
        if r["check"] == check and r["subject"] == {"apiVersion": "v1", "kind": "Namespace",
                                                     "namespace": None, "name": namespace}
    ]  # fmt: skip


def coverage_of(report: dict[str, Any]) -> dict[str, str]:
    return {c["kind"]: c["state"] for c in report["scan"]["coverage"]}


def test_admin_scan_judges_the_deployment_not_its_pods(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, err = scan(capsys, control_plane.admin_kubeconfig)
    assert code == 0, err
    coverage = coverage_of(report)
    assert coverage["Deployment"] == "listed"
    assert coverage["Pod"] == "listed"
    assert {kind for kind, state in coverage.items() if state != "listed"} == set()
    secrets = [c for c in report["scan"]["coverage"] if c["kind"] == "Secret"]
    assert secrets == [{"kind": "Secret", "state": "listed", "detail": "metadata only"}]
    assert report["scan"]["sources"][0].startswith("cluster kubeproof-dev ")

    mine = [r for r in report["results"] if r["subject"]["namespace"] == namespace]
    privileged = [r for r in mine if r["check"] == "pss.privileged"]
    assert [(r["status"], r["subject"]["kind"], r["subject"]["name"]) for r in privileged] == [
        ("fail", "Deployment", "web")
    ]
    assert privileged[0]["location"] is None
    # Owner folding: the ReplicaSet and the two pods are judged as the Deployment.
    assert not [r for r in mine if r["subject"]["kind"] in ("Pod", "ReplicaSet")]
    workloads = [w for w in report["scan"]["workloads"] if w["namespace"] == namespace]
    assert workloads == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "namespace": namespace,
            "name": "web",
            "pods": 2,
        }
    ]

    admin_bound = [
        r
        for r in report["results"]
        if r["check"] == "rbac.cluster-admin-service-account"
        and r["subject"]["name"] == f"{namespace}-ops-admin"
    ]
    assert [r["status"] for r in admin_bound] == ["fail"]
    no_policy = namespace_results(report, "network.namespace-without-network-policy", namespace)
    assert [r["status"] for r in no_policy] == ["pass"]
    # Secrets are read as metadata only; the type comes from a field selector.
    token_secret = [r for r in mine if r["check"] == "secrets.service-account-token-secret"]
    assert {r["subject"]["name"]: r["status"] for r in token_secret} == {
        "app": "pass",
        "ops-token": "fail",
    }
    assert SECRET_VALUE not in json.dumps(report)


def test_scanner_identity_lists_exactly_what_its_role_grants(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    role = yaml.safe_load((REPO / "deploy" / "rbac" / "scanner-clusterrole.yaml").read_text())
    granted = {
        (group, resource)
        for rule in role["rules"]
        if "list" in rule.get("verbs", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
    }
    served = discover(ApiClient(load_connection(str(control_plane.admin_kubeconfig))))
    expected = {
        spec.kind: "listed"
        if (spec.group, served.resources[spec.kind].plural) in granted
        else "forbidden"
        for spec in SCANNED_KINDS
    }
    assert expected["Secret"] == "forbidden"  # the role deliberately cannot read Secrets

    code, report, err = scan(capsys, control_plane.scanner_kubeconfig)
    assert code == 0, err
    assert coverage_of(report) == expected
    unread = sorted(kind for kind, state in expected.items() if state != "listed")
    assert f"not read from the cluster: {unread[0]} (forbidden)" in err
    statuses = {r["status"] for r in report["results"] if r["subject"]["namespace"] == namespace}
    assert "fail" in statuses


def test_forbidden_kinds_make_checks_not_evaluated_and_criteria_incomplete(
    control_plane: ControlPlane, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A reader of workloads and namespaces who may not see NetworkPolicies.
    control_plane.request(
        "PATCH",
        f"{RBAC}/clusterroles/{RESTRICTED_USER}?fieldManager=kp-test&force=true",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": RESTRICTED_USER},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces", "pods"], "verbs": ["list"]},
                {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"],
                 "verbs": ["list"]},
            ],
        },
        content_type="application/apply-patch+yaml",
    )  # fmt: skip
    control_plane.request(
        "PATCH",
        f"{RBAC}/clusterrolebindings/{RESTRICTED_USER}?fieldManager=kp-test&force=true",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": RESTRICTED_USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": RESTRICTED_USER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": RESTRICTED_USER}],
        },
        content_type="application/apply-patch+yaml",
    )  # fmt: skip

    def sees_deployments() -> bool:
        code, report, _ = scan(capsys, control_plane.admin_kubeconfig, "--as", RESTRICTED_USER)
        return code == 0 and coverage_of(report).get("Deployment") == "listed"

    wait_for(sees_deployments, "the restricted role to take effect", timeout_s=15)
    code, report, err = scan(capsys, control_plane.admin_kubeconfig, "--as", RESTRICTED_USER)
    assert code == 0, err
    coverage = coverage_of(report)
    assert coverage["NetworkPolicy"] == "forbidden"
    assert coverage["ClusterRoleBinding"] == "forbidden"
    assert coverage["Secret"] == "forbidden"

    mine = [r for r in report["results"] if r["subject"]["namespace"] == namespace]
    privileged = [r for r in mine if r["check"] == "pss.privileged"]
    assert [(r["status"], r["subject"]["kind"]) for r in privileged] == [("fail", "Deployment")]
    no_policy = namespace_results(report, "network.namespace-without-network-policy", namespace)
    assert [r["status"] for r in no_policy] == ["not_evaluated"]
    assert "NetworkPolicy forbidden" in no_policy[0]["reason"]
    verdicts = {g["id"]: g["verdict"] for g in report["summary"]["groups"]}
    for group in no_policy[0]["groups"]:
        assert verdicts[group] != "compliant"
    # The RBAC findings the admin scan had are unseen here: never passed, said once per check.
    rbac = [r for r in report["results"] if r["check"].startswith("rbac.")]
    assert rbac
    assert {r["status"] for r in rbac} == {"not_evaluated"}
    # Object-scope checks say it once per check (workload-scope ones also per workload).
    assert "Cluster" in {r["subject"]["kind"] for r in rbac}


def test_an_identity_with_no_rbac_at_all_cannot_produce_a_report(
    control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, err = scan(capsys, control_plane.admin_kubeconfig, "--as", "kp-nobody")
    assert code == 2
    assert report == {}
    assert "could not list any" in err and "forbidden" in err
    assert "Traceback" not in err


def kubeconfig_for(control_plane: ControlPlane, tmp_path: Path, server: str, user: Any) -> Path:
    data = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    data["clusters"][0]["cluster"]["server"] = server
    data["users"][0]["user"] = user
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unreachable_server_exits_2_with_a_clear_message(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = kubeconfig_for(control_plane, tmp_path, f"https://127.0.0.1:{port}", {})
    code, report, err = scan(capsys, path)
    assert code == 2 and report == {}
    assert f"cannot reach the API server at https://127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_an_untrusted_server_certificate_exits_2(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    # Trust only the admin's own (client) certificate: the server's chain does not verify.
    data["clusters"][0]["cluster"]["certificate-authority-data"] = data["users"][0]["user"][
        "client-certificate-data"
    ]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    code, report, err = scan(capsys, path)
    assert code == 2 and report == {}
    assert f"TLS with the API server at {control_plane.server} failed" in err
    assert "Traceback" not in err


def test_rejected_credentials_exit_2_without_quoting_them(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "kp-" + "bogus-token-" + uuid.uuid4().hex
    path = kubeconfig_for(control_plane, tmp_path, control_plane.server, {"token": token})
    code, report, err = scan(capsys, path)
    assert code == 2 and report == {}
    assert "401 Unauthorized" in err
    assert token not in err


def test_inventory_pages_through_lists_and_never_holds_secret_data(
    control_plane: ControlPlane, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = load_connection(str(control_plane.admin_kubeconfig))
    whole = load_cluster(connection)
    monkeypatch.setattr(cluster, "PAGE_SIZE", 2)
    paged = load_cluster(connection)
    assert len(paged) == len(whole)
    assert sorted(str(o) for o in paged) == sorted(str(o) for o in whole)
    assert len(paged.of_kind("ClusterRole")) > 2  # really went through several pages

    assert all(obj.extra["source"] == "cluster" and obj.location is None for obj in paged)
    secrets = {obj.name: obj for obj in paged.in_namespace("Secret", namespace)}
    assert set(secrets) == {"app", "ops-token"}
    assert set(secrets["app"].raw) == {"apiVersion", "kind", "metadata"}
    assert secrets["ops-token"].raw["type"] == "kubernetes.io/service-account-token"
    assert all(obj.extra["metadata_only"] for obj in secrets.values())
    deployment = paged.in_namespace("Deployment", namespace)[0]
    assert (deployment.api_version, deployment.kind) == ("apps/v1", "Deployment")
    assert "managedFields" not in deployment.metadata
