"""The bundled example gets the same verdicts whether scanned from its files or from a
cluster it was applied to. The API server fills in defaults and adds objects of its own;
neither may change a verdict unless the difference is named, with its reason, in
EXPLAINED below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from controlplane import REPO, ControlPlane, wait_for

from kubeproof.cli.main import main
from kubeproof.sources.files import load_paths

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "examples"
FIELD_MANAGER = "kubeproof-test"
# Where each kind in the examples lives in the API: (group-version path, resource, namespaced).
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}

SubjectKey = tuple[str, str | None, str]  # kind, namespace, name
ResultKey = tuple[str, str, str | None, str, str | None]  # check, kind, namespace, name, container
Verdict = tuple[ResultKey, str]  # ..., status

# Results for example objects whose status may differ between the two scans, and why.
#
# Empty on purpose. The fields the API server defaults in the examples' pod templates
# (terminationMessagePolicy, dnsPolicy, schedulerName, restartPolicy, a Deployment's
# strategy, a Service's sessionAffinity and ipFamilies, ...) change no verdict: the checks
# that judge defaultable fields read the effective value (workload.image-pull-policy
# derives the pull policy from the image reference when it is unset), and the examples
# state imagePullPolicy, serviceAccountName and automountServiceAccountToken anyway. The
# objects the cluster adds (a `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap
# per namespace, bootstrap RBAC) are judged as subjects of their own, which the comparison
# leaves out; no example workload runs as `default`, so those do not move the verdicts of
# workload.default-service-account or workload.service-account-token-automount. Add an
# entry here only for a difference the API server legitimately causes, never for a check
# that misreads a defaulted field.
EXPLAINED: dict[ResultKey, str] = {}


def _apply_path(obj: dict[str, Any]) -> str:
    prefix, resource, namespaced = RESOURCES[obj["kind"]]
    metadata = obj["metadata"]
    where = f"/namespaces/{metadata['namespace']}" if namespaced else ""
    query = f"fieldManager={FIELD_MANAGER}&force=true"
    return f"{prefix}{where}/{resource}/{metadata['name']}?{query}"


def _apply(control_plane: ControlPlane, obj: dict[str, Any]) -> None:
    """Server-side apply, as `kubectl apply --server-side` would."""
    response = control_plane.request(
        "PATCH", _apply_path(obj), obj, content_type="application/apply-patch+yaml"
    )
    name = f"{obj['kind']} {obj['metadata']['name']}"
    assert response.status in (200, 201), f"apply {name}: {response.status} {response.body!r}"


def _label_selector(match_labels: dict[str, str]) -> str:
    return quote(",".join(f"{key}={value}" for key, value in match_labels.items()))


@pytest.fixture(scope="module")
def example_objects() -> list[dict[str, Any]]:
    loaded = load_paths([str(EXAMPLES)])
    assert not loaded.errors
    assert {obj.kind for obj in loaded.objects} <= set(RESOURCES), "map the new kind above"
    return [obj.raw for obj in loaded.objects]


@pytest.fixture(scope="module")
def applied(control_plane: ControlPlane, example_objects: list[dict[str, Any]]) -> None:
    """Every example object applied; the Deployments' ReplicaSets and pods created."""
    for obj in sorted(example_objects, key=lambda obj: obj["kind"] != "Namespace"):
        _apply(control_plane, obj)
    deployments = [obj for obj in example_objects if obj["kind"] == "Deployment"]

    def pods_created() -> bool:
        for deployment in deployments:
            namespace = deployment["metadata"]["namespace"]
            selector = _label_selector(deployment["spec"]["selector"]["matchLabels"])
            sets = control_plane.get(
                f"/apis/apps/v1/namespaces/{namespace}/replicasets?labelSelector={selector}"
            ).json()["items"]
            pods = control_plane.get(
                f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
            ).json()["items"]
            if not sets or len(pods) < deployment["spec"]["replicas"]:
                return False
        return True

    wait_for(pods_created, "the example Deployments' ReplicaSets and pods", timeout_s=30)


def _scan(arguments: list[str], output: Path) -> dict[str, Any]:
    code = main(["scan", *arguments, "-o", "json", "--fail-on", "none", "--output", str(output)])
    assert code == 0
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def _verdicts(report: dict[str, Any], subjects: set[SubjectKey]) -> set[Verdict]:
    """(check, subject, status) for each result about one of `subjects`."""
    verdicts = set()
    for result in report["results"]:
        subject = result["subject"]
        kind, namespace, name = subject["kind"], subject["namespace"], subject["name"]
        if (kind, namespace, name) in subjects:
            key = (result["check"], kind, namespace, name, subject.get("container"))
            verdicts.add((key, result["status"]))
    return verdicts


def _describe(verdicts: set[Verdict]) -> str:
    return "\n".join(f"  {status:<14} {key}" for key, status in sorted(verdicts, key=str))


def test_the_cluster_stored_a_defaulted_copy(control_plane: ControlPlane, applied: None) -> None:
    """Guards the comparison below: it must compare manifests with objects the API server
    changed, or it proves nothing about defaulting."""
    stored = control_plane.get("/apis/apps/v1/namespaces/shop/deployments/api").json()
    pod_spec = stored["spec"]["template"]["spec"]
    assert stored["spec"]["strategy"]["type"] == "RollingUpdate"  # not in api.yaml
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["containers"][0]["terminationMessagePolicy"] == "File"
    default_account = control_plane.get("/api/v1/namespaces/shop/serviceaccounts/default")
    assert default_account.status == 200


def test_files_and_cluster_give_the_same_verdicts(
    control_plane: ControlPlane,
    example_objects: list[dict[str, Any]],
    applied: None,
    tmp_path: Path,
) -> None:
    # Results about objects only the cluster has (system namespaces, default
    # ServiceAccounts, kube-root-ca.crt, bootstrap RBAC, the Cluster subject) are left out.
    subjects = {
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        for obj in example_objects
    }
    from_files = _verdicts(_scan([str(EXAMPLES)], tmp_path / "files.json"), subjects)
    cluster_args = ["--cluster", "--kubeconfig", str(control_plane.admin_kubeconfig)]
    from_cluster = _verdicts(_scan(cluster_args, tmp_path / "cluster.json"), subjects)

    assert {status for _, status in from_files} >= {"pass", "fail"}
    only_files = {v for v in from_files - from_cluster if v[0] not in EXPLAINED}
    only_cluster = {v for v in from_cluster - from_files if v[0] not in EXPLAINED}
    assert not only_files and not only_cluster, (
        "verdicts differ between the files and the cluster; fix the check, or explain the "
        f"difference in EXPLAINED\nfrom the files only:\n{_describe(only_files)}\n"
        f"from the cluster only:\n{_describe(only_cluster)}"
    )
    differing = {key for key, _ in from_files ^ from_cluster}
    stale = set(EXPLAINED) - differing
    assert not stale, f"EXPLAINED lists results that no longer differ: {sorted(stale, key=str)}"
