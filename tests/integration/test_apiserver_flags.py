"""controlplane.* against a real API server: a kube-apiserver static (mirror) pod in
kube-system is judged by its flags; without one, the checks are not evaluated, never passed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from kubeproof.checks import catalogue
from kubeproof.checks.controlplane import NOT_VISIBLE
from kubeproof.cli.main import main

pytestmark = pytest.mark.integration

PODS = "/api/v1/namespaces/kube-system/pods"
POD_NAME = "kube-apiserver-node1"
CHECKS = {c.id for c in catalogue() if c.spec.group == "controlplane"}
COMMAND = [
    "kube-apiserver",
    "--anonymous-auth=false",
    "--authorization-mode",  # the space-separated form
    "Node,RBAC",
    "--profiling=false",
    "--enable-admission-plugins=NodeRestriction,AlwaysAdmit",
    "--audit-log-path=/var/log/kubernetes/audit.log",
    "--audit-log-maxage",
    "7",
    "--audit-log-maxbackup=10",
    "--audit-log-maxsize=100",
    "--etcd-servers=https://127.0.0.1:2379",
]
EXPECTED = {
    "controlplane.apiserver-anonymous-auth-disabled": "pass",
    "controlplane.apiserver-authorization-mode": "pass",
    "controlplane.apiserver-profiling-disabled": "pass",
    "controlplane.apiserver-admission-plugins": "fail",
    "controlplane.apiserver-audit-logging": "fail",  # no --audit-policy-file
    "controlplane.apiserver-audit-log-retention": "fail",  # maxage 7
    "controlplane.apiserver-kubelet-certificate-authority": "fail",
}


def scan(control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    kubeconfig = str(control_plane.admin_kubeconfig)
    code = main(["scan", "--cluster", "--kubeconfig", kubeconfig, "-o", "json",
                 "--fail-on", "none"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report: dict[str, Any] = json.loads(captured.out)
    return report


def controlplane_results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    results = [r for r in report["results"] if r["check"] in CHECKS]
    by_check = {r["check"]: r for r in results}
    assert len(by_check) == len(results), "one result per check, for the cluster"
    return by_check


@pytest.fixture
def apiserver_pod(control_plane: ControlPlane) -> Iterator[str]:
    pod = {
        "metadata": {
            "name": POD_NAME,
            "labels": {"component": "kube-apiserver", "tier": "control-plane"},
        },
        "spec": {
            "containers": [
                {
                    "name": "kube-apiserver",
                    "image": "registry.k8s.io/kube-apiserver:v1.34.0",
                    "command": COMMAND,
                }
            ]
        },
    }

    # The ServiceAccount admission plugin refuses pods until kube-system's default
    # ServiceAccount exists, which the controller manager creates shortly after start.
    def created() -> bool:
        response = control_plane.request("POST", PODS, pod)
        return response.status == 201

    wait_for(created, f"pod kube-system/{POD_NAME} to be created", timeout_s=30)
    yield POD_NAME
    response = control_plane.request("DELETE", f"{PODS}/{POD_NAME}?gracePeriodSeconds=0")
    assert response.status in (200, 202), response.body[:300]


def test_without_the_static_pod_the_checks_are_not_evaluated(
    control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    pods = control_plane.get(PODS).json()["items"]
    assert not [p for p in pods if p["metadata"]["name"].startswith("kube-apiserver")]
    results = controlplane_results(scan(control_plane, capsys))
    assert set(results) == CHECKS
    for check_id, result in results.items():
        assert result["status"] == "not_evaluated", check_id
        assert result["reason"] == NOT_VISIBLE
        assert result["subject"]["kind"] == "Cluster"


def test_the_static_pod_flags_are_judged(
    control_plane: ControlPlane, apiserver_pod: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = controlplane_results(scan(control_plane, capsys))
    assert {check_id: r["status"] for check_id, r in results.items()} == EXPECTED
    where = f"Pod kube-system/{apiserver_pod} container kube-apiserver"
    admission = results["controlplane.apiserver-admission-plugins"]
    assert admission["message"] == f"{where}: admission plugin AlwaysAdmit is enabled"
    assert admission["path"] == "spec.containers[0].command[5]"
    retention = results["controlplane.apiserver-audit-log-retention"]
    assert retention["message"] == f"{where}: --audit-log-maxage is 7, below 30"
    assert retention["path"] == "spec.containers[0].command[8]"  # the value word
    audit = results["controlplane.apiserver-audit-logging"]
    assert "--audit-policy-file is not set" in audit["message"]
