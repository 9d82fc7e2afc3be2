"""Small objects for the agent's tests, as the API server would send them."""

from __future__ import annotations

from typing import Any

from kubeproof.agent.state import ObjectCache, prepared
from kubeproof.inventory import K8sObject


def deployment(
    name: str = "web", namespace: str = "shop", *, privileged: bool = False, version: str = "1"
) -> K8sObject:
    container = {
        "name": "web",
        "image": "nginx:1.27",
        "securityContext": {"privileged": privileged},
    }
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}
        },
        "status": {"observedGeneration": 1},
    }
    return prepared(raw, "Deployment", "apps/v1")


def owned(kind: str, name: str, owner: K8sObject, api_version: str = "v1") -> K8sObject:
    """A ReplicaSet or Pod controlled by `owner`, with the owner's pod template."""
    template = owner.raw["spec"]["template"]
    raw: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "uid": f"uid-{owner.namespace}-{name}",
            "resourceVersion": "1",
            "ownerReferences": [
                {"kind": owner.kind, "name": owner.name, "uid": owner.uid, "controller": True}
            ],
        },
    }
    if kind == "Pod":
        raw["spec"] = template["spec"]
    else:
        raw["spec"] = {"template": template}
    return prepared(raw, kind, api_version)


def plain(kind: str, name: str, namespace: str | None, body: dict[str, Any] | None = None,
          api_version: str = "v1") -> K8sObject:  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{kind}-{name}", "resourceVersion": "1"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return prepared({"metadata": metadata, **(body or {})}, kind, api_version)


def cache_of(*objects: K8sObject, kinds: tuple[str, ...] = ()) -> ObjectCache:
    """A cache holding `objects`, with every kind in `kinds` (and theirs) fully listed."""
    cache = ObjectCache()
    by_kind: dict[str, list[K8sObject]] = {kind: [] for kind in kinds}
    for obj in objects:
        by_kind.setdefault(obj.kind, []).append(obj)
    for kind, members in by_kind.items():
        cache.replace_kind(kind, members, "listed")
    return cache
