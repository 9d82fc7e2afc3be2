"""Builders for AdmissionReview requests and the objects inside them."""

from __future__ import annotations

import copy
import uuid
from typing import Any

GROUPS = {
    "Pod": ("", "pods"),
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
    "ReplicationController": ("", "replicationcontrollers"),
    "PodTemplate": ("", "podtemplates"),
}

RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.example.com/team/app:1.2.3",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod_spec(**container_changes: Any) -> dict[str, Any]:
    container = copy.deepcopy(RESTRICTED_CONTAINER)
    container.update(container_changes)
    return {"containers": [container]}


def privileged_pod_spec() -> dict[str, Any]:
    spec = pod_spec()
    context = spec["containers"][0]["securityContext"]
    # The API server refuses privileged together with allowPrivilegeEscalation: false.
    del context["allowPrivilegeEscalation"]
    context["privileged"] = True
    return spec


def workload(
    kind: str, name: str, spec: dict[str, Any], namespace: str = "team-a"
) -> dict[str, Any]:
    """An object of `kind` whose pod template has `spec`."""
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    group, _ = GROUPS[kind]
    api_version = f"{group}/v1" if group else "v1"
    metadata = {"name": name, "namespace": namespace}
    body: dict[str, Any]
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    if kind == "PodTemplate":
        return {"apiVersion": "v1", "kind": kind, "metadata": metadata, "template": template}
    if kind == "CronJob":
        body = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        body = {"selector": {"matchLabels": {"app": name}}, "template": template}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": body}


def review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    username: str = "alice",
    sub_resource: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    kind = obj.get("kind", "Pod")
    group, resource = GROUPS.get(kind, ("", kind.lower() + "s"))
    metadata = obj.get("metadata", {})
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "operation": operation,
        "namespace": metadata.get("namespace", ""),
        "name": metadata.get("name", ""),
        "userInfo": {"username": username, "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
